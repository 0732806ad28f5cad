#!/usr/bin/env bash
# Regenerates the browse screenshots from a real terminal: xterm emulating a VT340 (sixel graphics) under
# Xvfb, captured with ImageMagick's `import`.
#
#   screenshots/make.sh [STORE_DIR] [OUT_DIR]
#
# STORE_DIR: the store to browse; without one a synthetic store is generated in /tmp (crates/synth, through
#            the browse bench: cargo bench -p torchlight-tui --bench browse -- --generate DIR N).
# OUT_DIR:   where the PNGs go (default screenshots/).
# Needs: apt-get install xvfb xterm imagemagick x11-utils xdotool fonts-dejavu-core
# The binary: $TORCHLIGHT_BIN, else $CARGO_TARGET_DIR/release/torchlight (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${2:-screenshots}
mkdir -p "$OUT"
BIN=${TORCHLIGHT_BIN:-${CARGO_TARGET_DIR:-target}/release/torchlight}
[ -x "$BIN" ] || cargo build --release
STORE=${1:-}
if [ -z "$STORE" ]; then
  STORE=/tmp/torchlight-screenshot-store
  [ -e "$STORE/data.mdb" ] || cargo bench -p torchlight-tui --bench browse -- --generate "$STORE" 3000
fi

IMPORT=/usr/bin/import
for d in $(seq 90 140); do
  if [ ! -e /tmp/.X11-unix/X$d ] && [ ! -e /tmp/.X$d-lock ]; then DISP=:$d; break; fi
done
Xvfb "$DISP" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB=$!
XTERM=
cleanup() {
  [ -n "$XTERM" ] && kill "$XTERM" 2>/dev/null || true
  kill "$XVFB" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1
export DISPLAY=$DISP

# shot NAME GRAPHICS KEYS...: start the browser in a fresh xterm, type KEYS, capture the window, quit.
shot() {
  local name=$1 graphics=$2
  shift 2
  xterm -ti vt340 -xrm 'XTerm*decTerminalID: vt340' -xrm 'XTerm*numColorRegisters: 256' \
    -xrm 'XTerm*sixelScrolling: true' -xrm 'XTerm*allowWindowOps: true' -xrm 'XTerm*forceBoxChars: true' \
    -xrm 'XTerm*allowSendEvents: true' -fa 'DejaVu Sans Mono' -fs 11 -geometry 120x40+0+0 -bg black -fg white \
    -e env -u TERM_PROGRAM "$BIN" browse --store "$STORE" --graphics "$graphics" &
  XTERM=$!
  local wid=
  for _ in $(seq 100); do
    wid=$(xdotool search --pid "$XTERM" 2>/dev/null | head -1 || true)
    [ -n "$wid" ] && break
    sleep 0.1
  done
  [ -n "$wid" ] || { echo "xterm window never appeared" >&2; exit 1; }
  sleep 2.5
  for k in "$@"; do
    xdotool key --window "$wid" "$k"
    sleep 0.4
  done
  sleep 2
  "$IMPORT" -window "$wid" "$OUT/$name.png"
  # The window can be gone already when the browser quit on its own; the capture is taken either way. A
  # second q for an overlay (help) that the first one only closes.
  xdotool key --window "$wid" q 2>/dev/null || true
  sleep 0.5
  xdotool key --window "$wid" q 2>/dev/null || true
  wait "$XTERM" || true
  XTERM=
  echo "wrote $OUT/$name.png"
}

# Sixel is forced: this xterm under Xvfb leaves ratatui-image's capability query unanswered (auto picks
# halfblocks; the cell size still comes from the window size), though it draws sixel when sent it.
shot browse-sixel sixel j j j
shot browse-halfblocks halfblocks j j j
shot browse-side-by-side sixel v
shot browse-help halfblocks question
# The drift view needs a store with a checkpoint series (the demo store has one): two steps into the series.
shot browse-drift sixel F bracketright bracketright
