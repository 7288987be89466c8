"""Issue 16: uTP (BEP 29) with Debian's python3-libtorrent 2.0, with libtorrent's TCP off both ways (incoming and
outgoing), so a transfer can only be uTP; and Peer to Peer over uTP, with the transport shown in the API and in
`peer show`. Full transfers, v1 and hybrid, with MSE required too; the SHA-256 of every file is compared to the
source's.

Every node has its own address on 127.0.16.x (used by no other test): .1-.2 Peer seeds, .3-.4 libtorrent seeds,
.5-.9 leechers, .10-.12 the daemon cases.
"""
import base64
import json
import random
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import PEER, det_bytes, run_peer
from test_daemon import Daemon
from test_swarm import LTPEER, free_port, procs, tree_digest  # noqa: F401 (procs is a fixture)

MiB = 1024 * 1024
# 20 MiB in three files, two of them not a multiple of 16 KiB (the hybrid gets pad files after them).
FILES = {"one.bin": 12 * MiB, "sub/two.bin": 8 * MiB - 12_345, "sub/three.txt": 12_345 + 7}
TIMEOUT = 150


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    base = tmp_path_factory.mktemp("utp")
    src = base / "data" / "album"
    for rel, size in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(det_bytes(size, rel))
    torrents = {}
    for kind in ("v1", "hybrid"):
        t = base / f"{kind}.torrent"
        run_peer("create", src, "-o", t, f"--{kind}", "--piece-length", "256K", "--no-date")
        torrents[kind] = t
    return {"src": src, "data": src.parent, "torrents": torrents, "digest": tree_digest(src)}


def share(procs, tmp_path, torrent, data, addr, *extra):
    s = procs([PEER, "share", torrent, "--data", data, "--bind", addr, "--port", "0", "--no-dht", "--no-lsd",
               "--state", tmp_path / f"state-{addr}", *extra], tmp_path / f"share-{addr}.log")
    port = int(s.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    return s, port


def lt_seed(procs, tmp_path, torrent, data, addr, *extra):
    port = free_port(addr)
    seed = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(data), "--bind", addr, "--port", str(port),
                  "--transport", "utp", *extra], tmp_path / f"lt-seed-{addr}.log")
    seed.wait_for("READY")
    return port


def lt_leech(torrent, out, addr, connect, *extra):
    return subprocess.run(["/usr/bin/python3", LTPEER, "leech", str(torrent), str(out), "--bind", addr,
                           "--port", str(free_port(addr)), "--connect", connect, "--transport", "utp",
                           "--timeout", str(TIMEOUT - 20), *extra], capture_output=True, text=True,
                          timeout=TIMEOUT)


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_peer_seeds_libtorrent_over_utp(payload, tmp_path, procs, kind):
    """libtorrent, uTP only, dials Peer's seed: Peer takes the uTP connection on its listen port."""
    _, port = share(procs, tmp_path, payload["torrents"][kind], payload["data"], "127.0.16.1")
    out = tmp_path / "out"
    lt = lt_leech(payload["torrents"][kind], out, "127.0.16.5", f"127.0.16.1:{port}")
    assert lt.returncode == 0, lt.stdout[-2000:] + lt.stderr[-2000:]
    assert tree_digest(out / "album") == payload["digest"]


@pytest.mark.parametrize("kind,transport", [("v1", None), ("hybrid", "utp")])
def test_libtorrent_seeds_peer_over_utp(payload, tmp_path, procs, kind, transport):
    """Peer dials libtorrent's uTP-only seed: with `--transport utp`, and with the default order (TCP first, which
    libtorrent refuses, then uTP)."""
    port = lt_seed(procs, tmp_path, payload["torrents"][kind], payload["data"], "127.0.16.3")
    out = tmp_path / "out"
    extra = ["--transport", transport] if transport else []
    p = run_peer("get", payload["torrents"][kind], "-o", out, "--peer", f"127.0.16.3:{port}", "--bind", "127.0.16.6",
                 "--port", "0", "--no-dht", "--no-lsd", "--json", *extra, timeout=TIMEOUT)
    assert json.loads(p.stdout)["complete"] is True
    assert tree_digest(out / "album") == payload["digest"]


def test_mse_required_over_utp_both_ways(payload, tmp_path, procs):
    """Encrypted handshakes and RC4 over the whole stream, over uTP: Peer requiring it seeds libtorrent requiring
    it, then gets from a libtorrent seed requiring it."""
    torrent = payload["torrents"]["hybrid"]
    _, port = share(procs, tmp_path, torrent, payload["data"], "127.0.16.2", "--encryption", "required")
    out = tmp_path / "lt-out"
    lt = lt_leech(torrent, out, "127.0.16.7", f"127.0.16.2:{port}", "--encryption", "rc4")
    assert lt.returncode == 0, lt.stdout[-2000:] + lt.stderr[-2000:]
    assert tree_digest(out / "album") == payload["digest"]

    lport = lt_seed(procs, tmp_path, torrent, payload["data"], "127.0.16.4", "--encryption", "rc4")
    out = tmp_path / "peer-out"
    run_peer("get", torrent, "-o", out, "--peer", f"127.0.16.4:{lport}", "--bind", "127.0.16.8", "--port", "0",
             "--no-dht", "--no-lsd", "--transport", "utp", "--encryption", "required", timeout=TIMEOUT)
    assert tree_digest(out / "album") == payload["digest"]


def test_peer_to_peer_over_utp(payload, tmp_path, procs):
    torrent = payload["torrents"]["v1"]
    _, port = share(procs, tmp_path, torrent, payload["data"], "127.0.16.1", "--transport", "utp")
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--peer", f"127.0.16.1:{port}", "--bind", "127.0.16.9", "--port", "0",
             "--no-dht", "--no-lsd", "--transport", "utp", timeout=TIMEOUT)
    assert tree_digest(out / "album") == payload["digest"]


def test_transport_shown_in_the_api_and_peer_show(payload, tmp_path, procs):
    """A daemon seeds; a slow `peer get --transport utp` and a TCP one fetch from it; while they run, the daemon's
    API lists one peer over uTP (with its packet size) and one over TCP, and `peer show` prints both."""
    d = Daemon(procs, tmp_path, "127.0.16.10", extra=["--no-dht", "--no-lsd", "--allow-path", payload["data"]])
    torrent = payload["torrents"]["v1"]
    added = d.ok("POST", "/api/torrents", {"torrent": base64.b64encode(torrent.read_bytes()).decode(),
                                           "save_path": str(payload["data"])}, expect=201)
    d.wait(added["id"], lambda t: t["progress"] == 1, timeout=60, what="the daemon's data check")
    listen = d.ok("GET", "/api/session")["listen_port"]
    for addr, transport in (("127.0.16.11", "utp"), ("127.0.16.12", "tcp")):
        procs([PEER, "get", torrent, "-o", tmp_path / f"out-{addr}", "--peer", f"127.0.16.10:{listen}", "--bind", addr,
               "--port", "0", "--no-dht", "--no-lsd", "--transport", transport, "--max-down", "1M",
               "--state", tmp_path / f"get-{addr}"], tmp_path / f"get-{addr}.log")
    seen, sizes = {}, {}
    deadline = time.monotonic() + 40
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"peers seen: {seen}"
        for p in d.ok("GET", f"/api/torrents/{added['id']}")["peers"]:
            seen[p["address"].rsplit(":", 1)[0]] = p["transport"]
            sizes[p["transport"]] = p.get("packet_size")
        time.sleep(0.5)
    assert seen == {"127.0.16.11": "utp", "127.0.16.12": "tcp"}
    # uTP's datagrams: 1 400 bytes to start, grown by path MTU probing to at most Ethernet's 1 472; TCP has none.
    assert 1_400 <= sizes["utp"] <= 1_472 and sizes["tcp"] is None, sizes
    shown = run_peer("show", added["id"], "--state", d.state).stdout
    assert re.search(r"127\.0\.16\.11:\d+\s+utp", shown), shown
    assert re.search(r"127\.0\.16\.12:\d+\s+tcp", shown), shown


# uTP (BEP 29) by hand, for the attacks: header type/version, extension, connection id, timestamp, timestamp
# difference, window, seq, ack.
ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = range(5)


def utp_packet(kind, conn, seq, ack, wnd=1 << 20, ext=0, extensions=b"", payload=b""):
    ts = int(time.monotonic() * 1e6) & 0xFFFFFFFF
    return struct.pack(">BBHIIIHH", (kind << 4) | 1, ext, conn, ts, 0, wnd, seq, ack) + extensions + payload


def utp_header(data):
    if len(data) < 20:
        return None
    b0, _, conn, _, _, wnd, seq, ack = struct.unpack(">BBHIIIHH", data[:20])
    return {"type": b0 >> 4, "conn": conn, "wnd": wnd, "seq": seq, "ack": ack}


def udp_socket(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 0))
    s.settimeout(0.2)
    return s


def zero_window_attacker(target, info_hash, stop, log):
    """Opens a uTP connection, sends a BitTorrent handshake for the torrent, and then answers every packet with a
    window of zero until `stop` is set; then it resets the connection."""
    s = udp_socket("127.0.16.21")
    recv_id = random.randrange(1, 60000)
    s.sendto(utp_packet(ST_SYN, recv_id, 1, 0, wnd=0), target)
    their_seq = None
    deadline = time.monotonic() + 10
    while their_seq is None and time.monotonic() < deadline:
        try:
            h = utp_header(s.recv(4096))
        except socket.timeout:
            continue
        if h and h["type"] == ST_STATE:
            their_seq = h["seq"]
    assert their_seq is not None, "no SYN-ACK"
    handshake = bytes([19]) + b"BitTorrent protocol" + bytes(8) + info_hash + b"-ZW0001-" + bytes(12)
    s.sendto(utp_packet(ST_DATA, recv_id + 1, 2, their_seq, wnd=0, payload=handshake), target)
    while not stop.is_set():
        try:
            h = utp_header(s.recv(4096))
        except socket.timeout:
            continue
        if h and h["type"] in (ST_DATA, ST_FIN):
            log.append(h["type"])
            s.sendto(utp_packet(ST_STATE, recv_id + 1, 3, h["seq"], wnd=0), target)
    s.sendto(utp_packet(ST_RESET, recv_id + 1, 3, 0, wnd=0), target)
    s.close()


def test_bad_utp_input_costs_bounded_state(payload, tmp_path, procs):
    """Against a daemon seeding over uTP: garbage (truncated headers, wrong versions, a SACK of odd length, STATE
    packets for no connection), a SYN flood from 40 source ports, and a connection whose window stays at zero.
    The node stays up, holds a bounded number of connections (its API counts them), answers unknown packets with
    rate-limited RESETs, serves an honest uTP download meanwhile, and is back to no connection afterwards.

    The zero-window connection is held while its owner answers, with a probe now and then (the node has its
    handshake to send); one whose owner falls silent goes with the peer wire's idle timeout (180 s, as over TCP),
    or, with data to send, `maxSilence` (60 s) after the last packet heard (UTPTests covers that in simulated
    time)."""
    d = Daemon(procs, tmp_path, "127.0.16.10", extra=["--no-dht", "--no-lsd", "--allow-path", payload["data"]])
    torrent = payload["torrents"]["v1"]
    added = d.ok("POST", "/api/torrents", {"torrent": base64.b64encode(torrent.read_bytes()).decode(),
                                           "save_path": str(payload["data"])}, expect=201)
    d.wait(added["id"], lambda t: t["progress"] == 1, timeout=60, what="the daemon's data check")
    info_hash = bytes.fromhex(added["info_hash_v1"])
    target = ("127.0.16.10", d.ok("GET", "/api/session")["listen_port"])

    def held():
        return d.ok("GET", "/api/session")["utp_connections"]

    # Garbage and packets for no connection, from one port: every STATE for no connection may get a RESET, at
    # most 10 a second.
    s = udp_socket("127.0.16.20")
    junk = [bytes([0x41]) + bytes(n) for n in range(19)]  # truncated headers
    junk += [bytes([v]) + bytes(19) for v in (0x40, 0x42, 0x4F, 0x02, 0x52)]  # wrong versions
    junk += [utp_packet(ST_STATE, 77, 1, 1, ext=1, extensions=bytes([0, 3, 0xFF, 0xFF, 0xFF]))]  # SACK of 3 bytes
    junk += [utp_packet(ST_STATE, 100 + i, i, i) for i in range(300)]  # STATE for no connection
    junk += [utp_packet(ST_DATA, 9, 5, 5, ext=9, extensions=bytes([0, 200]))]  # extension running past the end
    for j in junk:
        s.sendto(j, target)
    resets = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            h = utp_header(s.recv(4096))
        except socket.timeout:
            continue
        if h and h["type"] == ST_RESET:
            resets += 1
    s.close()
    assert 1 <= resets <= 25, resets
    assert held() == 0

    # A connection with a window of zero, held open by its owner.
    stop, answered = threading.Event(), []
    zw = threading.Thread(target=zero_window_attacker, args=(target, info_hash, stop, answered))
    zw.start()
    t0 = time.monotonic()
    try:
        # A SYN flood from 40 ports, 50 SYNs each.
        flood = [udp_socket("127.0.16.20") for _ in range(40)]
        for k in range(50):
            for i, f in enumerate(flood):
                f.sendto(utp_packet(ST_SYN, (i * 50 + k) * 7 % 60000, 1, 0), target)
        peak = max(held() for _ in range(5))
        assert peak <= 1000, peak
        # An honest uTP download meanwhile.
        out = tmp_path / "out"
        run_peer("get", torrent, "-o", out, "--peer", f"{target[0]}:{target[1]}", "--bind", "127.0.16.22",
                 "--port", "0", "--no-dht", "--no-lsd", "--transport", "utp", timeout=TIMEOUT)
        assert tree_digest(out / "album") == payload["digest"]
        for f in flood:
            f.close()
        # The flood's half-open connections go (the handshake timeout), the zero-window one stays while answered.
        deadline = time.monotonic() + 30
        while held() > 1:
            assert time.monotonic() < deadline, f"still {held()} uTP connections 30 s after the flood"
            time.sleep(0.5)
        assert zw.is_alive()
        assert zw.is_alive() and held() == 1
        assert len(answered) <= 10, f"{len(answered)} packets to a zero window in {time.monotonic() - t0:.0f} s"
    finally:
        stop.set()
        zw.join(timeout=15)
    deadline = time.monotonic() + 5
    while held() > 0:
        assert time.monotonic() < deadline, "a RESET did not close the zero-window connection"
        time.sleep(0.2)
    print(f"resets {resets}, flood peak {peak}, zero-window packets answered {len(answered)}")
    d.ok("GET", "/api/session")  # still up
