#!/usr/bin/env bash
# Ingest benchmark (not a test): the article's Python pipeline (datasets ImageFolder + AutoImageProcessor +
# AutoModel, map with batch 24, CLS token) against `torchlight ingest`, same images, same model, same threads,
# on CPU. The regime is the tiny-ViT one of shared/notes/benchmarks.md (hidden 48, 40 px input, 28 px PNGs),
# where decoding and preprocessing dominate.
#
# Usage: benches/ingest.sh [N_IMAGES=5000] [THREADS=2]
# Needs: a Python with torch, transformers, datasets, pillow (PYTHON, default /work/pyref/bin/python),
#        Fashion-MNIST IDX files (FMNIST, default /usr/share/datasets/fashion-mnist; apt-get install dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
THREADS=${2:-2}
PYTHON=${PYTHON:-/work/pyref/bin/python}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
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
