#!/bin/bash
# kill -9 at random points of an ingest with two models (decode, embed, write and analysis all happen while it
# runs), then rerun the same command until it completes; the final store must equal one uninterrupted run: the
# exported table (ids, sources, labels, predictions, confidences, every score column, projections) and each space's
# embeddings, byte for byte (CPU). Each rerun must also embed exactly the items the killed run had not committed:
# nothing done before the kill is embedded again.
#   tests/slow/kill_ingest.sh [POINTS] [RECORDS]      default 20 points, 3000 MNIST digits
# Slow (minutes), so not part of `cargo test`: run it by hand. It builds both binaries (`cargo build --release`)
# and runs target/release/torchlight, which hands ingest to torchlight-engine beside it.
# Data: the demo's MNIST digits (IDX, crates/engine/src/demo/assets). Models: the demo's MNIST CNN (TorchScript,
# preprocessing JSON beside it) as the foundation, the committed tiny ViT with a classifier head
# (crates/engine/tests/fixtures/models/hf/vit_cls_tanh) as the fine-tuned model, so the two spaces have different
# preprocessing.
# Prints one line per kill (when, in which phase, how far the store had got, what the rerun embedded) and a FIGURE
# line; exits 1 on any difference.
set -euo pipefail
cd "$(dirname "$0")/../.."
points=${1:-20}
records=${2:-3000}
cargo build --release
bin=${CARGO_TARGET_DIR:-target}/release/torchlight
assets=crates/engine/src/demo/assets
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/data"
for f in images-idx3 labels-idx1; do
    gunzip -c "$assets/mnist-digits-$f-ubyte.gz" > "$work/data/train-$f-ubyte"
done
args() { # store
    echo "ingest $work/data --store $1 --limit $records --device cpu --threads 2 --batch-size 64" \
        "--foundation $assets/mnist-cnn.pt --finetuned crates/engine/tests/fixtures/models/hf/vit_cls_tanh"
}
dump() { # store, out-prefix
    "$bin" export --store "$1" -o "$2.csv" > /dev/null
    for space in foundation finetuned; do
        "$bin" export --store "$1" --embeddings "$space" -o "$2.$space.npy" > /dev/null
    done
}
# Items in the store and embeddings per space, and whether the analysis has written anything yet.
state() { # store
    "$bin" info --store "$1" 2> /dev/null | awk '
        /^  items / { items = $2 }
        /^  space / { emb = emb " " $2 $4 }
        /analysis: [a-z]/ && !/none yet/ { analysed = 1 }
        END { printf "items=%d embedded=[%s ] analysed=%d", items, substr(emb, 2), analysed }'
}
embedded() { # log, space
    awk -v s="$2:" '$1 == "space" && $2 == s && $4 == "embedded," { print $3 }' "$1"
}

# shellcheck disable=SC2046  # the arguments are plain words
start=$(date +%s.%N)
"$bin" $(args "$work/ref") > "$work/ref.log" 2>&1
full=$(echo "$(date +%s.%N) - $start" | bc)
dump "$work/ref" "$work/ref"
# Seconds from the start to the end of the embedding (model loading included, about half a second).
embed=$(awk '/^ingested / { for (i = 1; i < NF; i++) if ($(i + 1) == "s") print $i + 0.5 }' "$work/ref.log")
echo "uninterrupted ingest of $records records with analysis: ${full}s (embedding done after about ${embed}s)"

fails=0
declare -A phases
for i in $(seq 1 "$points"); do
    store="$work/killed-$i"
    # A random moment: odd points within the embedding pipeline (decode, preprocess, embed and write run at once
    # on their threads; model loading comes first), even points within the analysis that follows. Which phase a
    # kill really hit is read from the store afterwards.
    at=$(awk -v f="$full" -v e="$embed" -v odd=$((i % 2)) -v s="$RANDOM$i" 'BEGIN { srand(s); r = rand()
        printf "%.2f", odd ? 0.05 + r * e : e + r * (0.9 * f - e) }')
    # A run that finished before its kill (timings vary between runs) is tried again sooner, twice at most.
    for _ in 1 2 3; do
        rm -rf "$store"
        # shellcheck disable=SC2046
        "$bin" $(args "$store") > "$work/k$i.log" 2>&1 &
        pid=$!
        sleep "$at"
        kill -9 "$pid" 2> /dev/null || true
        rc=0
        wait "$pid" 2> /dev/null || rc=$?
        [ "$rc" -eq 137 ] && killed=yes || killed=no
        [ "$killed" = no ] || break
        at=$(awk -v a="$at" 'BEGIN { printf "%.2f", a / 2 }')
    done
    st=$(state "$store")
    items=$(sed 's/items=\([0-9]*\).*/\1/' <<< "$st")
    if [ "$killed" = no ]; then
        phase=after-end
    elif [ ! -e "$store/data.mdb" ] || [ "$items" -eq 0 ]; then
        phase=startup
    elif [ "$items" -lt "$records" ]; then
        phase=embedding
    else
        phase=analysis
    fi
    phases[$phase]=$((${phases[$phase]:-0} + 1))
    # shellcheck disable=SC2046
    if ! "$bin" $(args "$store") > "$work/r$i.log" 2>&1; then
        echo "point $i: rerun failed:"
        cat "$work/r$i.log"
        exit 1
    fi
    dump "$store" "$work/k$i"
    same=yes
    for f in "$work"/ref.csv "$work"/ref.*.npy; do
        g="$work/k$i${f#"$work"/ref}"
        cmp -s "$f" "$g" || { same=no; echo "  differs: $(basename "$g")"; }
    done
    # The rerun embeds exactly what was missing: a model that starts over shows up here.
    redone=""
    for space in foundation finetuned; do
        had=$(grep -o "$space[0-9]*" <<< "$st" | sed "s/$space//" || true)
        got=$(embedded "$work/r$i.log" "$space")
        [ "${got:-0}" -eq $((records - ${had:-0})) ] || redone="$redone $space:had=${had:-0},rerun=${got:-0}"
    done
    [ -z "$redone" ] || { same=no; echo "  rerun embedded again what was committed:$redone"; }
    [ "$same" = yes ] || fails=$((fails + 1))
    echo "point $i: kill at ${at}s ($phase) $st; rerun embedded foundation $(embedded "$work/r$i.log" foundation)," \
        "finetuned $(embedded "$work/r$i.log" finetuned); equal: $same"
    rm -rf "$store"
done
summary=""
for p in "${!phases[@]}"; do summary="$summary $p=${phases[$p]}"; done
echo "FIGURE kill_ingest points=$points records=$records uninterrupted=${full}s phases:$summary" \
    "differing=$fails all_equal=$([ "$fails" -eq 0 ] && echo yes || echo no)"
[ "$fails" -eq 0 ]
