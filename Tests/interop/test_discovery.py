"""Local service discovery (BEP 14): Peer nodes with no tracker, no DHT and no --peer find each other by
multicast, inside a network namespace the test makes (its `lo` given multicast and a route for 224.0.0.0/4),
so that nothing reaches a real network."""
import os
import subprocess
import time
import uuid

import pytest

from conftest import PEER, run_peer
from test_swarm import tree_digest


def sh(*args):
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@pytest.fixture
def netns():
    name = f"peerlsd-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "multicast", "on")
        sh("ip", "netns", "exec", name, "ip", "route", "add", "224.0.0.0/4", "dev", "lo")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@pytest.mark.parametrize("lsd", [True, False], ids=["lsd", "no-lsd"])
def test_local_discovery_finds_the_seed(tmp_path, netns, lsd, monkeypatch):
    monkeypatch.delenv("PEER_NO_LSD")
    src = tmp_path / "src" / "local"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(3_000_000))
    (src / "b.txt").write_bytes(b"found on the local network\n")
    torrent = tmp_path / "l.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "64K")
    inside = ["ip", "netns", "exec", netns]
    seed = subprocess.Popen(inside + [PEER, "share", torrent, "--data", src.parent, "--bind", "127.0.0.2", "--port",
                                      "0", "--state", tmp_path / "s1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        get = inside + [PEER, "get", torrent, "-o", tmp_path / "out", "--bind", "127.0.0.3", "--port", "0",
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
