#!/bin/sh
# Builds the fuzz targets on the stable toolchain and runs one with libFuzzer.
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags]      e.g. fuzz/run.sh store_column 600
# Targets: fuzz/fuzz_targets/*.rs. New inputs go to fuzz/corpus/TARGET (only the committed seed-* files are
# tracked), crashes to fuzz/artifacts/TARGET/. Exit status is libFuzzer's: 0 when no crash in the time given.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
: "${LIBTORCH:?set LIBTORCH (e.g. .venv/libtorch after .ci/setup): torchlight links libtorch}"
export LIBTORCH
cd "$here"
RUSTC_WRAPPER="$here/rustc-wrap.sh" cargo build --release --bin "$target"
bin="${CARGO_TARGET_DIR:-$here/target}/release/$target"
mkdir -p "corpus/$target" "artifacts/$target"
LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$bin" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "$@"
