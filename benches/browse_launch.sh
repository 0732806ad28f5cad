#!/usr/bin/env bash
# What a user waits for: `torchlight browse` launched in tmux until its first frame is on the screen (the status
# line's "N/M shown"), polled with capture-pane every 5 ms. Runs, in the same run and on the same store:
#   torchlight browse          the binary users run (no libtorch)
#   torchlight-engine browse   the binary that links libtorch: it loads libtorch, then execs `torchlight browse`,
#                              so this row is the same browser plus libtorch's start-up
#   tmux alone                 a shell printing the marker, to show tmux's own share
# Usage: benches/browse_launch.sh STORE [RUNS=7]   (a 1M-item store: `cargo bench -p torchlight-tui --bench browse`
# makes one in $TMPDIR/torchlight-bench-1000000)
set -euo pipefail
STORE=$(realpath "$1")
RUNS=${2:-7}
T=$(realpath "${CARGO_TARGET_DIR:-target}/release")
[ -x "$T/torchlight" ] && [ -x "$T/torchlight-engine" ] || cargo build --release
sock=
trap '[ -z "$sock" ] || tmux -L "$sock" kill-server 2>/dev/null || true' EXIT

n=0
launch_ms() { # command line run inside tmux; a fresh tmux server each time
  n=$((n + 1))
  sock=tl-launch-$$-$n
  local start end
  start=$(date +%s%N)
  tmux -L $sock new-session -d -x 120 -y 40 "env -u TERM_PROGRAM TERM=xterm-256color $1"
  # Not `capture-pane | grep -q`: under pipefail, grep's early exit fails the pipeline.
  until [[ $(tmux -L $sock capture-pane -p 2>/dev/null) == *' shown'* ]]; do
    if (($(date +%s%N) - start > 30000000000)); then
      echo "no first frame within 30 s (did it exit? run it by hand): $1" >&2
      exit 1
    fi
    sleep 0.005
  done
  end=$(date +%s%N)
  # The pane's process is the browser itself (env execs it): its resident memory at the first frame.
  local pid rss
  pid=$(tmux -L $sock display -p '#{pane_pid}')
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
  tmux -L $sock kill-server 2>/dev/null || true
  echo "$(((end - start) / 1000000)) $rss" 
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

declare -A result
for what in light engine tmux; do
  case $what in
    light) cmd="$T/torchlight browse --store $STORE --graphics none" ;;
    engine) cmd="$T/torchlight-engine browse --store $STORE --graphics none" ;;
    tmux) cmd="echo ' shown'; sleep 60" ;;
  esac
  out=$(for _ in $(seq "$RUNS"); do launch_ms "$cmd"; done)
  runs=$(echo "$out" | awk '{printf "%s ", $1}')
  result[$what]=$(echo "$out" | awk '{print $1}' | median)
  rss=$(echo "$out" | awk '{print $2}' | median)
  printf '%-8s median %4d ms, %4d MiB resident at the first frame   runs (ms): %s\n' "$what" "${result[$what]}" "$rss" "$runs"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v l="${result[light]}" -v e="${result[engine]}" \
  'BEGIN {printf "torchlight launches to the first frame %.1fx faster than the libtorch-linked binary\n", e / l}'
