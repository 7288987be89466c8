#!/usr/bin/env bash
# Simulation, not a test: runs the deterministic DHT simulator (Sources/PeerSimulation, `peer-sim`) in release
# mode for the four rows of docs/ARCHITECTURE.md's "DHT simulation" table: 1 000 and 10 000 nodes, each with
# 0% and 20% churn per hour, 5% packet loss, uniform 20-200 ms latency per link direction. Prints a markdown
# table and the wall time of each row. Same seed, same figures.
# Usage: scripts/dht-sim.sh [SEED=1] [extra peer-sim options, e.g. --lookups 500 --silent 0.05 --liars 0.05]
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:-1}
shift || true
swift build -c release --product peer-sim >/dev/null
.build/release/peer-sim --nodes 1000,10000 --churn 0,0.2 --loss 0.05 --seed "$SEED" "$@"
