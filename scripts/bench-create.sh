#!/usr/bin/env bash
# Benchmark, not a test: times `peer create` (v1, v2, hybrid), mktorrent (all cores) and libtorrent's torrent
# creation (v1, hybrid) on the same file with the page cache warm, in one run, and prints rates, peak memory
# and ratios (best of REPEATS=3 runs each). Usage: scripts/bench-create.sh [SIZE_MiB=1024] [PIECE_KiB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
PIECE_KIB=${2:-1024}
WORK=${BENCH_DIR:-/tmp/peer-bench-create}
mkdir -p "$WORK"
FILE="$WORK/payload-${SIZE_MIB}M.bin"
command -v mktorrent >/dev/null && [ -x /usr/bin/time ] && /usr/bin/python3 -c 'import libtorrent' 2>/dev/null || {
    echo "needs: apt-get install -y mktorrent python3-libtorrent time" >&2; exit 1; }

swift build -c release --product peer >/dev/null
PEER=$PWD/.build/release/peer
[ -f "$FILE" ] || head -c $((SIZE_MIB << 20)) /dev/urandom >"$FILE"
cat "$FILE" >/dev/null   # warm the page cache
LOG2=0; while [ $((1 << LOG2)) -lt $((PIECE_KIB * 1024)) ]; do LOG2=$((LOG2 + 1)); done
CORES=$(nproc)

REPEATS=${REPEATS:-3}
# run NAME COMMAND...: runs REPEATS times, prints "NAME best-seconds peakKiB" (best of the runs: the
# machines are shared, so the fastest run is the least disturbed one)
run() {
    local name=$1; shift
    local best="" peak=0 secs kib
    for _ in $(seq "$REPEATS"); do
        rm -f "$WORK/out.torrent"
        /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
        read -r secs kib <"$WORK/time"
        if [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=$secs; fi
        [ "$kib" -gt "$peak" ] && peak=$kib
    done
    echo "$name $best $peak"
}

LT_MAKE='
import libtorrent as lt, sys, os
f, out, pl, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fs = lt.file_storage(); lt.add_files(fs, f)
ct = lt.create_torrent(fs, pl, flags={"v1": lt.create_torrent.v1_only, "hybrid": 0}[kind])
lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(f)))
open(out, "wb").write(lt.bencode(ct.generate()))
'
{
    run peer-v1 "$PEER" create "$FILE" -o "$WORK/out.torrent" --v1 --piece-length "${PIECE_KIB}K" --force -q
    run peer-hybrid "$PEER" create "$FILE" -o "$WORK/out.torrent" --hybrid --piece-length "${PIECE_KIB}K" --force -q
    run peer-v2 "$PEER" create "$FILE" -o "$WORK/out.torrent" --v2 --piece-length "${PIECE_KIB}K" --force -q
    run mktorrent "$(command -v mktorrent)" -t "$CORES" -l "$LOG2" -o "$WORK/out.torrent" "$FILE"
    run libtorrent-v1 /usr/bin/python3 -c "$LT_MAKE" "$FILE" "$WORK/out.torrent" $((PIECE_KIB * 1024)) v1
    run libtorrent-hybrid /usr/bin/python3 -c "$LT_MAKE" "$FILE" "$WORK/out.torrent" $((PIECE_KIB * 1024)) hybrid
} >"$WORK/results"

awk -v reps="$REPEATS" -v size=$((SIZE_MIB << 20)) -v cores="$CORES" -v mib="$SIZE_MIB" -v pk="$PIECE_KIB" '
{ name[NR]=$1; secs[$1]=$2; rate[$1]=size/$2/1e9; mem[$1]=$3/1024 }
END {
  printf "torrent creation, %d MiB file, %d KiB pieces, %d cores, page cache warm, best of %d runs\n", mib, pk, cores, reps
  printf "%-18s %8s %10s %10s\n", "tool", "seconds", "GB/s", "peak MiB"
  for (i=1; i<=NR; i++) printf "%-18s %8.2f %10.2f %10.1f\n", name[i], secs[name[i]], rate[name[i]], mem[name[i]]
  printf "ratios: peer v1 / mktorrent = %.2f (target >= 1.0); peer hybrid / libtorrent hybrid = %.2f (target >= 1.5)\n",
    rate["peer-v1"]/rate["mktorrent"], rate["peer-hybrid"]/rate["libtorrent-hybrid"]
  printf "        peer v1 / libtorrent v1 = %.2f; peak memory of peer: v1 %.1f MiB, hybrid %.1f MiB (target < 64)\n",
    rate["peer-v1"]/rate["libtorrent-v1"], mem["peer-v1"], mem["peer-hybrid"]
}' "$WORK/results"
