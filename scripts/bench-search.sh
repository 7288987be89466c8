#!/usr/bin/env bash
# Benchmark, not a test: the keyword index (Search.SearchIndex, SQLite FTS5) at scale. For each size, inserts
# synthetic torrent names (a Zipf(1.1) vocabulary of made-up words, 3 to 9 words, some with a year and a
# quality tag, up to three file paths each) in batches of 5 000, then runs 300 queries of each kind (common,
# medium and rare words, one to three of them) for the top 50. Prints a markdown table: insert rate, bytes on
# disk per torrent (after folding the WAL in), query latency p50/p95/p99. Targets (issue 14, 19): at 1 M rows,
# p95 under 50 ms, insert at least 20 000 rows/s, at most 2 KB per torrent. 10 M is the optional row (about
# 10 minutes and 2.5 GB of disk).
#
# Usage: scripts/bench-search.sh [ROWS=1000000] [DIR=/tmp/peer-bench-search]     e.g. scripts/bench-search.sh 1000000,10000000
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
DIR=${2:-${TMPDIR:-/tmp}/peer-bench-search}
swift build -c release --product peer-bench >/dev/null
trap 'rm -rf "$DIR"' EXIT
.build/release/peer-bench search --rows "$ROWS" --dir "$DIR"
