"""Local service discovery (BEP 14): Peer nodes with no tracker, no DHT and no --peer find each other by
multicast, inside network namespaces the test makes, so that nothing reaches a real network: IPv4 in one
namespace whose `lo` is given multicast and a route for 224.0.0.0/4; IPv6 (group ff15::efc0:988f) between two
namespaces joined by a veth pair with fd00:6771::1 and ::2 (Linux does not loop IPv6 multicast over `lo`)."""
import os
import subprocess
import time
import uuid

import pytest

from conftest import PEER, run_peer
from test_swarm import tree_digest


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@pytest.fixture(params=["ipv4", "ipv6"])
def hosts(request):
    """(seed's command prefix and address, leecher's command prefix and address) in namespaces made here."""
    tag = uuid.uuid4().hex[:6]
    made = []
    try:
        if request.param == "ipv4":
            name = f"peerlsd-{tag}"
            sh("ip", "netns", "add", name)
            made.append(name)
            inside = ["ip", "netns", "exec", name]
            sh(*inside, "ip", "link", "set", "lo", "up")
            sh(*inside, "ip", "link", "set", "lo", "multicast", "on")
            sh(*inside, "ip", "route", "add", "224.0.0.0/4", "dev", "lo")
            yield (inside, "127.0.0.2"), (inside, "127.0.0.3")
        else:
            sides = []
            for i, side in enumerate(["a", "b"], start=1):
                name = f"peerlsd6{side}-{tag}"
                sh("ip", "netns", "add", name)
                made.append(name)
                sides.append((name, f"l6{side}{tag}", f"fd00:6771::{i}"))
            sh("ip", "link", "add", sides[0][1], "type", "veth", "peer", "name", sides[1][1])
            for name, dev, addr in sides:
                sh("ip", "link", "set", dev, "netns", name)
                sh("ip", "netns", "exec", name, "ip", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
                sh("ip", "netns", "exec", name, "ip", "link", "set", dev, "up")
                sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
            yield tuple((["ip", "netns", "exec", name], addr) for name, _, addr in sides)
    finally:
        for name in made:  # deleting a namespace deletes its end of the veth pair, and with it the pair
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@pytest.mark.parametrize("lsd", [True, False], ids=["lsd", "no-lsd"])
def test_local_discovery_finds_the_seed(tmp_path, hosts, lsd, monkeypatch):
    monkeypatch.delenv("PEER_NO_LSD")
    (seed_ns, seed_addr), (leech_ns, leech_addr) = hosts
    src = tmp_path / "src" / "local"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(3_000_000))
    (src / "b.txt").write_bytes(b"found on the local network\n")
    torrent = tmp_path / "l.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "64K")
    seed = subprocess.Popen(seed_ns + [PEER, "share", torrent, "--data", src.parent, "--bind", seed_addr, "--port",
                                       "0", "--state", tmp_path / "s1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        get = leech_ns + [PEER, "get", torrent, "-o", tmp_path / "out", "--bind", leech_addr, "--port", "0",
                          "--state", tmp_path / "s2"]
        if lsd:
            p = subprocess.run(get, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert p.returncode == 0, p.stderr
            assert tree_digest(tmp_path / "out" / "local") == tree_digest(src)
        else:
            p = subprocess.Popen(get + ["--no-lsd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL)
            time.sleep(6)
            p.terminate()
            _, err = p.communicate(timeout=15)
            assert p.returncode == 130 and "downloaded 0 B" in err, err
    finally:
        seed.terminate()
        try:
            seed.wait(10)
        except subprocess.TimeoutExpired:
            seed.kill()
            seed.wait(5)
