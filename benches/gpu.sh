#!/usr/bin/env bash
# GPU check and benchmark (not a test) for a CUDA box: the CUDA path end to end, and the article's Python pipeline
# against `torchlight ingest` on the same GPU, same images, same model. Prints one figure per line; each step has its
# own time limit so one failure does not hide the others.
#
# Usage: benches/gpu.sh TORCHLIGHT_BINARY [N_IMAGES=5000]   (TORCHLIGHT_BINARY: target/release/torchlight, with
#        torchlight-engine beside it)
# Needs: a Python with torch (CUDA), transformers, datasets, pillow, numpy, cleanlab (PYTHON, default python3); the
#        binary built against that Python's libtorch (LIBTORCH=<site-packages>/torch cargo build --release), since
#        libtorch has no stable ABI across versions.
#
# Steps: 1 `torchlight info` (CUDA seen?); 2 the article's pipeline (datasets imagefolder + AutoModel, map batch 24)
# vs `torchlight ingest --device "$DEV"` on N MNIST digits through a vit-base-shaped ViT, images/s and ratio, the
# model's own images/s in the same run next to the whole process's, time per stage, and the max |diff| of the
# embeddings; 3 fp16; 4 `torchlight demo --no-browse` on the GPU; 5 analysis of 70,000 x 768
# embeddings on the GPU vs cleanlab's OutOfDistribution on the CPU cores.
set -uo pipefail
BIN=${1:?usage: $0 TORCHLIGHT_BINARY ...}
BIN=$(realpath "$(command -v "$BIN" || echo "$BIN")")  # before the cd: a relative path or a name on PATH
cd "$(dirname "$0")/.."
N=${2:-5000}
PY=${PYTHON:-python3}
DEV=${DEVICE:-cuda}  # DEVICE=cpu, with a small N and BIG, dry-runs the script on a CPU box
BIG=${BIG:-70000}
W=$(mktemp -d)
TORCH=$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))')
SITE=$(dirname "$TORCH")
LD_LIBRARY_PATH=$TORCH/lib:$(ls -d "$SITE"/nvidia/*/lib "$SITE"/nvidia/*/*/lib 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH XDG_CACHE_HOME=$W/cache XDG_DATA_HOME=$W/data NO_COLOR=1 RUST_BACKTRACE=0
"$PY" -c 'import torch; c = torch.cuda.is_available(); print("python torch", torch.__version__, "cuda", c, torch.cuda.get_device_name(0) if c else "")'
nproc

echo "== 1 info"
timeout 60 "$BIN" info

# The model alone, timed by ingest itself in the same run (copies to and from the GPU included): the gap between
# this and the whole process is what the pipeline costs.
model_only() { # ingest stdout: "model only N images/s"
  grep -o '([0-9.]* images/s in the model' "$1" | head -1 | sed 's/^(/model only: /' || echo "model only: ?"
}

echo "== 2 ingest: article pipeline vs torchlight, vit-base shape, $N digits"
ASSETS=crates/engine/src/demo/assets
"$PY" benches/idx_to_folder.py "$ASSETS/mnist-digits-images-idx3-ubyte.gz" "$ASSETS/mnist-digits-labels-idx1-ubyte.gz" "$W/images" "$N"
"$PY" benches/ingest_ref.py "$W/images" "$W/vit" 1 make-model-base
DEVICE=$DEV EMB_OUT=$W/py.npy timeout 300 "$PY" benches/ingest_ref.py "$W/images" "$W/vit" "$(nproc)" | tee "$W/py.txt"
for bs in 24 128; do
  T0=$(date +%s.%N)
  timeout 300 "$BIN" ingest "$W/images" --foundation "$W/vit" --store "$W/s$bs" --device "$DEV" --batch-size $bs \
    --no-analyze >"$W/tl$bs.out" 2>"$W/tl$bs.err" || { echo "torchlight ingest failed:"; tail -20 "$W/tl$bs.err"; }
  T1=$(date +%s.%N)
  echo "torchlight batch $bs: $N images $(echo "$T0 $T1" | awk '{printf "%.2f", $2 - $1}') s" \
    "$(echo "$N $T0 $T1" | awk '{printf "%.1f", $1 / ($3 - $2)}') images/s (whole process, model load included);" \
    "$(model_only "$W/tl$bs.out")"
  grep '^stages' "$W/tl$bs.out" || true
done
tail -4 "$W/tl24.err"
timeout 60 "$BIN" export --store "$W/s24" --embeddings foundation -o "$W/tl.npy" >/dev/null &&
"$PY" - "$W/py.npy" "$W/tl.npy" <<'PY'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
print("embeddings", a.shape, b.shape, "max |diff| same order:", float(np.abs(a - b).max()))
PY

echo "== 3 fp16 and bf16"
for p in fp16 bf16; do
  T0=$(date +%s.%N)
  timeout 200 "$BIN" ingest "$W/images" --foundation "$W/vit" --store "$W/s$p" --device "$DEV" --batch-size 128 \
    --precision $p --no-analyze >"$W/$p.out" 2>"$W/$p.err" || { echo "$p failed:"; tail -5 "$W/$p.err"; }
  T1=$(date +%s.%N)
  echo "torchlight $p batch 128: $(echo "$N $T0 $T1" | awk '{printf "%.1f", $1 / ($3 - $2)}') images/s (whole process);" \
    "$(model_only "$W/$p.out")"
  grep '^stages' "$W/$p.out" || true
  timeout 60 "$BIN" export --store "$W/s$p" --embeddings foundation -o "$W/$p.npy" >/dev/null &&
  "$PY" -c "import numpy as np; a=np.load('$W/tl.npy'); b=np.load('$W/$p.npy'); c=(a*b).sum(1)/np.linalg.norm(a,axis=1)/np.linalg.norm(b,axis=1); print('$p vs fp32: min cosine', float(c.min()))"
done

echo "== 4 demo on the GPU"
T0=$(date +%s.%N)
timeout 240 "$BIN" demo --no-browse ${DEMO_ARGS:-} 2>&1 | tail -25
T1=$(date +%s.%N)
echo "demo --no-browse: $(echo "$T0 $T1" | awk '{printf "%.1f", $2 - $1}') s"

echo "== 5 analysis, $BIG x 768, GPU vs cleanlab"
"$PY" - "$W" "$BIG" <<'PY'
import gzip, sys
import numpy as np
w = sys.argv[1]
rng = np.random.default_rng(0)
n, d = int(sys.argv[2]), 768
x = np.frombuffer(gzip.open("crates/engine/src/demo/assets/mnist-digits-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
x = np.tile(x.reshape(-1, 784), (n // 10000 + 1, 1))[:n]
with open(f"{w}/big-images-idx3-ubyte", "wb") as f:
    f.write(np.array([0x803, n, 28, 28], ">u4").tobytes()); f.write(x.tobytes())
centres = rng.normal(size=(20, d)).astype(np.float32)
emb = centres[rng.integers(0, 20, n)] + 0.7 * rng.normal(size=(n, d)).astype(np.float32)
np.save(f"{w}/big.npy", emb.astype(np.float32))
PY
timeout 200 "$BIN" ingest "$W/big-images-idx3-ubyte" --embeddings emb="$W/big.npy" --store "$W/big" --no-analyze >/dev/null 2>&1 ||
  echo "big ingest failed"
T0=$(date +%s.%N)
timeout 200 "$BIN" analyze --store "$W/big" --device "$DEV" --no-umap 2>&1 | grep -E 'timings|recall|Error' | head -5
T1=$(date +%s.%N)
TL=$(echo "$T0 $T1" | awk '{printf "%.2f", $2 - $1}')
echo "torchlight analyze ($DEV, no umap, arroy index included): $TL s"
timeout 240 "$PY" - "$W/big.npy" "$TL" <<'PY'
import sys, time
import numpy as np
from cleanlab.outlier import OutOfDistribution
x = np.load(sys.argv[1])
t = time.perf_counter()
OutOfDistribution().fit_score(features=x)
dt = time.perf_counter() - t
print(f"cleanlab fit_score {x.shape[0]} x {x.shape[1]}: {dt:.2f} s; ratio vs torchlight's whole analyze: {dt / float(sys.argv[2]):.1f}x")
PY
rm -rf "$W"
