#!/usr/bin/env bash
# Benchmark, not a test: the daemon's API with many torrents loaded.
#
# Starts a release `peer serve` on 127.0.0.1 (DHT and local discovery off), adds N small torrents whose
# data is on disk (so each is an idle seeding torrent with a running engine), then
#   - measures `GET /api/torrents` with wrk (1 thread, 4 connections, 10 s): median and 99th percentile;
#   - reports the daemon's memory (RssAnon and VmRSS) before and after, and the difference per torrent;
#   - times the restart: how long until all N are listed as seeding again (resume data from SQLite).
# The machines are shared and noisy: compare figures from one run only.
#
# Usage: scripts/bench-api.sh [N=1000]          (needs wrk from Debian's packages)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
SCRATCH=${PEER_SCRATCH:-.build-release}
swift build -c release --product peer --scratch-path "$SCRATCH" >/dev/null
PEER=$PWD/$SCRATCH/release/peer
WORK=${BENCH_DIR:-/tmp/peer-bench-api}
rm -rf "$WORK"
mkdir -p "$WORK"
export PEER_NO_DHT=1 PEER_NO_LSD=1

echo "making $N torrents of one 64 KiB file each"
/usr/bin/env python3 - "$WORK" "$N" <<'EOF'
import hashlib, os, sys
work, n = sys.argv[1], int(sys.argv[2])
def benc(v):
    if isinstance(v, int): return b"i%de" % v
    if isinstance(v, bytes): return b"%d:%s" % (len(v), v)
    if isinstance(v, str): return benc(v.encode())
    if isinstance(v, list): return b"l" + b"".join(map(benc, v)) + b"e"
    return b"d" + b"".join(benc(k) + benc(v[k]) for k in sorted(v)) + b"e"
os.makedirs(f"{work}/torrents"); os.makedirs(f"{work}/data")
for i in range(n):
    data = os.urandom(64 * 1024)
    name = f"item-{i:05d}.bin"
    open(f"{work}/data/{name}", "wb").write(data)
    pieces = b"".join(hashlib.sha1(data[o:o + 16384]).digest() for o in range(0, len(data), 16384))
    info = {"name": name, "length": len(data), "piece length": 16384, "pieces": pieces}
    open(f"{work}/torrents/{i:05d}.torrent", "wb").write(benc({"info": info}))
EOF

"$PEER" serve --api 127.0.0.1:0 --bind 127.0.0.1 --port 0 --state "$WORK/state" --download-dir "$WORK/data" \
    >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/state/api-address" ] && break; sleep 0.1; done
ADDR=$(cat "$WORK/state/api-address")
TOKEN=$(cat "$WORK/state/api-token")
mem() { awk '/^RssAnon:/ {a=$2} /^VmRSS:/ {r=$2} END {print a, r}' "/proc/$1/status"; }
read -r ANON0 RSS0 < <(mem $PID)

# wait_seeding [SINCE]: waits until all N are seeding; prints the seconds since SINCE (epoch seconds; default now)
wait_seeding() {
    /usr/bin/env python3 - "$ADDR" "$TOKEN" "$N" "${1:-}" <<'EOF'
import http.client, json, sys, time, urllib.parse
addr, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(addr)
start = float(sys.argv[4]) if sys.argv[4] else time.time()
while time.time() - start < 600:
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", "/api/torrents", headers={"Authorization": f"Bearer {token}"})
    ts = json.loads(c.getresponse().read())["torrents"]
    if len(ts) == n and all(t["state"] == "seeding" for t in ts):
        break
    time.sleep(0.5)
print(f"{time.time() - start:.2f}")
EOF
}
START=$(date +%s.%N)
/usr/bin/env python3 - "$ADDR" "$TOKEN" "$WORK/torrents" <<'EOF'
import http.client, os, sys, urllib.parse
addr, token, folder = sys.argv[1:4]
u = urllib.parse.urlparse(addr)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
for name in sorted(os.listdir(folder)):
    c.request("POST", "/api/torrents", body=open(os.path.join(folder, name), "rb").read(),
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-bittorrent"})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
EOF
ADDED=$(echo "$(date +%s.%N) - $START" | bc)
SEEDING=$(wait_seeding)
sleep 3
read -r ANON1 RSS1 < <(mem $PID)
echo "added $N torrents in ${ADDED} s; all seeding after ${SEEDING} s more"

BYTES=$(curl -s -H "Authorization: Bearer $TOKEN" "$ADDR/api/torrents" | wc -c)
for CONNS in 1 4; do
    WRK=$(wrk -t1 -c$CONNS -d10s --latency -H "Authorization: Bearer $TOKEN" "$ADDR/api/torrents")
    echo "GET /api/torrents with $N torrents ($BYTES bytes of JSON), wrk -t1 -c$CONNS -d10s:"
    echo "$WRK" | awk '/50%|90%|99%/ {print "  latency " $1 " " $2} /Requests\/sec/ {print "  " $0}'
done
echo "memory: RssAnon $((ANON0 / 1024)) -> $((ANON1 / 1024)) MiB, VmRSS $((RSS0 / 1024)) -> $((RSS1 / 1024)) MiB;" \
    "per idle torrent: $(((ANON1 - ANON0) / N)) KiB anonymous, $(((RSS1 - RSS0) / N)) KiB resident"

kill -TERM $PID
wait $PID || true
RESTART=$(date +%s.%N)
"$PEER" serve --api 127.0.0.1:0 --bind 127.0.0.1 --port 0 --state "$WORK/state" >"$WORK/serve-2.log" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -s "$WORK/state/api-address" ] && break; sleep 0.1; done
ADDR=$(cat "$WORK/state/api-address")
echo "restart: all $N seeding again $(wait_seeding "$RESTART") s after the process started (resume data in SQLite, files unchanged)"
