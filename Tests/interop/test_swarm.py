"""Issue: swarm (first steps). Full transfers over loopback between `peer get`/`peer share` and libtorrent,
each node on its own 127.0.0.x, with the SHA-256 of the result compared to the source."""
import hashlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import PEER, run_peer

HERE = pathlib.Path(__file__).resolve().parent
LTPEER = str(HERE / "ltpeer.py")
PAYLOAD = 64 * 1024 * 1024 + 12345  # the 64 MiB, and not a multiple of any piece size


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root):
    """SHA-256 of every real file below root (padding files, which some clients write, are left out)."""
    out = {}
    for p in sorted(pathlib.Path(root).rglob("*")):
        if p.is_file() and ".pad" not in p.parts:
            out[str(p.relative_to(root))] = sha256(p)
    return out


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A background process that is always stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self, args, log):
        # The child shares this open file (and so its offset) with us. O_APPEND makes every write of the child go
        # to the end, whatever our seek(0) for reading has just done; with "w+" a write racing that seek landed at
        # offset 0 and overwrote what was there ("COMPLETE" became "OMPLETE" once in CI).
        open(log, "w").close()
        self.log = open(log, "a+")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  text=True)

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.seek(0)
            m = re.search(pattern, self.log.read())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        raise AssertionError(f"never saw {pattern!r}; output:\n{self.log.read()}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


@pytest.fixture
def procs():
    started = []
    yield lambda args, log: started.append(Proc(args, log)) or started[-1]
    for p in started:
        p.stop()


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    base = tmp_path_factory.mktemp("swarm")
    src = base / "src" / "album"
    (src / "cd1").mkdir(parents=True)
    (src / "cd1" / "01.bin").write_bytes(os.urandom(PAYLOAD))
    (src / "cd1" / "02.bin").write_bytes(os.urandom(300_001))
    (src / "notes.txt").write_bytes(b"hello\n")
    (src / "empty").write_bytes(b"")
    torrents = {}
    for kind in ("v1", "v2", "hybrid"):
        t = base / f"{kind}.torrent"
        run_peer("create", src, "-o", t, f"--{kind}", "--piece-length", "256K", "--no-date")
        torrents[kind] = t
    return {"base": base, "src": src, "data": src.parent, "torrents": torrents}


def peer_share(procs, tmp_path, torrent, data, addr):
    s = procs([PEER, "share", torrent, "--data", data, "--bind", addr, "--port", "0", "--state",
               tmp_path / f"state-{addr}"], tmp_path / f"share-{addr}.log")
    port = int(s.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    return s, port


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_peer_to_peer(payload, tmp_path, procs, kind):
    _, port = peer_share(procs, tmp_path, payload["torrents"][kind], payload["data"], "127.0.0.11")
    out = tmp_path / "out"
    p = run_peer("get", payload["torrents"][kind], "-o", out, "--peer", f"127.0.0.11:{port}",
                 "--bind", "127.0.0.12", "--port", "0", timeout=120)
    assert "complete" in p.stdout
    assert tree_digest(out / "album") == tree_digest(payload["src"])


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_libtorrent_to_peer(payload, tmp_path, procs, kind):
    port = free_port("127.0.0.13")
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(payload["torrents"][kind]), str(payload["data"]),
               "--bind", "127.0.0.13", "--port", str(port)], tmp_path / "lt-seed.log")
    s.wait_for("READY")
    out = tmp_path / "out"
    run_peer("get", payload["torrents"][kind], "-o", out, "--peer", f"127.0.0.13:{port}",
             "--bind", "127.0.0.14", "--port", "0", timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_peer_to_libtorrent(payload, tmp_path, procs, kind):
    _, port = peer_share(procs, tmp_path, payload["torrents"][kind], payload["data"], "127.0.0.15")
    out = tmp_path / "out"
    out.mkdir()
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", str(payload["torrents"][kind]), str(out),
                         "--bind", "127.0.0.16", "--port", str(free_port("127.0.0.16")),
                         "--connect", f"127.0.0.15:{port}", "--timeout", "100"],
                        capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


@pytest.mark.parametrize("encryption", ["forced", "rc4"])
def test_libtorrent_requiring_encryption_gets_from_a_peer_seed(payload, tmp_path, procs, encryption):
    """Message stream encryption: a libtorrent leecher that speaks only the encrypted handshake (no plaintext
    fallback), and with rc4 also accepts only an RC4-encrypted stream, downloads from a Peer seed."""
    _, port = peer_share(procs, tmp_path, payload["torrents"]["hybrid"], payload["data"], "127.0.0.77")
    out = tmp_path / "out"
    out.mkdir()
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", str(payload["torrents"]["hybrid"]), str(out),
                         "--bind", "127.0.0.78", "--port", str(free_port("127.0.0.78")),
                         "--connect", f"127.0.0.77:{port}", "--timeout", "100", "--encryption", encryption],
                        capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_peer_requiring_encryption_gets_from_libtorrent(payload, tmp_path, procs):
    """`peer get --encryption required` opens an encrypted handshake (offering RC4 only) to a libtorrent seed
    that takes nothing else, and downloads over the RC4 stream."""
    port = free_port("127.0.0.79")
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(payload["torrents"]["hybrid"]), str(payload["data"]),
               "--bind", "127.0.0.79", "--port", str(port), "--encryption", "rc4"], tmp_path / "lt-seed.log")
    s.wait_for("READY")
    out = tmp_path / "out"
    run_peer("get", payload["torrents"]["hybrid"], "-o", out, "--peer", f"127.0.0.79:{port}", "--encryption", "required",
             "--bind", "127.0.0.80", "--port", "0", timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_peer_dials_again_encrypted_when_plaintext_is_refused(payload, tmp_path, procs):
    """A libtorrent seed that refuses plaintext handshakes hangs up on `peer get`'s; in the default mode Peer then
    dials it again with an encrypted handshake, and the download completes."""
    port = free_port("127.0.0.84")
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(payload["torrents"]["v1"]), str(payload["data"]),
               "--bind", "127.0.0.84", "--port", str(port), "--encryption", "forced"], tmp_path / "lt-seed.log")
    s.wait_for("READY")
    out = tmp_path / "out"
    run_peer("get", payload["torrents"]["v1"], "-o", out, "--peer", f"127.0.0.84:{port}",
             "--bind", "127.0.0.85", "--port", "0", timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_peers_requiring_encryption_talk_rc4(payload, tmp_path, procs):
    """Peer to Peer with `--encryption required` on both sides (our initiator against our responder over real
    sockets), and a libtorrent with default settings, which tries an encrypted handshake first, also gets in."""
    torrent = payload["torrents"]["v1"]
    seed = procs([PEER, "share", torrent, "--data", payload["data"], "--bind", "127.0.0.81", "--port", "0",
                  "--state", tmp_path / "state-seed", "--encryption", "required"], tmp_path / "share.log")
    port = int(seed.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--peer", f"127.0.0.81:{port}", "--encryption", "required",
             "--bind", "127.0.0.82", "--port", "0", timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])
    lt_out = tmp_path / "lt-out"
    lt_out.mkdir()
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", str(torrent), str(lt_out),
                         "--bind", "127.0.0.83", "--port", str(free_port("127.0.0.83")),
                         "--connect", f"127.0.0.81:{port}", "--timeout", "100"],
                        capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(lt_out / "album") == tree_digest(payload["src"])


def test_seed_and_download_without_net_admin(payload, tmp_path, procs):
    """Users run Peer without CAP_NET_ADMIN, while these tests run as root: seed and download with it dropped.
    (NIO's `.socketOption(.tcp_nodelay)` is TCP_NODELAY's number at the socket level, SO_DEBUG, which only
    CAP_NET_ADMIN may set: for a normal user no connection came up, either way.)"""
    drop = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
    torrent = payload["torrents"]["v1"]
    seed = procs(drop + [PEER, "share", torrent, "--data", payload["data"], "--bind", "127.0.0.86", "--port", "0",
                         "--state", tmp_path / "state-seed", "--no-dht"], tmp_path / "share.log")
    port = int(seed.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    out = tmp_path / "out"
    p = subprocess.run(drop + [PEER, "get", torrent, "-o", out, "--peer", f"127.0.0.86:{port}", "--bind", "127.0.0.87",
                               "--port", "0", "--state", tmp_path / "state-get", "--no-dht"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def capped_lt_seed(procs, tmp_path, torrent, data, addr):
    """A libtorrent seed uploading at 4 MiB/s, so that a download can be interrupted part way; returns its port."""
    port = free_port(addr)
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(data), "--bind", addr, "--port", str(port),
               "--upload-limit", str(4 * 1024 * 1024)], tmp_path / "lt-seed.log")
    s.wait_for("READY")
    return port


def test_interrupted_download_resumes(payload, tmp_path, procs):
    """Ctrl-C part way through keeps the verified pieces; the second run checks them and fetches the rest."""
    torrent = payload["torrents"]["hybrid"]
    port = capped_lt_seed(procs, tmp_path, torrent, payload["data"], "127.0.0.17")
    out = tmp_path / "out"
    first = procs([PEER, "get", torrent, "-o", out, "--peer", f"127.0.0.17:{port}", "--bind", "127.0.0.18",
                   "--port", "0"], tmp_path / "first.log")
    time.sleep(2.5)
    first.p.send_signal(signal.SIGINT)
    assert first.p.wait(20) == 130
    first.log.seek(0)
    assert "run again to resume" in first.log.read()
    # The rest from an uncapped seed, so the test does not wait on the cap.
    _, fast = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.19")
    second = run_peer("get", torrent, "-o", out, "--peer", f"127.0.0.19:{fast}", "--bind", "127.0.0.18",
                      "--port", "0", timeout=120)
    m = re.search(r"(\d+)/(\d+) pieces verified \((\d+) from resume data, (\d+) checked\)", second.stderr)
    assert m and 0 < int(m.group(1)) < int(m.group(2)), second.stderr
    # Ctrl-C saved resume data: nothing had to be read again.
    assert int(m.group(3)) == int(m.group(1)) and int(m.group(4)) == 0, second.stderr
    third = run_peer("get", torrent, "-o", out, "--bind", "127.0.0.18", "--port", "0", timeout=60)
    assert f"{m.group(2)}/{m.group(2)} pieces verified ({m.group(2)} from resume data, 0 checked)" in third.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_share_refuses_data_that_does_not_match(payload, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    p = run_peer("share", payload["torrents"]["v1"], "--data", wrong, "--bind", "127.0.0.19", "--port", "0",
                 check=False, timeout=30)
    assert p.returncode == 1 and "holds 0 of" in p.stderr


@pytest.fixture
def opentracker(procs, tmp_path):
    """Debian's opentracker on 127.0.0.30 (HTTP and UDP on one port). `.port` is chosen first, so that a
    torrent can name the tracker; `.start(hashes)` runs it with those info-hashes whitelisted. Its folder must
    be readable by `nobody`, the user it drops to."""
    import shutil
    import tempfile

    class Tracker:
        folder = pathlib.Path(tempfile.mkdtemp(prefix="peer-ot-", dir="/tmp"))
        port = free_port("127.0.0.30")

        def start(self, hashes):
            self.folder.chmod(0o755)
            (self.folder / "wl.txt").write_text("".join(h + "\n" for h in hashes))
            (self.folder / "wl.txt").chmod(0o644)
            procs(["opentracker", "-i", "127.0.0.30", "-p", str(self.port), "-P", str(self.port), "-d",
                   str(self.folder), "-u", "nobody", "-w", "wl.txt"], tmp_path / "opentracker.log")
            time.sleep(0.5)

    tracker = Tracker()
    yield tracker
    shutil.rmtree(tracker.folder, ignore_errors=True)


@pytest.mark.parametrize("seeder,scheme", [("peer", "udp"), ("libtorrent", "udp"), ("peer", "http"),
                                           ("libtorrent", "http"), ("peer", "dead-first-tier")])
def test_through_a_tracker(payload, tmp_path, procs, opentracker, seeder, scheme):
    """No --peer anywhere: both sides find each other through opentracker, over UDP (BEP 15) or HTTP (BEP 3,
    compact peers). With a dead first tier (nothing listens there) the second, live one is used."""
    import json
    torrent = tmp_path / "t.torrent"
    live = (f"udp://127.0.0.30:{opentracker.port}" if scheme == "udp"
            else f"http://127.0.0.30:{opentracker.port}/announce")
    tiers = ["--tracker", live]
    if scheme == "dead-first-tier":
        tiers = ["--tracker", f"http://127.0.0.33:{free_port('127.0.0.33')}/announce", "--tracker", live]
    info = json.loads(run_peer("create", payload["src"], "-o", torrent, "--v1", "--piece-length", "256K",
                               *tiers, "--json").stdout)
    opentracker.start([info["info_hash_v1"]])
    if seeder == "peer":
        peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.31")
    else:
        s = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(payload["data"]), "--bind", "127.0.0.31",
                   "--port", str(free_port("127.0.0.31"))], tmp_path / "lt-seed.log")
        s.wait_for("READY")
    time.sleep(1.0)  # the seed's first announce
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--bind", "127.0.0.32", "--port", "0", timeout=90)
    assert tree_digest(out / "album") == tree_digest(payload["src"])


BADPEER = str(HERE / "badpeer.py")


@pytest.mark.parametrize("mode", ["corrupt", "garbage", "oversized", "badbitfield"])
def test_a_hostile_peer_is_dropped_and_the_download_completes(payload, tmp_path, procs, mode):
    """A peer that sends corrupt blocks is banned after repeated hash failures; one that sends garbage, an
    oversized length or a wrong-size bitfield is dropped at once. The honest seed still delivers every byte."""
    import json
    torrent = payload["torrents"]["v1"]
    info = json.loads(run_peer("info", torrent, "--json").stdout)
    bad_port = free_port("127.0.0.41")
    bad = procs(["/usr/bin/python3", BADPEER, mode, info["info_hash_v1"], str(info["piece_count"]),
                 "--bind", "127.0.0.41", "--port", str(bad_port)], tmp_path / "bad.log")
    bad.wait_for("READY")
    # The honest seed answers slowly at first (it is started after the bad peer is already feeding us).
    _, good_port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.42")
    out = tmp_path / "out"
    p = run_peer("get", torrent, "-o", out, "--peer", f"127.0.0.41:{bad_port}", "--peer", f"127.0.0.42:{good_port}",
                 "--bind", "127.0.0.43", "--port", "0", timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])
    if mode == "corrupt":
        assert "failed its hash check" in p.stderr and "banned 127.0.0.41" in p.stderr, p.stderr
        assert "banned 127.0.0.42" not in p.stderr
    else:
        assert "dropped 127.0.0.41" in p.stderr, p.stderr


def magnet_of(torrent, v2_only=False, **extra):
    """The torrent's magnet link with extra fields; v2_only gives only the v2 hash (xt=urn:btmh:1220...)."""
    from urllib.parse import quote
    info = json.loads(run_peer("info", torrent, "--json").stdout)
    link = (f"magnet:?xt=urn:btmh:1220{info['info_hash_v2']}" if v2_only
            else f"magnet:?xt=urn:btih:{info['info_hash_v1']}")
    for key, values in extra.items():
        for v in values:
            link += f"&{key.replace('_', '.')}={quote(v, safe=':/')}"
    return link, info


def test_magnet_from_a_libtorrent_seed(payload, tmp_path, procs):
    """Peer gets the metadata (BEP 9) from a libtorrent seed named in the link's x.pe, then the data."""
    torrent = payload["torrents"]["hybrid"]
    port = free_port("127.0.0.61")
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(payload["data"]), "--bind", "127.0.0.61",
               "--port", str(port)], tmp_path / "lt-seed.log")
    s.wait_for("READY")
    link, info = magnet_of(torrent, x_pe=[f"127.0.0.61:{port}"])
    out = tmp_path / "out"
    p = run_peer("get", link, "-o", out, "--bind", "127.0.0.62", "--port", "0", "--state", tmp_path / "state",
                 timeout=120)
    assert "got the metadata of album" in p.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])
    kept = (tmp_path / "state" / "torrents" / f"{info['id']}.torrent")
    assert json.loads(run_peer("info", kept, "--json").stdout)["info_hash_v1"] == info["info_hash_v1"]


def test_libtorrent_gets_a_magnet_from_a_peer_seed(payload, tmp_path, procs):
    torrent = payload["torrents"]["hybrid"]
    _, port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.63")
    link, _ = magnet_of(torrent)
    out = tmp_path / "out"
    out.mkdir()
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", link, str(out), "--bind", "127.0.0.64",
                         "--port", str(free_port("127.0.0.64")), "--connect", f"127.0.0.63:{port}",
                         "--timeout", "100"], capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_magnet_through_a_tracker(payload, tmp_path, procs, opentracker):
    """A magnet link with only a tracker: Peer finds a libtorrent seed through opentracker, fetches the
    metadata, then the data."""
    import json as _json
    torrent = tmp_path / "t.torrent"
    tracker = f"http://127.0.0.30:{opentracker.port}/announce"
    info = _json.loads(run_peer("create", payload["src"], "-o", torrent, "--v1", "--piece-length", "256K",
                                "--tracker", tracker, "--json").stdout)
    opentracker.start([info["info_hash_v1"]])
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(payload["data"]), "--bind", "127.0.0.65",
               "--port", str(free_port("127.0.0.65"))], tmp_path / "lt-seed.log")
    s.wait_for("READY")
    time.sleep(1.0)
    link, _ = magnet_of(torrent, tr=[tracker])
    out = tmp_path / "out"
    run_peer("get", link, "-o", out, "--bind", "127.0.0.66", "--port", "0", "--state", tmp_path / "state",
             timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])


@pytest.mark.parametrize("args", [["magnet"], ["torrent"], ["share"]])
def test_sigterm_ends_every_phase(payload, tmp_path, procs, args):
    """SIGTERM while waiting for metadata, for peers, or while seeding ends the process promptly."""
    torrent = payload["torrents"]["v1"]
    if args == ["magnet"]:
        link, _ = magnet_of(torrent, x_pe=["127.0.0.71:1"])
        cmd = [PEER, "get", link, "-o", tmp_path / "o", "--bind", "127.0.0.72", "--port", "0", "--state", tmp_path / "s"]
        expect = 130
    elif args == ["torrent"]:
        cmd = [PEER, "get", torrent, "-o", tmp_path / "o", "--peer", "127.0.0.71:1", "--bind", "127.0.0.72",
               "--port", "0"]
        expect = 130
    else:
        cmd = [PEER, "share", torrent, "--data", payload["data"], "--bind", "127.0.0.72", "--port", "0"]
        expect = 0
    p = procs(cmd, tmp_path / "p.log")
    p.wait_for("listening on|fetching metadata")
    time.sleep(0.5)
    p.p.send_signal(signal.SIGTERM)
    assert p.p.wait(10) == expect


@pytest.mark.parametrize("side", ["max-up on the seed", "max-down on the leecher"])
def test_rate_limits_hold(payload, tmp_path, procs, side):
    """--max-up / --max-down cap the transfer: 64 MiB at 12 MiB/s cannot finish in under ~4 s (an unlimited
    transfer over loopback takes about 1 s); a lower bound, so a slow machine cannot make it fail."""
    torrent = payload["torrents"]["v1"]
    limit = ["--max-up", "12M"] if side.startswith("max-up") else []
    s = procs([PEER, "share", torrent, "--data", payload["data"], "--bind", "127.0.0.81", "--port", "0",
               "--state", tmp_path / "s1", *limit], tmp_path / "share.log")
    port = int(s.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    limit = ["--max-down", "12M"] if side.startswith("max-down") else []
    t0 = time.monotonic()
    run_peer("get", torrent, "-o", tmp_path / "out", "--peer", f"127.0.0.81:{port}", "--bind", "127.0.0.82",
             "--port", "0", "--state", tmp_path / "s2", *limit, timeout=120)
    elapsed = time.monotonic() - t0
    assert tree_digest(tmp_path / "out" / "album") == tree_digest(payload["src"])
    assert elapsed > (PAYLOAD / (12 << 20)) - 1.5, f"took only {elapsed:.1f} s"
    assert elapsed < 60


def test_a_swarm_shares_the_load(tmp_path, procs, opentracker):
    """A seed capped at 1 MiB/s, four Peer leechers and one libtorrent leecher, found through opentracker: all
    finish, and each Peer leecher serves at least 10% of the payload to the others (tit-for-tat at work)."""
    import json
    size = 8 * 1024 * 1024 + 777
    src = tmp_path / "src" / "swarm"
    src.mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(size - 777))
    (src / "small.bin").write_bytes(os.urandom(777))
    torrent = tmp_path / "s.torrent"
    tracker = f"http://127.0.0.30:{opentracker.port}/announce"
    info = json.loads(run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "64K", "--tracker", tracker,
                               "--json").stdout)
    opentracker.start([info["info_hash_v1"]])
    seed = procs([PEER, "share", torrent, "--data", src.parent, "--bind", "127.0.0.40", "--port", "0", "--state",
                  tmp_path / "seed-state", "--max-up", "1M"], tmp_path / "seed.log")
    seed.wait_for("listening on")
    time.sleep(0.5)
    leechers = []
    for i in range(1, 5):
        addr = f"127.0.0.4{i}"
        leechers.append(procs([PEER, "get", torrent, "-o", tmp_path / f"out{i}", "--bind", addr, "--port", "0",
                               "--state", tmp_path / f"state{i}", "--seed", "--json"], tmp_path / f"leech{i}.log"))
        time.sleep(0.3)
    lt_out = tmp_path / "lt-out"
    lt_out.mkdir()
    lt_leech = procs(["/usr/bin/python3", LTPEER, "leech", str(torrent), str(lt_out), "--bind", "127.0.0.45",
                      "--port", str(free_port("127.0.0.45")), "--timeout", "150"], tmp_path / "lt-leech.log")
    for p in leechers:
        p.wait_for("complete; seeding until interrupted", timeout=150)
    lt_leech.wait_for("COMPLETE", timeout=150)
    uploads = []
    for i, p in enumerate(leechers, 1):
        p.p.send_signal(signal.SIGTERM)
        assert p.p.wait(15) == 0
        p.log.seek(0)
        text = p.log.read()
        summary = json.loads(text[text.index("{"):text.rindex("}") + 1])
        assert summary["complete"], text
        uploads.append(summary["uploaded"])
        assert tree_digest(tmp_path / f"out{i}" / "swarm") == tree_digest(src)
    assert tree_digest(lt_out / "swarm") == tree_digest(src)
    print(f"swarm: payload {size}, Peer leechers uploaded {uploads}")
    assert all(u >= size // 10 for u in uploads), f"uploads {uploads} (payload {size})"


@pytest.mark.parametrize("seeder", ["libtorrent", "peer"])
def test_v2_magnet_learns_piece_layers_from_peers(payload, tmp_path, procs, seeder):
    """A v2-only magnet: the info dictionary (BEP 9) holds only file roots, so Peer asks the seed for the piece
    layers (BEP 52 hash requests), checks them against the roots, downloads, and keeps them with the metadata
    so that a second run needs no peer at all."""
    torrent = payload["torrents"]["v2"]
    if seeder == "libtorrent":
        port = free_port("127.0.0.85")
        s = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(payload["data"]), "--bind", "127.0.0.85",
                   "--port", str(port)], tmp_path / "lt-seed.log")
        s.wait_for("READY")
    else:
        _, port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.85")
    link, info = magnet_of(torrent, v2_only=True, x_pe=[f"127.0.0.85:{port}"])
    out = tmp_path / "out"
    p = run_peer("get", link, "-o", out, "--bind", "127.0.0.86", "--port", "0", "--state", tmp_path / "state",
                 timeout=120)
    assert "got every piece layer from peers" in p.stderr, p.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])
    again = run_peer("get", link, "-o", out, "--bind", "127.0.0.86", "--port", "0", "--state", tmp_path / "state",
                     timeout=60)
    assert "using the metadata kept in" in again.stderr
    n = info["piece_count"]
    assert f"{n}/{n} pieces verified" in again.stderr, again.stderr


def test_libtorrent_gets_a_v2_magnet_from_a_peer_seed(payload, tmp_path, procs):
    """The other way: Peer serves the info dictionary and answers libtorrent's hash requests."""
    torrent = payload["torrents"]["v2"]
    _, port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.87")
    link, _ = magnet_of(torrent, v2_only=True)
    out = tmp_path / "out"
    out.mkdir()
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", link, str(out), "--bind", "127.0.0.88",
                         "--port", str(free_port("127.0.0.88")), "--connect", f"127.0.0.87:{port}",
                         "--timeout", "100"], capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_only_the_selected_files_are_written(payload, tmp_path, procs):
    """--files: the chosen file arrives whole; unselected files are not created (the bytes of theirs that share
    a piece with the chosen one go to a part file); a second run with every file completes the rest."""
    torrent = payload["torrents"]["v1"]  # 256 KiB pieces: 02.bin shares its first and last with its neighbours
    files = json.loads(run_peer("info", torrent, "--json").stdout)["files"]
    chosen = next(f for f in files if f["path"].endswith("02.bin"))
    _, port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.89")
    out = tmp_path / "out"
    p = run_peer("get", torrent, "-o", out, "--peer", f"127.0.0.89:{port}", "--bind", "127.0.0.90", "--port", "0",
                 "--files", str(chosen["index"]), timeout=120)
    assert "selected of" in p.stdout
    written = sorted(str(f.relative_to(out)) for f in out.rglob("*") if f.is_file())
    assert written == [next(str(f.name) for f in out.iterdir() if f.name.endswith(".parts")), "album/cd1/02.bin"]
    assert sha256(out / "album" / "cd1" / "02.bin") == sha256(payload["src"] / "cd1" / "02.bin")
    run_peer("get", torrent, "-o", out, "--peer", f"127.0.0.89:{port}", "--bind", "127.0.0.90", "--port", "0",
             timeout=120)
    assert tree_digest(out / "album") == tree_digest(payload["src"])
    assert not any(f.name.endswith(".parts") for f in out.iterdir())
    bad = run_peer("get", torrent, "-o", out, "--files", "99", check=False)
    assert bad.returncode == 1 and "there is no file 99" in bad.stderr


def test_fewer_files_over_a_complete_download_lose_nothing(payload, tmp_path):
    """--files over a complete download: the files left out keep what they share with the chosen one (it is
    copied to the part file), so the run is complete without a peer; so is the next one with every file."""
    import shutil
    torrent = payload["torrents"]["v1"]  # 02.bin shares its first and last pieces with 01.bin and notes.txt
    files = json.loads(run_peer("info", torrent, "--json").stdout)["files"]
    chosen = next(f for f in files if f["path"].endswith("02.bin"))
    out = tmp_path / "out"
    shutil.copytree(payload["data"], out)
    common = ["-o", out, "--state", tmp_path / "state", "--bind", "127.0.0.97", "--port", "0"]
    p = run_peer("get", torrent, *common, "--files", str(chosen["index"]), timeout=60)
    assert "selected of" in p.stdout
    assert any(f.name.endswith(".parts") for f in out.iterdir())
    assert tree_digest(out / "album") == tree_digest(payload["src"])  # the files left out stay as they are
    run_peer("get", torrent, *common, timeout=60)
    assert tree_digest(out / "album") == tree_digest(payload["src"])
    assert not any(f.name.endswith(".parts") for f in out.iterdir())


def test_sequential_fetches_pieces_in_order(payload, tmp_path, procs):
    """--sequential: interrupted part way, what is on disk is a prefix of the file (give or take the pieces in
    flight at the frontier)."""
    torrent = payload["torrents"]["v1"]
    port = capped_lt_seed(procs, tmp_path, torrent, payload["data"], "127.0.0.95")
    out = tmp_path / "out"
    first = procs([PEER, "get", torrent, "-o", out, "--peer", f"127.0.0.95:{port}", "--bind", "127.0.0.96",
                   "--port", "0", "--sequential"], tmp_path / "first.log")
    time.sleep(3)
    first.p.send_signal(signal.SIGINT)
    assert first.p.wait(20) == 130
    piece = 256 * 1024
    src = (payload["src"] / "cd1" / "01.bin").read_bytes()
    got = (out / "album" / "cd1" / "01.bin").read_bytes()
    done = [i for i in range(len(src) // piece) if got[i * piece:(i + 1) * piece] == src[i * piece:(i + 1) * piece]]
    assert len(done) >= 4, done
    frontier = len(done) - 4
    assert done[:frontier] == list(range(frontier)), done
    assert max(done) < len(done) + 8, done


def test_peer_exchange(payload, tmp_path, procs):
    """PEX (BEP 11): A seeds; B, which has almost nothing (its download is throttled to a trickle), knows A; C
    knows only B. C learns A from B through ut_pex and downloads from A. Then libtorrent, told only of B, does
    the same."""
    torrent = payload["torrents"]["v1"]
    _, a_port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.101")
    b = procs([PEER, "get", torrent, "-o", tmp_path / "b", "--bind", "127.0.0.102", "--port", "0", "--state",
               tmp_path / "sb", "--peer", f"127.0.0.101:{a_port}", "--max-down", "1"], tmp_path / "b.log")
    b_port = int(b.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    c = run_peer("get", torrent, "-o", tmp_path / "c", "--bind", "127.0.0.103", "--port", "0", "--state",
                 tmp_path / "sc", "--peer", f"127.0.0.102:{b_port}", timeout=60)
    # Either C hears of A from B, or A hears of C from B and dials it first: both are PEX at work.
    a_log = (tmp_path / "share-127.0.0.101.log").read_text()
    assert ("learnt 1 peer from 127.0.0.102 through PEX" in c.stderr
            or "learnt 1 peer from 127.0.0.102 through PEX" in a_log), c.stderr + a_log
    assert tree_digest(tmp_path / "c" / "album") == tree_digest(payload["src"])
    out = tmp_path / "lt"
    out.mkdir()
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", str(torrent), str(out), "--bind", "127.0.0.104",
                         "--port", str(free_port("127.0.0.104")), "--connect", f"127.0.0.102:{b_port}",
                         "--timeout", "60"], capture_output=True, text=True, timeout=90)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "album") == tree_digest(payload["src"])


def test_private_torrents_do_not_exchange_peers(payload, tmp_path, procs):
    """BEP 27: the same three nodes with a private torrent: B never tells C about A, so C stays without data."""
    torrent = tmp_path / "private.torrent"
    run_peer("create", payload["src"], "-o", torrent, "--v1", "--piece-length", "256K", "--private", "--no-date")
    _, a_port = peer_share(procs, tmp_path, torrent, payload["data"], "127.0.0.105")
    b = procs([PEER, "get", torrent, "-o", tmp_path / "b", "--bind", "127.0.0.106", "--port", "0", "--state",
               tmp_path / "sb", "--peer", f"127.0.0.105:{a_port}", "--max-down", "1"], tmp_path / "b.log")
    b_port = int(b.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    c = procs([PEER, "get", torrent, "-o", tmp_path / "c", "--bind", "127.0.0.107", "--port", "0", "--state",
               tmp_path / "sc", "--peer", f"127.0.0.106:{b_port}"], tmp_path / "c.log")
    c.wait_for("listening on")
    time.sleep(6)  # PEX would have come after 2 s
    c.p.send_signal(signal.SIGTERM)
    assert c.p.wait(10) == 130
    c.log.seek(0)
    text = c.log.read()
    assert "through PEX" not in text and "0/" in text, text
