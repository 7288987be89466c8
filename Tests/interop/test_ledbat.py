"""Issue 16: LEDBAT (uTP's congestion control) on a shaped link. Three network namespaces in a row (`RoutedPair`):
the seeder's side, a router, the leecher's side; the router sends towards the leecher through `tc`'s token bucket
filter at 20 Mbit/s with a queue of 500 ms. This kernel has no netem, so the link adds no delay of its own: the
base RTT is a fraction of a millisecond, and every millisecond of RTT above it is queue. (The bottleneck is in
the middle, as a home router's is: shaped on the sender's own device, TCP's small-queue limit kept iperf3 at a
quarter of the link whatever uTP did.)

A Peer-to-Peer uTP transfer runs alone for 20 s, then beside a TCP bulk flow for 20 s (iperf3, Debian's, with CUBIC,
the default of Linux and Windows; this machine defaults to BBR, which keeps the queue near empty by itself):
- alone, uTP uses at least 80% of the link, and the queueing delay it adds (ping minus idle ping) stays near its
  100 ms target;
- beside TCP, uTP backs off to at most a quarter of the link;
- once TCP is done, the same uTP connection takes the link back (at least half of it within 10 s).
The download's progress is the leecher's bytes written (`wchar` in /proc/PID/io), sampled four times a second.
"""
import json
import re
import statistics
import subprocess
import threading
import time

import pytest

from clients import RoutedPair, in_ns
from conftest import PEER, det_bytes, run_peer
from test_swarm import procs  # noqa: F401 (a fixture)

LINK = 20_000_000 / 8  # bytes per second
PHASE = 20  # seconds alone, then beside TCP
RECOVER = 12  # seconds after TCP


def wchar(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            return int(re.search(r"wchar: (\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return None


def rate(samples, start, end):
    """Bytes per second between the samples nearest to `start` and `end` (seconds from the first sample)."""
    t0 = samples[0][0]
    a = min(samples, key=lambda s: abs(s[0] - t0 - start))
    b = min(samples, key=lambda s: abs(s[0] - t0 - end))
    return (b[1] - a[1]) / (b[0] - a[0])


def pings(log, start, end):
    """RTTs (ms) of `ping -D` lines whose time stamps fall between the two instants (time.time())."""
    out = []
    for m in re.finditer(r"\[(\d+\.\d+)\].*time=([\d.]+) ms", log.read_text()):
        if start <= float(m.group(1)) <= end:
            out.append(float(m.group(2)))
    return out


@pytest.fixture
def netns():
    pair = RoutedPair()
    yield pair
    pair.close()


def test_ledbat_fills_an_idle_link_and_yields_to_tcp(tmp_path, procs, netns):
    subprocess.run(in_ns(netns.r, ["tc", "qdisc", "add", "dev", netns.r_to_b, "root", "tbf", "rate", "20mbit",
                                   "burst", "64kb", "limit", str(int(LINK / 2))]), check=True, timeout=15)
    src = tmp_path / "data" / "stream.bin"
    src.parent.mkdir()
    src.write_bytes(det_bytes(128 << 20, "ledbat"))  # more than the 52 s can carry (about 80 MiB)
    torrent = tmp_path / "stream.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "256K", "--no-date")
    seed = procs(in_ns(netns.a, [PEER, "share", torrent, "--data", src.parent, "--bind", netns.addr_a, "--port", "0",
                                 "--no-dht", "--no-lsd", "--state", tmp_path / "seed-state"]), tmp_path / "seed.log")
    port = int(seed.wait_for(r"listening on [\d.]+:(\d+)", timeout=60).group(1))
    idle = subprocess.run(in_ns(netns.a, ["ping", "-c", "10", "-i", "0.2", "-n", netns.addr_b]), capture_output=True,
                          text=True, timeout=30).stdout
    idle_rtt = statistics.median(float(x) for x in re.findall(r"time=([\d.]+) ms", idle))
    ping_log = tmp_path / "ping.log"
    procs(in_ns(netns.a, ["ping", "-D", "-i", "0.2", "-n", netns.addr_b]), ping_log)
    procs(in_ns(netns.b, ["iperf3", "-s", "-B", netns.addr_b, "-p", "5201", "-1"]), tmp_path / "iperf3-server.log")

    leech = procs(in_ns(netns.b, [PEER, "get", torrent, "-o", tmp_path / "out", "--peer", f"{netns.addr_a}:{port}",
                                  "--bind", netns.addr_b, "--port", "0", "--no-dht", "--no-lsd", "--transport", "utp",
                                  "--state", tmp_path / "leech-state"]), tmp_path / "leech.log")
    pid = leech.p.pid
    deadline = time.monotonic() + 30
    while (wchar(pid) or 0) < 512 << 10:
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)
    samples = [(time.monotonic(), wchar(pid))]
    started = time.time()
    tcp = None
    while time.monotonic() - samples[0][0] < 2 * PHASE + RECOVER:
        time.sleep(0.25)
        value = wchar(pid)
        assert value is not None, "the leecher ended before the test did (the payload is too small?)"
        samples.append((time.monotonic(), value))
        if tcp is None and time.monotonic() - samples[0][0] >= PHASE:
            tcp_started = time.time()
            tcp = subprocess.Popen(in_ns(netns.a, ["iperf3", "-c", netns.addr_b, "-B", netns.addr_a, "-p", "5201",
                                                   "-C", "cubic", "-t", str(PHASE), "--json"]),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = tcp.communicate(timeout=30)
    iperf = json.loads(out)
    tcp_rate = iperf["end"]["sum_received"]["bytes"] / iperf["end"]["sum_received"]["seconds"]

    alone = rate(samples, 8, PHASE)
    beside = rate(samples, PHASE + 6, 2 * PHASE)
    after = rate(samples, 2 * PHASE + RECOVER - 6, 2 * PHASE + RECOVER)
    alone_rtt = statistics.median(pings(ping_log, started + 8, started + PHASE))
    beside_rtt = statistics.median(pings(ping_log, tcp_started + 6, tcp_started + PHASE))
    print(f"\nLEDBAT on 20 Mbit/s: uTP alone {alone / LINK:.2f} of the link, queueing delay "
          f"{alone_rtt - idle_rtt:.1f} ms (idle RTT {idle_rtt:.2f} ms); beside TCP uTP {beside / LINK:.2f}, "
          f"TCP {tcp_rate / LINK:.2f}, RTT {beside_rtt:.0f} ms; after TCP uTP {after / LINK:.2f}")
    assert alone >= 0.8 * LINK, f"uTP alone used {alone / LINK:.2f} of the link"
    assert 30 <= alone_rtt - idle_rtt <= 160, f"uTP alone added {alone_rtt - idle_rtt:.1f} ms of queue"
    assert beside <= 0.25 * LINK, f"uTP beside TCP used {beside / LINK:.2f} of the link"
    assert after >= 0.5 * LINK, f"uTP took back only {after / LINK:.2f} of the link after TCP"
