#!/usr/bin/env bash
# The main job, end to end on this machine: share a folder with one peer and fetch it with a second.
#
#   1. builds `peer` (release);
#   2. makes a torrent of FOLDER (default: this repository's Sources) and shares it from 127.0.0.2;
#   3. starts the daemon (`peer serve`) on 127.0.0.3 with its own state folder, adds the magnet link with
#      `peer add`, and follows it with `peer ls` until it is complete;
#   4. compares every file with the original, prints the daemon's web UI login link, and stops both peers.
#
# Loopback only, DHT and local discovery off: nothing leaves the machine.
# Usage: scripts/demo.sh [FOLDER]        (keep the daemon running afterwards with KEEP=1)
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDER=$(cd "${1:-Sources}" && pwd)
SCRATCH=${PEER_SCRATCH:-.build}
swift build -c release --product peer --scratch-path "$SCRATCH" 2>&1 | tail -1
PEER=$PWD/$SCRATCH/release/peer
WORK=$(mktemp -d /tmp/peer-demo.XXXXXX)
export PEER_NO_DHT=1 PEER_NO_LSD=1
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$PEER" create "$FOLDER" -o "$WORK/demo.torrent" --no-date >/dev/null
LINK=$("$PEER" info "$WORK/demo.torrent" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["magnet"])')
"$PEER" share "$WORK/demo.torrent" --data "$(dirname "$FOLDER")" --bind 127.0.0.2 --port 0 \
    --state "$WORK/seed-state" >"$WORK/share.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do grep -q "listening on" "$WORK/share.log" && break; sleep 0.1; done
SEED=$(grep -o "listening on [0-9.]*:[0-9]*" "$WORK/share.log" | cut -d' ' -f3)
echo "seeding $(basename "$FOLDER") from $SEED"

"$PEER" serve --api 127.0.0.3:0 --bind 127.0.0.3 --port 0 --state "$WORK/state" \
    --download-dir "$WORK/downloads" >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -s "$WORK/state/api-address" ] && break; sleep 0.1; done
export PEER_HOME=$WORK/state   # where `peer add`, `peer ls` … find the daemon
"$PEER" add "$LINK&x.pe=$SEED"
for _ in $(seq 600); do
    "$PEER" ls --json | python3 -c 'import json,sys; sys.exit(0 if all(t["state"] == "seeding" for t in json.load(sys.stdin)["torrents"]) else 1)' && break
    sleep 0.2
done
"$PEER" ls
diff -r "$FOLDER" "$WORK/downloads/$(basename "$FOLDER")" && echo "every file matches the original"
grep "login" "$WORK/serve.log" | sed 's/^serve: //'
if [ "${KEEP:-0}" = 1 ]; then
    echo "the daemon keeps running (state in $WORK/state); Ctrl-C stops both peers"
    wait
fi
