"""scripts/bench-live.sh's body: the interop test's publisher and viewers (Tests/interop/test_live.py), at scale."""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "interop"))
os.environ.pop("PEER_NO_DHT", None)
os.environ["PEER_NO_LSD"] = "1"
os.environ["PEER_DHT_BOOTSTRAP"] = ""

from test_live import SRC, Publisher, Viewer, missing  # noqa: E402


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def run(count, max_up, base):
    tmp = __import__("pathlib").Path(tempfile.mkdtemp(prefix=f"live{count}-", dir=base))
    src = Publisher(tmp)
    viewers = []
    try:
        for i in range(count):
            # 127.0.0.41 up: past the publisher's .40.
            viewers.append(Viewer(src.link, f"127.0.0.{41 + i}", tmp, f"{SRC}:{src.port}", max_up=max_up))
            time.sleep(10 / count)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not all(len(v.records) > 200 for v in viewers):
            time.sleep(0.5)
        time.sleep(3)
        t0, s0, seq0 = time.monotonic(), src.stats(), src.gen.seq
        cpu0 = sum(cpu_seconds(p.p.pid) for p in [src, *viewers])
        time.sleep(30)
        t1, s1, seq1 = time.monotonic(), src.stats(), src.gen.seq
        cpu1 = sum(cpu_seconds(p.p.pid) for p in [src, *viewers])
        lat = sorted(l for v in viewers for _, l, t in v.records if t0 <= t <= t1)
        lost = sum(len(missing(v.records, seq0, seq1 - 100)) for v in viewers)
        total = (seq1 - 100 - seq0 + 1) * len(viewers)
        up = (s1["uploaded_bytes"] - s0["uploaded_bytes"]) / max(1, s1["published_bytes"] - s0["published_bytes"])
        quiet = sum(1 for v in viewers if not v.records)
        return (f"| {count} | {max_up} | {statistics.median(lat):.3f} | {lat[int(len(lat) * 0.95)]:.3f} | "
                f"{lat[-1]:.3f} | {lost} of {total} | {up:.2f} | {(cpu1 - cpu0) / (t1 - t0):.2f} | {quiet} |")
    finally:
        for v in viewers:
            v.stop()
        src.stop()


def main():
    counts = [int(c) for c in sys.argv[1].split(",")]
    assert all(1 <= c <= 200 for c in counts), "1 to 200 viewers (127.0.0.41 to .240)"
    max_up = sys.argv[2]
    print("| viewers | --max-up | latency median s | p95 s | max s | records lost | publisher upload (x stream) "
          "| CPU cores used | viewers that got nothing |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="peer-bench-live-") as base:
        for c in counts:
            print(run(c, max_up, base), flush=True)


if __name__ == "__main__":
    main()
