#!/usr/bin/env bash
# Scale through the CLI alone (any box with Python + numpy; a GPU box needs no Rust toolchain): N synthetic
# 28x28 images as IDX and N x D clustered float32 embeddings as .npy, `torchlight ingest --embeddings`, then
# `torchlight analyze`, printing wall time and peak RSS of each step.
#
# Usage: benches/scale_cli.sh BINARY [ITEMS=1000000] [DIM=768] [DEVICE=auto] [ANALYZE_FLAGS...]
#   BINARY: the torchlight binary (e.g. target/release/torchlight), with torchlight-engine beside it or on PATH.
#   Python: $PYTHON (default python3), with numpy.
# Disk: ITEMS * (DIM * 4 * 2 + 784) bytes or so (7 GB at 1M x 768). Work files go to $SCALE_DIR (default $TMPDIR).
set -euo pipefail
BIN=${1:?usage: $0 TORCHLIGHT_BINARY ...}
BIN=$(realpath "$(command -v "$BIN" || echo "$BIN")")  # before the cd: a relative path or a name on PATH
cd "$(dirname "$0")/.."
ITEMS=${2:-1000000}
DIM=${3:-768}
DEVICE=${4:-auto}
shift $(($# < 4 ? $# : 4))
PY=${PYTHON:-python3}
W=$(mktemp -d -p "${SCALE_DIR:-${TMPDIR:-/tmp}}")
trap 'rm -rf "$W"' EXIT

# label, command...: the command's output, then one FIGURE line (peak RSS of that command alone).
measure() {
    local label=$1
    shift
    "$PY" - "$label" "$ITEMS" "$DIM" "$@" <<'PY'
import resource, subprocess, sys, time
label, items, dim, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
t = time.perf_counter()
rc = subprocess.run(cmd).returncode
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"FIGURE {label:<8} items={items} dim={dim} wall={wall:.1f}s peak_rss={rss:.0f}MiB rc={rc}", flush=True)
sys.exit(rc)
PY
}

"$PY" - "$W" "$ITEMS" "$DIM" <<'PY'
import sys, time
import numpy as np
w, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
rng = np.random.default_rng(0)
with open(f"{w}/images-idx3-ubyte", "wb") as f:
    f.write(np.array([0x803, n, 28, 28], ">u4").tobytes())
    for start in range(0, n, 100_000):
        f.write(rng.integers(0, 256, (min(100_000, n - start), 784), dtype=np.uint8).tobytes())
centres = rng.normal(size=(50, d)).astype(np.float32)
emb = np.lib.format.open_memmap(f"{w}/emb.npy", mode="w+", dtype=np.float32, shape=(n, d))
for start in range(0, n, 100_000):
    m = min(100_000, n - start)
    emb[start:start + m] = centres[rng.integers(0, 50, m)] + 0.5 * rng.normal(size=(m, d)).astype(np.float32)
emb.flush()
print(f"generated {n} x {d} in {time.perf_counter() - t:.1f} s", flush=True)
PY
measure ingest "$BIN" ingest "$W/images-idx3-ubyte" --embeddings emb="$W/emb.npy" --store "$W/store" --no-analyze
measure analyze "$BIN" analyze --store "$W/store" --device "$DEVICE" "$@"
du -sh "$W/store"
