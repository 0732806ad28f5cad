#!/usr/bin/env bash
# Ingest benchmark (not a test): the article's Python pipeline (datasets ImageFolder + AutoImageProcessor +
# AutoModel, map with batch 24, CLS token) against `torchlight ingest`, same images, same model, same threads,
# on CPU, through a tiny random ViT (hidden 48, 40 px input) on 28 px PNGs: the regime where decoding and
# preprocessing dominate (benches/gpu.sh covers a vit-base-shaped model on a GPU).
#
# Usage: benches/ingest.sh [N_IMAGES=5000] [THREADS=2]
# Needs: a Python with torch, transformers, datasets, pillow, numpy ($PYTHON, default python3), and the
#        Fashion-MNIST IDX files in $FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist, which Debian's
#        dataset-fashion-mnist package installs).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
THREADS=${2:-2}
PYTHON=${PYTHON:-python3}
FMNIST=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz; do
  [ -f "$FMNIST/$f" ] || { echo "$FMNIST/$f not found: set FASHION_MNIST_DIR (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/torchlight

# The same PNG files for both: an ImageFolder of the first N Fashion-MNIST training images.
"$PYTHON" benches/idx_to_folder.py "$FMNIST/train-images-idx3-ubyte.gz" "$FMNIST/train-labels-idx1-ubyte.gz" "$WORK/images" "$N"
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
