"""Issue 13: interop with rtorrent 0.9.8 (Debian's; libtorrent-rakshasa underneath), both ways, found through
opentracker (HTTP announce), with the SHA-256 of every file compared to the source's.

rtorrent runs headless (`system.daemon.set`, see clients.Rtorrent) and is watched over its XML-RPC socket. Every
node has its own address on 127.0.5.x (used by no other test): opentracker .1, Peer's seed .2, rtorrent's leecher
.3, rtorrent's seed .4, Peer's leecher .5, and .6 for the test where Peer and rtorrent share one.

Issue 13 reported Peer -> rtorrent through a tracker failing half the time (0 B in 40-100 s). Over 150 runs with a
separate address per client it never failed (2026-12-06: either side announcing first, HTTP and UDP announce, every
encryption setting on both sides, PEX and DHT on or off, 256 KiB to 16 MiB pieces). It fails when both clients
share one address and Peer announces first: 4 of 10 runs (2026-12-07), and 6 of 10 with libtorrent 2.0 seeding in
Peer's place. test_peer_seeds_to_rtorrent_on_one_address says why (rtorrent keeps one peer per IP address) and
covers the case that works.
"""
import json
import time

import pytest

from clients import Opentracker, Rtorrent, free_port
from conftest import PEER, det_bytes, run_peer
from test_swarm import procs, tree_digest  # noqa: F401 (procs is a fixture)

MiB = 1024 * 1024
# 24 MiB in three files, two of them not a multiple of 16 KiB.
FILES = {"one.bin": 16 * MiB, "sub/two.bin": 8 * MiB - 12_345, "sub/three.txt": 12_345 + 7}
TIMEOUT = 90  # seconds for one transfer (24 MiB take a few seconds here); one that stops moving fails sooner
STALL = 25
TRACKER, PEER_SEED, RT_LEECH, RT_SEED, PEER_LEECH, SHARED = (f"127.0.5.{i}" for i in range(1, 7))


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    base = tmp_path_factory.mktemp("rtorrent")
    src = base / "src" / "album"
    for rel, size in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(det_bytes(size, rel))
    return {"src": src, "data": src.parent, "digest": tree_digest(src)}


@pytest.fixture
def tracked(payload, tmp_path, procs):
    """A v1 torrent of the payload that names opentracker (HTTP), and opentracker serving it."""
    port = free_port(TRACKER)
    torrent = tmp_path / "album.torrent"
    info = json.loads(run_peer("create", payload["src"], "-o", torrent, "--v1", "--piece-length", "256K",
                               "--tracker", f"http://{TRACKER}:{port}/announce", "--no-date", "--json").stdout)
    tracker = Opentracker(procs, tmp_path / "opentracker.log", [info["info_hash_v1"]], TRACKER, port)
    yield torrent
    tracker.close()


@pytest.mark.parametrize("first", ["peer", "rtorrent"])
def test_peer_seeds_to_rtorrent(payload, tmp_path, procs, tracked, first):
    """`peer share` seeds; rtorrent, which knows only the tracker, downloads everything. Whoever announces
    second gets the other from the tracker and dials it: with rtorrent first, Peer's seed dials rtorrent."""
    def share():
        s = procs([PEER, "share", tracked, "--data", payload["data"], "--bind", PEER_SEED, "--port", "0",
                   "--state", tmp_path / "peer-state"], tmp_path / "peer-share.log")
        s.wait_for(r"listening on [\d.]+:(\d+)")
        return s

    start = time.monotonic()
    seed = share() if first == "peer" else None
    rt = Rtorrent(procs, tmp_path, RT_LEECH, free_port(RT_LEECH), tracked, tmp_path / "rt-out")
    if seed is None:
        rt.wait_announced()
        seed = share()
    rt.wait_complete(TIMEOUT, other=seed, stall=STALL)
    print(f"rtorrent had all {sum(FILES.values())} bytes after {time.monotonic() - start:.1f} s")
    assert tree_digest(tmp_path / "rt-out" / "album") == payload["digest"]


def test_peer_seeds_to_rtorrent_on_one_address(payload, tmp_path, procs, tracked):
    """Issue 13's half-failure, on the address it happened on: Peer's seed and rtorrent share one IP address.

    The cause is rtorrent's: libtorrent-rakshasa keeps one peer record per IP address (its PeerList is keyed by
    the address alone), and it will not dial an address it shook hands with in the last 600 s. opentracker
    names every announcer to itself too, so an rtorrent that announces after Peer's seed gets two peers on one
    address, itself and Peer. When it happens to dial itself first ("is self" in its log), it shuns the whole
    address for ten minutes and never dials Peer, and Peer, having announced first, hears of rtorrent only at
    its next announce (opentracker asks for 28 min, 14 at least). That is the half of the runs that moved 0 B;
    libtorrent 2.0 seeding in Peer's place fails the same way. A separate address per client (the tests above)
    or a seed that announces after rtorrent avoids it.

    This test pins the second way: rtorrent announces first, dials itself and shuns the address, and still takes
    Peer's connection from that same address and downloads everything."""
    rt = Rtorrent(procs, tmp_path, SHARED, free_port(SHARED), tracked, tmp_path / "rt-out")
    rt.wait_announced()
    deadline = time.monotonic() + 20
    while "is self" not in rt.log():
        assert time.monotonic() < deadline, f"rtorrent never dialled itself:\n{rt.log()[-3000:]}"
        time.sleep(0.1)
    seed = procs([PEER, "share", tracked, "--data", payload["data"], "--bind", SHARED, "--port", "0",
                  "--state", tmp_path / "peer-state"], tmp_path / "peer-share.log")
    seed.wait_for(r"listening on [\d.]+:(\d+)")
    rt.wait_complete(TIMEOUT, other=seed, stall=STALL)
    assert tree_digest(tmp_path / "rt-out" / "album") == payload["digest"]


def test_rtorrent_seeds_to_peer(payload, tmp_path, procs, tracked):
    """rtorrent seeds (after checking the payload); `peer get`, which knows only the tracker, downloads
    everything."""
    rt = Rtorrent(procs, tmp_path, RT_SEED, free_port(RT_SEED), tracked, payload["data"])
    rt.wait_complete(30)  # its check of the payload
    out = tmp_path / "out"
    start = time.monotonic()
    p = run_peer("get", tracked, "-o", out, "--bind", PEER_LEECH, "--port", "0", "--state", tmp_path / "peer-state",
                 check=False, timeout=TIMEOUT + 30)
    assert p.returncode == 0, f"{p.stderr[-3000:]}\n--- rtorrent log (tail):\n{rt.log()[-4000:]}"
    print(f"peer get had all {sum(FILES.values())} bytes after {time.monotonic() - start:.1f} s")
    assert tree_digest(out / "album") == payload["digest"]
    assert rt.d("up.total") > 0
