"""Issue: interop with the clients people run. Full transfers of a 64 MiB multi-file payload between `peer` and
Transmission 3.00 / aria2 1.36, each way, found through opentracker (HTTP or UDP announce) or dialed directly
(`peer get --peer` / `peer share --peer`); the SHA-256 of every real file must equal the source's.

Hybrid (v1 + v2) torrents, measured here: neither client speaks v2, and neither can use a hybrid at all, because
BEP 52's `file tree` keeps each file under an empty dictionary key (""):
- Transmission 3.00's bencode parser rejects a dictionary with an empty key: the .torrent is "invalid or corrupt";
  through a magnet link it fetches the info dictionary from Peer (BEP 9), checks its SHA-1, and cannot parse it
  ("checksum passed 1, metainfo parsed 0").
- aria2 1.36 re-encodes the info dictionary to hash it and loses the entries under empty keys, so the info-hash it
  computes is wrong, for the .torrent and again after fetching the info dictionary through a magnet link; it then
  announces (and handshakes) under that wrong hash.
`test_transmission_hybrid` and `test_aria2_hybrid` check exactly that, and run hybrid transfers both ways instead
should a version that gets it right be installed.

So the transfers are v1, and "v1pad": the hybrid's v1 side alone, a v1 torrent with BEP 47 pad files (what a
v1-only client would make of the hybrid). Neither client knows BEP 47: as leechers both write the pad files as
`.pad/N` files (checked: full of the zeros Peer served), as seeders they need them on disk (the tests put them in a
client's seed folder, as a user who downloaded the torrent with that client would have them). Peer writes none
(checked). Only real files are compared.

Transmission 3.00 connects to no 127.x peer, so each Transmission test makes two network namespaces joined by a
veth pair (10.99.K.1 for Peer and opentracker, 10.99.K.2 for Transmission) and deletes them afterwards. aria2 runs
on 127.0.0.x like the libtorrent tests (its sockets bound with --interface; a UDP tracker needs its DHT on).

Modes: a Transmission transfer takes 30-45 s here (Transmission unchokes a new peer on its 10 s round, and moves
2-4 MiB/s with Peer), so Transmission gets four: Transmission -> Peer v1 direct and v1pad over UDP announce,
Peer -> Transmission v1pad direct and v1 over HTTP announce. aria2 transfers take seconds: aria2 gets both
directions of v1 in every mode (direct, HTTP, UDP), and v1pad both ways (aria2 -> Peer direct, Peer -> aria2 HTTP).
"""
import hashlib
import json
import shutil
import socket
import subprocess
import time
from urllib.parse import unquote_to_bytes

import pytest

from clients import (NetnsPair, Opentracker, Transmission, aria2_cmd, bdecode, bencode, folder_bytes, free_port,
                     in_ns, wait_done, wait_listening)
from conftest import PEER, det_bytes
from test_swarm import procs, tree_digest  # noqa: F401 (procs is a fixture)

MiB = 1024 * 1024
# 64 MiB in four files; two are not a multiple of 16 KiB, and in a hybrid torrent pad files follow them.
FILES = {
    "big.bin": 40 * MiB,
    "disc/two.bin": 20 * MiB + 12_345,
    "disc/three.bin": 4 * MiB - 12_345 - 5_000,
    "notes.txt": 5_000,
}
TIMEOUT = 120  # seconds for one transfer (64 MiB take 2-45 s here); a transfer that stops moving fails sooner
STALL = 20


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    base = tmp_path_factory.mktemp("clients")
    src = base / "src" / "album"
    for rel, size in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(det_bytes(size, rel))
    return {"base": base, "src": src, "data": src.parent, "digest": tree_digest(src)}


def peer_json(*args):
    p = subprocess.run([PEER, *map(str, args), "--json"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def make_torrent(payload, out, kind, tracker=None):
    """kind: v1, hybrid, or v1pad: the v1 side of the hybrid alone (the hybrid without `file tree`, `meta version`
    and `piece layers`), a v1 torrent with BEP 47 pad files, which is what a v1-only client would make of it."""
    args = ["create", payload["src"], "-o", out, "--hybrid" if kind == "v1pad" else f"--{kind}", "--piece-length",
            "256K", "--no-date"]
    info = peer_json(*args, *(["--tracker", tracker] if tracker else []))
    if kind == "v1pad":
        t = bdecode(out.read_bytes())
        for key in (b"file tree", b"meta version"):
            del t[b"info"][key]
        del t[b"piece layers"]
        out.write_bytes(bencode(t))
        info = peer_json("info", out)
        assert any(f["padding"] for f in info["files"])
    assert info["version"] == ("v1" if kind == "v1pad" else kind)
    return info


def magnet(info, tracker=None):
    link = f"magnet:?xt=urn:btih:{info['info_hash_v1']}&dn={info['name']}"
    return link + (f"&tr={tracker}" if tracker else "")


def whitelist(info):
    """opentracker serves only listed hashes: the v1 one and, for a hybrid, the truncated v2 one."""
    return [h for h in (info["info_hash_v1"], info.get("info_hash_v2_truncated")) if h]


def client_seed_folder(payload, info, dest):
    """A copy of the payload for a client to seed, with the torrent's pad files (zeros) as ordinary files: a client
    without BEP 47 reads them like any other file."""
    shutil.copytree(payload["src"], dest / "album")
    for f in info["files"]:
        if f["padding"]:
            (dest / f["path"]).parent.mkdir(parents=True, exist_ok=True)
            (dest / f["path"]).write_bytes(bytes(f["length"]))
    return dest


def check_pad_files(album, info, written_by_peer):
    """Peer knows BEP 47 and writes no pad file. A client that does not writes them as ordinary files: then they
    must hold the zeros Peer served."""
    pad = album / ".pad"
    if written_by_peer:
        assert not pad.exists(), sorted(pad.iterdir())
    elif pad.exists():
        sizes = {f["path"].rsplit("/", 1)[1]: f["length"] for f in info["files"] if f["padding"]}
        for p in pad.iterdir():
            assert p.read_bytes() == bytes(sizes[p.name]), p


class PeerSide:
    """Runs `peer` bound to addr, in network namespace ns (None: here)."""

    def __init__(self, procs, tmp_path, ns, addr):
        self.procs, self.tmp, self.ns, self.addr = procs, tmp_path, ns, addr

    def share(self, torrent, data, peers=()):
        args = [PEER, "share", torrent, "--data", data, "--bind", self.addr, "--port", "0",
                "--state", self.tmp / "peer-state"]
        for p in peers:
            args += ["--peer", p]
        s = self.procs(in_ns(self.ns, args), self.tmp / "peer-share.log")
        s.wait_for(r"listening on [\d.]+:(\d+)")
        return s

    def start_get(self, torrent, out, peers=(), log="peer-get.log"):
        args = [PEER, "get", torrent, "-o", out, "--bind", self.addr, "--port", "0", "--state", self.tmp / "peer-state"]
        for p in peers:
            args += ["--peer", p]
        return self.procs(in_ns(self.ns, args), self.tmp / log)

    def get(self, torrent, out, peers=(), other=None):
        """`peer get` until it exits 0 (bounded; fails once nothing has been written for STALL seconds, or when
        other, the client's Proc, exits)."""
        g = self.start_get(torrent, out, peers)

        def done():
            if other is not None and other.p.poll() is not None and g.p.poll() is None:
                raise AssertionError(f"the client exited {other.p.returncode} early:\n{log(other)}")
            return g.p.poll() is not None

        wait_done(done, lambda: folder_bytes(out), "peer get", TIMEOUT, STALL,
                  details=lambda: log(g) + (f"\n--- client:\n{log(other)}" if other else ""))
        assert g.p.returncode == 0, f"peer get exited {g.p.returncode}:\n{log(g)}"
        assert "complete" in log(g)


def log(proc, tail=4000):
    proc.log.seek(0)
    return proc.log.read()[-tail:]


def wait_first_announce(seconds=1.5):
    """opentracker knows a seed only after its first announce, which the seeders here send as they start."""
    time.sleep(seconds)


# --- Transmission ---------------------------------------------------------------------------------------------

@pytest.fixture
def netns():
    """A fresh pair of namespaces. Tests ask for it before `procs`, so that their processes are stopped before the
    namespaces go."""
    pair = NetnsPair()
    yield pair
    pair.close()


def transmission_transfer(payload, tmp_path, procs, netns, seeder, kind, mode, torrent=None, info=None):
    tracker = None
    if torrent is None:
        torrent = tmp_path / f"{kind}.torrent"
        url = {"udp": f"udp://{netns.addr_a}:6969", "http": f"http://{netns.addr_a}:6969/announce"}.get(mode)
        info = make_torrent(payload, torrent, kind, url)
    if mode != "direct":
        tracker = Opentracker(procs, tmp_path / "opentracker.log", whitelist(info), netns.addr_a, 6969, ns=netns.a)
    try:
        peer = PeerSide(procs, tmp_path, netns.a, netns.addr_a)
        tr = Transmission(procs, tmp_path, netns.b, netns.addr_b)
        tr_addr = f"{netns.addr_b}:{tr.port}"
        if seeder == "client":
            tr.add(torrent, client_seed_folder(payload, info, tmp_path / "tr-seed"))
            tr.wait_complete(60)
            if mode != "direct":
                tr.wait_announced()
            out = tmp_path / "out"
            peer.get(torrent, out, peers=[tr_addr] if mode == "direct" else [], other=tr.proc)
        else:
            out = tmp_path / "tr-out"
            if mode == "direct":
                tr.add(torrent, out)
                tr.wait_known()
                wait_listening(netns.b, netns.addr_b, tr.port, tr.proc)
                s = peer.share(torrent, payload["data"], peers=[tr_addr])
            else:
                s = peer.share(torrent, payload["data"])
                wait_first_announce()
                tr.add(torrent, out)
            tr.wait_complete(TIMEOUT, other=s, stall=STALL)
        tr.stop()
        check_pad_files(out / "album", info, written_by_peer=seeder == "client")
        assert tree_digest(out / "album") == payload["digest"]
        return out / "album"
    finally:
        if tracker:
            tracker.close()


@pytest.mark.parametrize("seeder,kind,mode", [("client", "v1", "direct"), ("client", "v1pad", "udp"),
                                              ("peer", "v1pad", "direct"), ("peer", "v1", "http")],
                         ids=["tr-to-peer-v1-direct", "tr-to-peer-v1pad-udp", "peer-to-tr-v1pad-direct",
                              "peer-to-tr-v1-http"])
def test_transmission(payload, tmp_path, netns, procs, seeder, kind, mode):
    transmission_transfer(payload, tmp_path, procs, netns, seeder, kind, mode)


def test_transmission_hybrid(payload, tmp_path, netns, procs):
    """Transmission 3.00 cannot load a hybrid: the .torrent is refused, and through a magnet link it checks the
    SHA-1 of the info dictionary Peer sends (BEP 9) but cannot parse it. A Transmission that can is tested both
    ways (Transmission -> Peer over UDP announce, Peer -> Transmission direct)."""
    torrent = tmp_path / "hybrid.torrent"
    info = make_torrent(payload, torrent, "hybrid")
    tr = Transmission(procs, tmp_path / "probe", netns.b, netns.addr_b)
    refused = tr.remote("-a", torrent, "-w", tmp_path / "probe-out", check=False)
    if "invalid or corrupt torrent file" not in refused.stdout:
        # This Transmission loads hybrids: then it must take them as v1 (the hash it shows) and transfer them.
        assert f"Hash: {info['info_hash_v1']}" in tr.info()
        tr.proc.stop()
        for seeder, mode, sub in (("client", "udp", "a"), ("peer", "direct", "b")):
            (tmp_path / sub).mkdir()
            url = f"udp://{netns.addr_a}:6969" if mode == "udp" else None
            t = tmp_path / sub / "hybrid.torrent"
            transmission_transfer(payload, tmp_path / sub, procs, netns, seeder, "hybrid", mode, t,
                                  make_torrent(payload, t, "hybrid", url))
        return
    assert "3.00" in subprocess.run(["transmission-daemon", "--version"], capture_output=True, text=True).stderr
    tr.add(magnet(info), tmp_path / "tr-out")
    tr.wait_known()
    wait_listening(netns.b, netns.addr_b, tr.port, tr.proc)
    PeerSide(procs, tmp_path, netns.a, netns.addr_a).share(torrent, payload["data"], peers=[f"{netns.addr_b}:{tr.port}"])
    tr.proc.wait_for(r"checksum passed 1, metainfo parsed 0", timeout=30)
    assert "Piece Count: 0" in tr.info()


# --- aria2 ----------------------------------------------------------------------------------------------------

PEER_ADDR = "127.0.0.101"
ARIA2_ADDR = "127.0.0.102"
TRACKER_ADDR = "127.0.0.103"


def aria2_info_hash(torrent):
    p = subprocess.run(["aria2c", "-S", str(torrent)], capture_output=True, text=True, timeout=30)
    for line in p.stdout.splitlines():
        if line.startswith("Info Hash:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(p.stdout + p.stderr)


def without_empty_keys(x):
    if isinstance(x, dict):
        return {k: without_empty_keys(v) for k, v in x.items() if k != b""}
    if isinstance(x, list):
        return [without_empty_keys(v) for v in x]
    return x


def aria2_quirk_hash(torrent):
    """The info-hash aria2 1.36 computes for a hybrid: it re-encodes the info dictionary to hash it, and its
    bencode decoder loses the entries under an empty key, which is every file of BEP 52's file tree."""
    return hashlib.sha1(bencode(without_empty_keys(bdecode(torrent.read_bytes())[b"info"]))).hexdigest()


def aria2_setup(payload, tmp_path, procs, kind, mode):
    torrent = tmp_path / f"{kind}.torrent"
    tracker, url = None, None
    if mode != "direct":
        port = free_port(TRACKER_ADDR)
        url = f"udp://{TRACKER_ADDR}:{port}" if mode == "udp" else f"http://{TRACKER_ADDR}:{port}/announce"
    info = make_torrent(payload, torrent, kind, url)
    if url:
        tracker = Opentracker(procs, tmp_path / "opentracker.log", whitelist(info), TRACKER_ADDR, port)
    dht = {}
    if mode == "udp":
        # (aria2 complains that this routing table file does not exist yet: harmless)
        dht = {"dht_port": free_port(ARIA2_ADDR, socket.SOCK_DGRAM), "dht_file": tmp_path / "aria2-dht.dat"}
    return torrent, info, tracker, dht


def aria2_to_peer(payload, tmp_path, procs, kind, mode):
    torrent, info, tracker, dht = aria2_setup(payload, tmp_path, procs, kind, mode)
    try:
        peer = PeerSide(procs, tmp_path, None, PEER_ADDR)
        a_port = free_port(ARIA2_ADDR)
        folder = client_seed_folder(payload, info, tmp_path / "aria2-seed")
        a = procs(aria2_cmd("seed", torrent, folder, ARIA2_ADDR, a_port, TIMEOUT + 60, **dht), tmp_path / "aria2.log")
        wait_listening(None, ARIA2_ADDR, a_port, a)
        if mode != "direct":
            wait_first_announce()
        out = tmp_path / "out"
        peer.get(torrent, out, peers=[f"{ARIA2_ADDR}:{a_port}"] if mode == "direct" else [], other=a)
        check_pad_files(out / "album", info, written_by_peer=True)
        assert tree_digest(out / "album") == payload["digest"]
    finally:
        if tracker:
            tracker.close()


def peer_to_aria2(payload, tmp_path, procs, kind, mode):
    torrent, info, tracker, dht = aria2_setup(payload, tmp_path, procs, kind, mode)
    try:
        peer = PeerSide(procs, tmp_path, None, PEER_ADDR)
        a_port = free_port(ARIA2_ADDR)
        out = tmp_path / "aria2-out"
        if mode == "direct":
            a = procs(aria2_cmd("leech", torrent, out, ARIA2_ADDR, a_port, TIMEOUT, **dht), tmp_path / "aria2.log")
            wait_listening(None, ARIA2_ADDR, a_port, a)
            s = peer.share(torrent, payload["data"], peers=[f"{ARIA2_ADDR}:{a_port}"])
        else:
            s = peer.share(torrent, payload["data"])
            wait_first_announce()
            a = procs(aria2_cmd("leech", torrent, out, ARIA2_ADDR, a_port, TIMEOUT, **dht), tmp_path / "aria2.log")

        def done():
            if s.p.poll() is not None:
                raise AssertionError(f"peer share exited {s.p.returncode}:\n{log(s)}")
            return a.p.poll() is not None

        wait_done(done, lambda: folder_bytes(out), "aria2c", TIMEOUT, STALL,
                  details=lambda: f"{log(a)}\n--- peer share:\n{log(s)}")
        assert a.p.returncode == 0, f"aria2c exited {a.p.returncode}:\n{log(a)}\n--- peer share:\n{log(s)}"
        check_pad_files(out / "album", info, written_by_peer=False)
        assert tree_digest(out / "album") == payload["digest"]
    finally:
        if tracker:
            tracker.close()


ARIA2_CASES = [("v1", "direct"), ("v1", "http"), ("v1", "udp")]


@pytest.mark.parametrize("kind,mode", ARIA2_CASES + [("v1pad", "direct")], ids=lambda x: x)
def test_aria2_to_peer(payload, tmp_path, procs, kind, mode):
    aria2_to_peer(payload, tmp_path, procs, kind, mode)


@pytest.mark.parametrize("kind,mode", ARIA2_CASES + [("v1pad", "http")], ids=lambda x: x)
def test_peer_to_aria2(payload, tmp_path, procs, kind, mode):
    peer_to_aria2(payload, tmp_path, procs, kind, mode)


def test_aria2_hybrid(payload, tmp_path, procs):
    """aria2 1.36 computes a wrong info-hash for a hybrid (see aria2_quirk_hash), from the .torrent and again from
    the info dictionary it fetches through a magnet link, so it cannot join a hybrid's swarm. Checked here: the hash
    it shows for the .torrent; then, through a magnet link and opentracker, that it fetches the info dictionary
    from Peer (BEP 9, checked against the v1 btih) and announces the torrent under the wrong hash. An aria2 that
    gets the hash right is tested both ways (aria2 -> Peer direct, Peer -> aria2 over HTTP announce)."""
    probe = tmp_path / "probe.torrent"
    info = make_torrent(payload, probe, "hybrid")
    got = aria2_info_hash(probe)
    if got == info["info_hash_v1"]:
        for sub, run, mode in (("a", aria2_to_peer, "direct"), ("b", peer_to_aria2, "http")):
            (tmp_path / sub).mkdir()
            run(payload, tmp_path / sub, procs, "hybrid", mode)
        return
    assert got == aria2_quirk_hash(probe) != info["info_hash_v1"]
    torrent, info, tracker, _ = aria2_setup(payload, tmp_path, procs, "hybrid", "http")
    try:
        PeerSide(procs, tmp_path, None, PEER_ADDR).share(torrent, payload["data"])
        wait_first_announce()
        link = magnet(info, tracker.url("http"))
        a = procs(aria2_cmd("leech", link, tmp_path / "aria2-out", ARIA2_ADDR, free_port(ARIA2_ADDR), 60),
                  tmp_path / "aria2.log")
        a.wait_for(r"Download complete: \[MEMORY\]\[METADATA\]", timeout=30)
        m = a.wait_for(r"Tracker request \S+\?info_hash=([^&]+)&", timeout=30)
        assert unquote_to_bytes(m.group(1)).hex() == aria2_quirk_hash(torrent)
        a.wait_for("not authorized", timeout=10)
    finally:
        tracker.close()
