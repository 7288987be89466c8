#!/usr/bin/env bash
# Benchmark, not a test: how many viewers one machine holds on a live stream (issue 17). One `peer live publish`
# fed 1 Mbit/s of records that carry their send time, then VIEWERS `peer live play` processes (each its own
# 127.0.0.x, state folder and --max-up cap, found through the DHT) joining over 10 s; after they settle, 30 s are
# measured. Prints one markdown row per viewer count: latency from a record entering the publisher to its leaving
# a viewer (median, p95, max), records lost, the publisher's upload as a multiple of the stream, and the CPU the
# processes used. Target (issue 17): 50 viewers with median under 1 s, p95 under 2 s, and the publisher at or
# under 2x.
#
# Usage: scripts/bench-live.sh [VIEWERS=20,50] [MAX_UP=250k]       (PEER_BIN names the binary; default: release)
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${1:-20,50}
MAX_UP=${2:-250k}
if [ -z "${PEER_BIN:-}" ]; then
    swift build -c release --product peer >/dev/null
    PEER_BIN=$PWD/.build/release/peer
fi
export PEER_BIN
exec /usr/bin/python3 scripts/bench-live.py "$VIEWERS" "$MAX_UP"
