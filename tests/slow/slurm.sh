#!/bin/bash
# A real one-node Slurm runs the cluster path: a 4-task job array of `torchlight ingest --shard auto` through real
# models, then `torchlight merge` and `torchlight analyze` as a job that depends on the array (afterok); the merged
# store's exported table and each space's embeddings (.npy) must equal, byte for byte, those of the same ingest
# and analysis in a single process.
#   tests/slow/slurm.sh [RECORDS]      default 800 MNIST digits
# Needs root and apt-get (Debian, Ubuntu): it installs slurm-wlm and munge from the distribution's packages when
# they are missing, and starts munged, slurmctld and slurmd for this machine alone, with a configuration, keys,
# sockets, state and logs in a temporary directory; the daemons are stopped by the pids in their pid files and the
# directory is removed at the end, whatever happened. Exits non-zero with the reason (and the logs that say more)
# when Slurm cannot be installed or started, a job fails, or the stores differ. `.ci/run` runs it after the tests.
# Data: the demo's MNIST digits (IDX). Models: the demo's MNIST CNN (TorchScript) and the committed tiny ViT with a
# classifier head, so the two spaces have different preprocessing.
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${1:-800}
shards=4
started=$(date +%s%N)
fail() {
    echo "slurm.sh: FAILED: $*" >&2
    exit 1
}
seconds_since() { # start in ns: seconds since, to a tenth
    local ds=$((($(date +%s%N) - $1) / 100000000))
    echo "$((ds / 10)).$((ds % 10))"
}
elapsed() { seconds_since "$started"; }

[ "$(id -u)" = 0 ] || fail "needs root: it installs slurm-wlm and munge and starts their daemons"
command -v apt-get > /dev/null 2>&1 || fail "needs apt-get: Slurm comes from the distribution's packages (Debian, Ubuntu)"
export PATH=$PATH:/usr/sbin:/sbin
if ! command -v slurmctld > /dev/null 2>&1 || ! command -v slurmd > /dev/null 2>&1 || ! command -v sbatch > /dev/null 2>&1 \
    || ! command -v munged > /dev/null 2>&1; then
    echo "slurm.sh: installing slurm-wlm and munge (apt-get)" >&2
    log=$(mktemp)
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurm-wlm munge) > "$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        fail "apt-get could not install slurm-wlm and munge (output above)"
    fi
    rm -f "$log"
fi
for tool in munged slurmctld slurmd sbatch sinfo scontrol scancel; do
    command -v "$tool" > /dev/null 2>&1 || fail "$tool not found after installing slurm-wlm and munge"
done
id munge > /dev/null 2>&1 || fail "the munge user does not exist: the munge package did not install properly"
echo "slurm.sh: Slurm $(slurmctld -V | awk '{print $2}') ready after $(elapsed) s" >&2

cargo build --release -q || fail "cargo build --release failed"
bin=$(realpath "${CARGO_TARGET_DIR:-target}/release")
[ -x "$bin/torchlight" ] && [ -x "$bin/torchlight-engine" ] || fail "no torchlight binaries in $bin"
assets=$(realpath crates/engine/src/demo/assets)
vit=$(realpath crates/engine/tests/fixtures/models/hf/vit_cls_tanh)

work=$(mktemp -d /tmp/torchlight-slurm.XXXXXX)
# munged runs as the munge user and must reach its directory below this one.
chmod 755 "$work"
jobs_submitted=()
stop_pidfile() { # pid file: the daemon's pid, stopped with SIGTERM, then SIGKILL after 10 s
    local pid
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    kill "$pid" 2> /dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2> /dev/null || true
}
cleanup() {
    if [ ${#jobs_submitted[@]} -gt 0 ]; then
        scancel "${jobs_submitted[@]}" 2> /dev/null || true
    fi
    stop_pidfile "$work/slurmd.pid"
    stop_pidfile "$work/slurmctld.pid"
    stop_pidfile "$work/munge/munged.pid"
    rm -rf "$work"
}
trap cleanup EXIT
show_logs() {
    for f in "$work"/out-*.txt "$work/merge.txt" "$work/ctld.log" "$work/d.log" "$work/munge/munged.log"; do
        [ -s "$f" ] || continue
        echo "--- $f (last lines)" >&2
        tail -n 15 "$f" >&2
    done
}

# munge: a key, a socket and a pid file of its own, so a munged the machine already runs is left alone. munged
# refuses a socket directory that not everyone may enter (the key inside stays 400).
install -d -o munge -g munge -m 755 "$work/munge"
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$work/munge/munge.key"
chmod 400 "$work/munge/munge.key"
socket=$work/munge/munge.socket
su -s /bin/sh munge -c "munged --key-file=$work/munge/munge.key --socket=$socket \
    --pid-file=$work/munge/munged.pid --log-file=$work/munge/munged.log --seed-file=$work/munge/munged.seed" \
    || { show_logs; fail "munged did not start"; }

node=$(hostname -s)
mkdir -p "$work/spool" "$work/state"
cat > "$work/slurm.conf" << EOF
ClusterName=torchlight
SlurmctldHost=$node
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmdSpoolDir=$work/spool
StateSaveLocation=$work/state
SlurmctldLogFile=$work/ctld.log
SlurmdLogFile=$work/d.log
SlurmUser=root
ReturnToService=2
NodeName=$node CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$work/slurm.conf
slurmctld -f "$SLURM_CONF" || { show_logs; fail "slurmctld did not start"; }
slurmd -f "$SLURM_CONF" || { show_logs; fail "slurmd did not start"; }
for _ in $(seq 100); do
    [ "$(sinfo -h -o %t 2> /dev/null)" = idle ] && break
    sleep 0.2
done
[ "$(sinfo -h -o %t 2> /dev/null)" = idle ] || { show_logs; fail "the node never became idle: $(sinfo 2>&1)"; }
echo "slurm.sh: munged, slurmctld and slurmd up after $(elapsed) s: $(sinfo -h -o '%P %a %D %t')" >&2

mkdir "$work/data"
for f in images-idx3 labels-idx1; do
    gunzip -c "$assets/mnist-digits-$f-ubyte.gz" > "$work/data/train-$f-ubyte"
done
# One thread everywhere: the single-process ingest and every shard run the models alike.
models="--foundation $assets/mnist-cnn.pt --finetuned $vit --device cpu --threads 1 --batch-size 32 --limit $records"

cat > "$work/shard.sh" << EOF
#!/bin/bash
exec "$bin/torchlight" ingest "$work/data" --store "$work/shard-\$SLURM_ARRAY_TASK_ID" --shard auto $models
EOF
cat > "$work/merge.sh" << EOF
#!/bin/bash
set -e
"$bin/torchlight" merge --store "$work/merged" $(for i in $(seq 0 $((shards - 1))); do printf '"%s" ' "$work/shard-$i"; done)
"$bin/torchlight" analyze --store "$work/merged" --device cpu
EOF
chmod +x "$work/shard.sh" "$work/merge.sh"

array=$(sbatch --parsable --array=0-$((shards - 1)) -o "$work/out-%a.txt" "$work/shard.sh") \
    || { show_logs; fail "sbatch of the job array failed"; }
jobs_submitted+=("$array")
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes -o "$work/merge.txt" \
    "$work/merge.sh") || { show_logs; fail "sbatch of the merge job failed"; }
jobs_submitted+=("$merge")
echo "slurm.sh: submitted job array $array (${shards} shards of $records records) and merge job $merge (afterok)" >&2

# Meanwhile the same ingest in one process, then the same analysis.
(
    start=$(date +%s%N)
    # shellcheck disable=SC2086  # $models is plain words
    "$bin/torchlight" ingest "$work/data" --store "$work/single" $models --no-analyze
    "$bin/torchlight" analyze --store "$work/single" --device cpu
    echo "took $(seconds_since "$start") s"
) > "$work/single.txt" 2>&1 &
single_pid=$!

# The merge job ends the run: wait until it has left the queue (100 s at most), then ask for its state.
job_state() { # job id: the state of each of its jobs (one line per array task)
    scontrol show job -o "$1" 2> /dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2
}
for _ in $(seq 500); do
    case $(job_state "$merge") in PENDING | RUNNING | CONFIGURING | COMPLETING) sleep 0.2 ;; *) break ;; esac
done
states=$(job_state "$array" | sort | uniq -c | xargs)
[ "$(job_state "$merge")" = COMPLETED ] \
    || { show_logs; fail "the merge job ended $(job_state "$merge") (array tasks: $states)"; }
wait "$single_pid" || { tail -n 20 "$work/single.txt" >&2; fail "the single-process ingest or analysis failed"; }
for i in $(seq 0 $((shards - 1))); do
    grep -o "shard $i/$shards (records [0-9]*\.\.[0-9]*" "$work/out-$i.txt" | sed 's/^/slurm.sh: task: /' >&2
done
echo "slurm.sh: array tasks $states; merge job COMPLETED: $(grep "^merged" "$work/merge.txt")" >&2

fails=0
for store in single merged; do
    "$bin/torchlight" export --store "$work/$store" -o "$work/$store.csv" > /dev/null
    for space in foundation finetuned; do
        "$bin/torchlight" export --store "$work/$store" --embeddings "$space" -o "$work/$store.$space.npy" > /dev/null
    done
done
for f in csv foundation.npy finetuned.npy; do
    if cmp -s "$work/single.$f" "$work/merged.$f"; then
        echo "slurm.sh: $f equal ($(wc -c < "$work/merged.$f") bytes, sha256 $(sha256sum "$work/merged.$f" | cut -c1-16))" >&2
    else
        echo "slurm.sh: $f DIFFERS between the single-process store and the merged one" >&2
        fails=$((fails + 1))
    fi
done
[ "$fails" = 0 ] || fail "$fails exports differ"
echo "slurm.sh: PASS in $(elapsed) s (the single-process ingest and analysis alongside $(tail -n 1 "$work/single.txt"))"
