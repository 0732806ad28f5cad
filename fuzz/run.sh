#!/bin/sh
# Builds the fuzz targets on the stable toolchain and runs one with libFuzzer. From the repository root:
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags]      e.g. fuzz/run.sh store_column 600
# Targets: fuzz/fuzz_targets/*.rs. New inputs go to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET/.
# Exit status is libFuzzer's: 0 when no crash in the time given. The dataset-reader targets link
# torchlight-engine, hence libtorch: LIBTORCH defaults to the repository's .venv/libtorch (.ci/setup makes it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags]}
seconds=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
LIBTORCH=${LIBTORCH:-$here/../.venv/libtorch}
[ -d "$LIBTORCH/lib" ] || { echo "no libtorch at $LIBTORCH: run .ci/setup or set LIBTORCH" >&2; exit 1; }
LIBTORCH=$(cd "$LIBTORCH" && pwd)
export LIBTORCH
cd "$here"
RUSTC_WRAPPER="$here/rustc-wrap.sh" cargo build --release --bin "$target"
bin="${CARGO_TARGET_DIR:-$here/target}/release/$target"
mkdir -p "corpus/$target" "artifacts/$target"
LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$bin" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$@"
