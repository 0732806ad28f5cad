#!/bin/sh
# RUSTC_WRAPPER for fuzz builds on the stable toolchain: adds libFuzzer's coverage instrumentation to the
# torchlight crates the targets reach (torchlight_store, torchlight_engine, torchlight_cli) and to the fuzz
# targets only. The dependencies compile exactly as in the main build, so their artifacts in a shared target
# directory are reused instead of rebuilding ~300 crates with instrumentation.
rustc="$1"
shift
case " $* " in
*" --crate-name torchlight_"* | *" --crate-name store_"* | *" --crate-name source_"*)
    exec "$rustc" "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
        -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
        -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks --cfg fuzzing ;;
*) exec "$rustc" "$@" ;;
esac
