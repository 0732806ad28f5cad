#!/usr/bin/env bash
# The Spotlight check (issue 16, not a test: Spotlight is a large install): builds three stores, exports each
# with `torchlight export --spotlight` and loads the files into Renumics Spotlight's data store with the
# article's dtypes (benches/spotlight_check.py), decoding every `image` and `nn_image` cell.
#   idx     the demo's MNIST digits (IDX), the demo's two models: image cells are encoded bytes
#   parquet the two-shard fixture with its embedding_ft / embedding.foundation columns: encoded bytes
#   folder  the same digits as an ImageFolder of PNG files: image cells are file paths
#
# Usage: benches/spotlight.sh [N_DIGITS=1000]
# Needs: $PYTHON (default python3) with renumics-spotlight 1.8.x, e.g.
#        python3 -m venv /tmp/spot && /tmp/spot/bin/pip install renumics-spotlight==1.8.2 && PYTHON=/tmp/spot/bin/python
#        and LIBTORCH for the engine build, as for any build of torchlight-engine.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import renumics.spotlight" 2>/dev/null || {
  echo "$PYTHON has no renumics.spotlight: pip install renumics-spotlight==1.8.2 (in a virtual environment), set PYTHON" >&2
  exit 1
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# A step's output is shown only when it fails.
quiet() { "$@" >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; echo "failed: $*" >&2; exit 1; }; }

cargo build --release --quiet -p torchlight -p torchlight-engine
BIN=${CARGO_TARGET_DIR:-target}/release/torchlight
ASSETS=crates/engine/src/demo/assets
MODELS=(--foundation "$ASSETS/efficientnet-lite0.pt" --finetuned "$ASSETS/mnist-cnn.pt")

mkdir "$WORK/idx"
cp "$ASSETS"/mnist-digits-*.gz "$WORK/idx/"
quiet "$BIN" ingest "$WORK/idx" --store "$WORK/s-idx" --limit "$N" "${MODELS[@]}" --device cpu
quiet "$BIN" ingest crates/engine/tests/fixtures/sources/shards/data --store "$WORK/s-parquet" \
  --embedding-column finetuned=embedding_ft --embedding-column foundation=embedding.foundation
quiet "$PYTHON" benches/idx_to_folder.py "$ASSETS/mnist-digits-images-idx3-ubyte.gz" \
  "$ASSETS/mnist-digits-labels-idx1-ubyte.gz" "$WORK/folder" "$N"
quiet "$BIN" ingest "$WORK/folder" --store "$WORK/s-folder" "${MODELS[@]}" --device cpu

for s in idx parquet folder; do
  "$BIN" export --store "$WORK/s-$s" --spotlight -o "$WORK/$s.parquet"
done
"$PYTHON" benches/spotlight_check.py "$WORK/idx.parquet" "$WORK/parquet.parquet" "$WORK/folder.parquet" 2>&1 |
  grep -v -e '| WARNING  |' -e '^\[transformers\]'
