#!/usr/bin/env bash
# Benchmark, not a test: one seeder -> one leecher over loopback, for Peer->Peer, libtorrent->Peer,
# Peer->libtorrent and libtorrent->libtorrent, on one payload in one run (the machines are shared and noisy:
# compare figures from the same run only). Runs inside a private network namespace (`unshare --net`: only
# `lo` exists, nothing can leave the machine), the way ../shared/bench/swarm_bench.sh does.
#
# Prints, per pair: throughput, its ratio to libtorrent->libtorrent, CPU seconds per GiB of each side, and
# each side's peak anonymous memory (RssAnon: libtorrent maps the files, so its total RSS counts page cache).
# Every download is compared with the payload byte for byte.
#
# Usage: scripts/bench-swarm.sh [SIZE_MiB=1024] [PIECE_KiB=1024]      (root; needs python3-libtorrent, time)
# PEER_BUILD_PATH=DIR builds and runs the release binary there instead of .build (an existing release build).
# PAIRS="peer:peer lt:lt" runs only those seeder:leecher pairs (the ratio column needs lt:lt among them).
# TRANSPORT=utp runs every pair over uTP (BEP 29): Peer with --transport utp, libtorrent with TCP off both ways;
# the default, tcp, runs them over TCP (libtorrent with uTP off).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${PEER_BENCH_NETNS:-0}" != 1 ]; then
    swift build -c release --product peer --build-path "${PEER_BUILD_PATH:-.build}" >/dev/null
    export PEER_BENCH_NETNS=1
    exec unshare --net -- bash "$0" "$@"
fi
ip link set lo up
SIZE_MIB=${1:-1024}
PIECE_KIB=${2:-1024}
WORK=${BENCH_DIR:-/tmp/peer-bench-swarm}
PEER=$PWD/${PEER_BUILD_PATH:-.build}/release/peer
LTPEER=$PWD/Tests/interop/ltpeer.py
mkdir -p "$WORK/data"
PAYLOAD="$WORK/data/payload-${SIZE_MIB}M.bin"
TORRENT="$WORK/payload-${SIZE_MIB}M-${PIECE_KIB}K.torrent"
[ -f "$PAYLOAD" ] || head -c $((SIZE_MIB << 20)) /dev/urandom >"$PAYLOAD"
[ -f "$TORRENT" ] || "$PEER" create "$PAYLOAD" --v1 --piece-length "${PIECE_KIB}K" -o "$TORRENT" --no-date >/dev/null
cat "$PAYLOAD" >/dev/null   # warm the page cache: every seeder reads from memory
PORT=7881
TRANSPORT=${TRANSPORT:-tcp}
case $TRANSPORT in tcp|utp) ;; *) echo "TRANSPORT must be tcp or utp" >&2; exit 2 ;; esac

# cpu_ticks PID: user+system clock ticks of a process so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# sample_anon PID FILE: writes the highest RssAnon (KiB) seen until the process ends
sample_anon() {
    local pid=$1 out=$2 peak=0 v
    while kill -0 "$pid" 2>/dev/null; do
        v=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v && echo "$peak" >"$out"
        sleep 0.05
    done
}

seeder_cmd() {
    case $1 in
        peer) echo "$PEER share $TORRENT --data $WORK/data --bind 127.0.0.1 --port $PORT --state $WORK/state-seed --transport $TRANSPORT" ;;
        lt) echo "/usr/bin/python3 $LTPEER seed $TORRENT $WORK/data --bind 127.0.0.1 --port $PORT --transport $TRANSPORT --timeout 3600" ;;
    esac
}
leecher_cmd() {  # leecher_cmd KIND DIR
    case $1 in
        peer) echo "$PEER get $TORRENT -o $2 --bind 127.0.0.1 --port $((PORT + 1)) --peer 127.0.0.1:$PORT --state $WORK/state-leech --transport $TRANSPORT" ;;
        lt) echo "/usr/bin/python3 $LTPEER leech $TORRENT $2 --bind 127.0.0.1 --port $((PORT + 1)) --connect 127.0.0.1:$PORT --timeout 600 --transport $TRANSPORT" ;;
    esac
}

HZ=$(getconf CLK_TCK)
declare -A RATE
ROWS=()
for pair in ${PAIRS:-lt:lt peer:peer lt:peer peer:lt}; do
    s=${pair%%:*}; l=${pair##*:}
    rm -rf "$WORK/dl" "$WORK/state-leech"; mkdir -p "$WORK/dl"
    sync   # the last pair's download is written back now, not during this pair
    $(seeder_cmd "$s") >"$WORK/seed.log" 2>&1 &
    spid=$!
    sample_anon "$spid" "$WORK/seed.anon" &
    for _ in $(seq 300); do   # up to 60 s for the seeder to check its data and listen
        grep -qE "READY|seeding until interrupted" "$WORK/seed.log" && break; sleep 0.2
    done
    s0=$(cpu_ticks "$spid")
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$WORK/leech.time" $(leecher_cmd "$l" "$WORK/dl") >"$WORK/leech.log" 2>&1 &
    lpid=$!
    sleep 0.05
    child=$(pgrep -P "$lpid" | head -1); sample_anon "${child:-$lpid}" "$WORK/leech.anon" &
    wait "$lpid" || { echo "$pair: leecher failed"; tail -5 "$WORK/leech.log"; kill "$spid"; exit 1; }
    t1=$(date +%s.%N)
    s1=$(cpu_ticks "$spid")
    kill "$spid"; wait "$spid" 2>/dev/null || true
    cmp -s "$PAYLOAD" "$WORK/dl/$(basename "$PAYLOAD")" || { echo "$pair: the download differs from the payload"; exit 1; }
    read -r lu ls <"$WORK/leech.time"
    secs=$(echo "$t1 - $t0" | bc -l)
    gib=$(echo "$SIZE_MIB / 1024" | bc -l)
    rate=$(echo "$SIZE_MIB * 1048576 / $secs / 1000000" | bc -l)
    RATE[$pair]=$rate
    lcpu=$(echo "($lu + $ls) / $gib" | bc -l)
    scpu=$(echo "($s1 - $s0) / $HZ / $gib" | bc -l)
    ROWS+=("$(printf '%s|%s|%.1f|%.2f|%.2f|%d|%d' "$s" "$l" "$rate" "$lcpu" "$scpu" \
        $(($(cat "$WORK/leech.anon" 2>/dev/null || echo 0) / 1024)) $(($(cat "$WORK/seed.anon" 2>/dev/null || echo 0) / 1024)))")
    sleep 1
done

name() { [ "$1" = lt ] && echo libtorrent || echo Peer; }
echo
echo "1 seeder -> 1 leecher over loopback ($TRANSPORT), ${SIZE_MIB} MiB, ${PIECE_KIB} KiB pieces, v1, one run ($(nproc) cores)"
echo "| seeder -> leecher | MB/s | vs lt->lt | leecher CPU s/GiB | seeder CPU s/GiB | leecher peak anon MiB | seeder peak anon MiB |"
echo "|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r s l rate lcpu scpu lmem smem <<<"$row"
    printf '| %s -> %s | %s | %.2f | %s | %s | %s | %s |\n' "$(name "$s")" "$(name "$l")" "$rate" \
        "$(echo "$rate / ${RATE[lt:lt]:-$rate}" | bc -l)" "$lcpu" "$scpu" "$lmem" "$smem"
done
