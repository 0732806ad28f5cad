#!/bin/bash
# kill -9 at random points of an ingest (decode, embed, write and analysis all happen while it runs), then
# rerun the same command until it completes; the final store must equal one uninterrupted run: the exported
# table (ids, sources, labels, every score column) and each space's embeddings, byte for byte (CPU).
#   LIBTORCH=... reliability/kill_ingest.sh [POINTS] [RECORDS]      default 20 points, 3000 MNIST digits
# Uses the demo's assets: the MNIST digits (IDX) and the MNIST CNN (TorchScript, with its preprocessing JSON).
# Prints one line per kill (when, how far the store had got) and a FIGURE summary; exits 1 on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
points=${1:-20}
records=${2:-3000}
: "${LIBTORCH:?set LIBTORCH}"
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo build --release --bin torchlight
bin=${CARGO_TARGET_DIR:-target}/release/torchlight
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/data"
for f in images-idx3 labels-idx1; do
    gunzip -c "src/demo/assets/mnist-digits-$f-ubyte.gz" > "$work/data/train-$f-ubyte"
done
assets=src/demo/assets
ingest() { # store
    "$bin" ingest "$work/data" --store "$1" --limit "$records" --device cpu --threads 2 --batch-size 64 \
        --foundation "$assets/mnist-cnn.pt" --preprocess "$assets/mnist-cnn.json"
}
dump() { # store, out-prefix
    "$bin" export --store "$1" -o "$2.csv" > /dev/null
    for space in $("$bin" info --store "$1" | awk '/^space /{print $2}' | tr -d ':'); do
        "$bin" export --store "$1" --embeddings "$space" -o "$2.$space.npy" > /dev/null
    done
}

start=$(date +%s.%N)
ingest "$work/ref" > "$work/ref.log" 2>&1
full=$(echo "$(date +%s.%N) - $start" | bc)
dump "$work/ref" "$work/ref"
echo "uninterrupted ingest of $records records: ${full}s"

fails=0
for i in $(seq 1 "$points"); do
    store="$work/killed-$i"
    # A random moment within the uninterrupted run's duration (5%..95%), as fractions of a second.
    at=$(awk -v f="$full" -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", f * (0.05 + 0.9 * rand()) }')
    ingest "$store" > "$work/k$i.log" 2>&1 &
    pid=$!
    sleep "$at"
    kill -9 "$pid" 2> /dev/null && state=killed || state=finished-before-kill
    wait "$pid" 2> /dev/null || true
    reruns=0
    until ingest "$store" > "$work/r$i.log" 2>&1; do
        reruns=$((reruns + 1))
        if [ "$reruns" -ge 3 ]; then
            echo "point $i: rerun failed 3 times:"
            cat "$work/r$i.log"
            exit 1
        fi
    done
    dump "$store" "$work/k$i"
    same=yes
    for f in "$work"/ref.csv "$work"/ref.*.npy; do
        g="$work/k$i${f#"$work"/ref}"
        cmp -s "$f" "$g" || { same=no; echo "  differs: $(basename "$g")"; }
    done
    [ "$same" = yes ] || fails=$((fails + 1))
    echo "point $i: at ${at}s $state; rerun: $(tail -n 3 "$work/r$i.log" | tr '\n' ' ' | cut -c1-150); equal: $same"
    rm -rf "$store"
done
echo "FIGURE kill_ingest points=$points records=$records uninterrupted=${full}s differing=$fails"
[ "$fails" -eq 0 ]
