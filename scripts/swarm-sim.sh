#!/usr/bin/env bash
# Simulation, not a test: runs the swarm simulator (PeerSimulation.SwarmSimulation: TorrentMachine, the
# production code, many times over in a virtual network with a virtual clock) and prints the table of
# docs/ARCHITECTURE.md: a flash crowd of 1 seed and N leechers on one file, every leecher with upload U and
# download 4U, the seed with upload 2U, 50 ms one way; then the same with 10% corrupt leechers and with 20%
# churn. Each row gives the fluid lower bound (Kumar and Ross 2006), when the last leecher finished and its
# ratio to the bound, and when the seed's first full copy was out. Reproducible: the same seed gives the same
# table. No network: nothing leaves the process.
#
# Usage: scripts/swarm-sim.sh [LEECHERS=100,1000] [SIZE_MiB=64]      extra peer-sim swarm options via SIM_ARGS
# (for example SIM_ARGS="--seed 2 --upload-slots 8"; the options are listed at the top of Sources/peer-sim/main.swift).
set -euo pipefail
cd "$(dirname "$0")/.."
LEECHERS=${1:-100,1000}
SIZE=${2:-64}
swift build -c release --product peer-sim >/dev/null
SIM=.build/release/peer-sim
export SWIFT_DETERMINISTIC_HASHING=1
# shellcheck disable=SC2086
"$SIM" swarm --leechers "$LEECHERS" --size-mib "$SIZE" --churn 0,0.2 ${SIM_ARGS:-}
echo
# shellcheck disable=SC2086
"$SIM" swarm --leechers "${LEECHERS%%,*}" --size-mib "$SIZE" --corrupt 0.1 ${SIM_ARGS:-} | grep '^| [0-9]'
