#!/bin/bash
# Scale: a synthetic N-item, D-dim store (default 1,000,000 x 768), then `torchlight analyze` and the browse
# bench on it; prints wall time and peak RSS of each step (GNU time). Slow: run by hand.
#   benches/scale.sh [ITEMS] [DIM]        e.g. benches/scale.sh 100000 768
# The store comes from the torchlight-synth generator (crates/synth/examples/generate.rs); the browse bench is
# crates/tui/benches/browse.rs.
# Disk: about ITEMS * DIM * 4 * 2 spaces bytes (6.1 GB at 1M x 768). The store is kept in $SCALE_DIR
# (default $TMPDIR) so a second run skips generation; delete it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-1000000}
dim=${2:-768}
store=${SCALE_DIR:-${TMPDIR:-/tmp}}/torchlight-scale-$items-$dim
target=${CARGO_TARGET_DIR:-target}
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }

measure() { # label, command...
    local label=$1
    shift
    local log
    log=$(mktemp)
    # -o, not a pipe through tee: the figures are read right after, and a process substitution may not have
    # written them yet.
    /usr/bin/time -v -o "$log" "$@"
    cat "$log" >&2
    local wall rss
    wall=$(grep 'Elapsed (wall clock)' "$log" | awk '{print $NF}')
    rss=$(grep 'Maximum resident set size' "$log" | awk '{print $NF}')
    printf 'FIGURE %-10s items=%s dim=%s wall=%s peak_rss=%.0f MiB\n' "$label" "$items" "$dim" "$wall" "$((rss / 1024))" \
        | tee -a "$store.figures"
    rm -f "$log"
}

# Both binaries: `torchlight analyze` hands the work to torchlight-engine beside it.
cargo build --release
cargo build --release -p torchlight-synth --example generate
if [ ! -e "$store/scale-complete" ]; then
    rm -rf "$store"
    measure generate "$target/release/examples/generate" "$store" "$items" "$dim"
    touch "$store/scale-complete"
fi
du -sh "$store"
measure analyze "$target/release/torchlight" analyze --store "$store" --device cpu
# The browse bench opens an existing store when it finds its marker file.
touch "$store/bench-complete"
measure browse env BROWSE_BENCH_DIR="$store" BROWSE_BENCH_ITEMS="$items" cargo bench -p torchlight-tui --bench browse
cat "$store.figures"
