#!/usr/bin/env bash
# Ingest benchmark (not a test): the article's Python pipeline (datasets ImageFolder + AutoImageProcessor +
# AutoModel, map with batch 24, CLS token) against `torchlight ingest`, same images, same model, same threads,
# on CPU, through a tiny random ViT (hidden 48, 40 px input) on 28 px PNGs: the regime where decoding and
# preprocessing dominate (benches/gpu.sh covers a vit-base-shaped model on a GPU).
#
# Usage: benches/ingest.sh [N_IMAGES=5000] [THREADS=2]
#        benches/ingest.sh --trivial [N_IMAGES=2000] [THREADS="1 2"]
#   --trivial: the pipeline's own cost. The same images upscaled to 224x224 through a TorchScript module that costs
#   nothing (benches/ingest_ref.py make-trivial), against the article's loop with that module (PIL, the ViT image
#   processor, batches of 24), at each thread count of THREADS: both rates, images/s per thread, the ratio,
#   torchlight's time per stage, the load average, and that both sides computed the same embeddings.
# Needs: a Python with torch, transformers, datasets, pillow, numpy ($PYTHON, default python3), and the
#        Fashion-MNIST IDX files in $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist, which Debian's
#        dataset-fashion-mnist package installs).
set -euo pipefail
cd "$(dirname "$0")/.."
TRIVIAL=
if [ "${1:-}" = --trivial ]; then
  TRIVIAL=1
  shift
fi
N=${1:-$([ -n "$TRIVIAL" ] && echo 2000 || echo 5000)}
THREADS=${2:-$([ -n "$TRIVIAL" ] && echo "1 2" || echo 2)}
PYTHON=${PYTHON:-python3}
FMNIST=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do
  [ -f "$FMNIST/$f" ] || { echo "$FMNIST/$f not found: set FASHION_MNIST_DIR (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet
# TORCHLIGHT_BIN: another build to measure (e.g. the commit before a change), with its torchlight-engine beside it.
BIN=${TORCHLIGHT_BIN:-${CARGO_TARGET_DIR:-target}/release/torchlight}

# The same PNG files for both: an ImageFolder of the first N Fashion-MNIST training images.
"$PYTHON" benches/idx_to_folder.py "$FMNIST/train-images-idx3-ubyte.gz" "$FMNIST/train-labels-idx1-ubyte.gz" "$WORK/images" "$N"

if [ -n "$TRIVIAL" ]; then
  [ -x /usr/bin/time ] || { echo "--trivial needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
  echo "load before: $(uptime)"
  "$PYTHON" benches/ingest_ref.py "$WORK/images" "$WORK/model" 1 make-trivial
  for t in $THREADS; do
    PY_LINE=$(EMB_OUT="$WORK/py.npy" "$PYTHON" benches/ingest_ref.py "$WORK/images" "$WORK/model" "$t" trivial 2>/dev/null)
    PY_RATE=$(echo "$PY_LINE" | awk '{print $6}')
    rm -rf "$WORK/store"
    T0=$(date +%s.%N)
    # CPU time as well as wall time: on a loaded machine the CPU seconds per image stay comparable.
    /usr/bin/time -f "%U %S" -o "$WORK/cpu" "$BIN" ingest "$WORK/images" --foundation "$WORK/model/trivial.pt" \
      --store "$WORK/store" --device cpu --batch-size 24 --threads "$t" --no-analyze >"$WORK/tl.out" 2>"$WORK/tl.err"
    T1=$(date +%s.%N)
    TL_RATE=$(echo "$N $T0 $T1" | awk '{printf "%.1f", $1 / ($3 - $2)}')
    echo "threads $t: article loop $PY_RATE images/s (loop only); torchlight $TL_RATE images/s (whole process)," \
      "$(echo "$TL_RATE $t" | awk '{printf "%.1f", $1 / $2}') per thread; ratio" \
      "$(echo "$TL_RATE $PY_RATE" | awk '{printf "%.2f", $1 / $2}')x;" \
      "CPU $(awk -v n="$N" '{printf "%.2f s user+sys, %.0f us per image", $1 + $2, 1e6 * ($1 + $2) / n}' "$WORK/cpu")"
    grep '^stages' "$WORK/tl.out" "$WORK/tl.err" | sed 's/^[^:]*:/  torchlight /' || true
    "$BIN" export --store "$WORK/store" --embeddings foundation -o "$WORK/tl.npy" >/dev/null
    "$PYTHON" -c "import numpy as np, sys; a, b = np.load(sys.argv[1]), np.load(sys.argv[2]); \
print('  embeddings', a.shape, 'max |diff| torchlight vs the loop', float(abs(a - b).max()))" "$WORK/py.npy" "$WORK/tl.npy"
  done
  echo "load after: $(uptime)"
  exit 0
fi
"$PYTHON" benches/ingest_ref.py "$WORK/images" "$WORK/model" "$THREADS" make-model

PY_LINE=$("$PYTHON" benches/ingest_ref.py "$WORK/images" "$WORK/model" "$THREADS")
echo "$PY_LINE"
PY_RATE=$(echo "$PY_LINE" | awk '{print $6}')

# torchlight: the whole process, model load and store writes included.
T0=$(date +%s.%N)
"$BIN" ingest "$WORK/images" --foundation "$WORK/model" --store "$WORK/store" --device cpu \
  --batch-size 24 --threads "$THREADS" --no-analyze >"$WORK/tl.out" 2>"$WORK/tl.err"
T1=$(date +%s.%N)
TL_RATE=$(echo "$N $T0 $T1" | awk '{printf "%.1f", $1 / ($3 - $2)}')
echo "torchlight $N images $(echo "$T0 $T1" | awk '{printf "%.2f", $2 - $1}') seconds $TL_RATE images/s (whole process)"
echo "ratio torchlight / python: $(echo "$TL_RATE $PY_RATE" | awk '{printf "%.2f", $1 / $2}')x"
