"""Issue: hardening. A running node attacked the way an attacker would on loopback: connection floods that never
send a handshake, and peers that ask for everything and never read. Each test fails on the node as it was before
the fix (figures in the test's docstring) and bounds every wait. Addresses: 127.0.9.x for the nodes, 127.0.10.x to
127.0.17.x for the attackers."""
import os
import resource
import select
import socket
import struct
import subprocess
import threading
import time

from conftest import PEER, run_peer, wait_until
from test_swarm import magnet_of, procs, tree_digest  # noqa: F401 (procs is a fixture)

MiB = 1024 * 1024


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def share(procs, tmp_path, name, size, addr):
    src = tmp_path / "src" / name
    src.mkdir(parents=True)
    (src / "data.bin").write_bytes(os.urandom(size))
    torrent = tmp_path / f"{name}.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "64K")
    s = procs([PEER, "share", torrent, "--data", src.parent, "--bind", addr, "--port", "0", "--state",
               tmp_path / "seed-state"], tmp_path / "seed.log")
    port = int(s.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    return src, torrent, port


def honest_get(tmp_path, torrent, src, peer, addr, timeout):
    """`peer get` from `peer` alone; checks every byte and returns how long it took."""
    t0 = time.monotonic()
    out = tmp_path / "out"
    p = run_peer("get", torrent, "-o", out, "--peer", peer, "--bind", addr, "--port", "0", "--state",
                 tmp_path / "get-state", timeout=timeout)
    took = time.monotonic() - t0
    assert "complete" in p.stdout
    assert tree_digest(out / src.name) == tree_digest(src)
    return took


def open_silent(addr, port, sources):
    """Connects from each source address and sends nothing; returns the sockets that connected."""
    out = []
    for src in sources:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect((addr, port))
        except BlockingIOError:
            pass
        out.append(s)
    # Wait (bounded) for the connects to finish; refused or reset ones are dropped.
    poller = select.poll()
    by_fd = {s.fileno(): s for s in out}
    for fd in by_fd:
        poller.register(fd, select.POLLOUT)
    connected = []
    deadline = time.monotonic() + 10
    while by_fd and time.monotonic() < deadline:
        for fd, _ in poller.poll(500):
            s = by_fd.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                s.close()
    for s in by_fd.values():
        s.close()
    return connected


def established(addr, port):
    """The remote ends of established TCP connections whose local end is addr:port (the seed's side)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True, check=True).stdout
    remotes = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == f"{addr}:{port}":
            remotes.add(fields[3])
    return remotes


def test_a_flood_of_silent_connections_neither_starves_an_honest_peer_nor_stays(tmp_path, procs):
    """2 000 connections that never send a handshake, 520 of them from one address: before, they held all 500
    connection slots of the seed and an honest `peer get` got 0 B in 120 s (0.47 s without the attack). Now a
    connection with no handshake is closed within 10 s, at most 64 wait for their handshake at once (a new one
    pushes out the oldest), and one address has at most 8 connections: the honest peer finishes at once."""
    raise_fd_limit(8192)
    src, torrent, port = share(procs, tmp_path, "flood", 4 * MiB, "127.0.9.1")
    one = ["127.0.10.1"] * 520
    many = [f"127.0.{11 + i // 250}.{1 + i % 250}" for i in range(1480)]
    attack = open_silent("127.0.9.1", port, one) + open_silent("127.0.9.1", port, many)
    try:
        t0 = time.monotonic()
        took = honest_get(tmp_path, torrent, src, f"127.0.9.1:{port}", "127.0.9.2", timeout=60)
        print(f"flood: {len(attack)} silent connections open; the honest get took {took:.2f} s")
        assert took < 30
        # Every silent connection the seed accepted is closed: refused, pushed out or timed out. Counted on the
        # seed's side, each by how long it was seen there. A connect whose last ACK the kernel dropped while the
        # accept queue was full is established only when the client answers a SYN-ACK retry (at 1, 3, 7, 15,
        # 31 s: up to a minute after the attack), so the wait covers that window and each connection is held to
        # the handshake time-out from when it was first seen.
        first_seen, last_seen = {}, {}
        deadline = time.monotonic() + 80
        remotes = set()
        while time.monotonic() < deadline:
            now = time.monotonic()
            remotes = established("127.0.9.1", port)
            for r in remotes:
                first_seen.setdefault(r, now)
                last_seen[r] = now
            if not remotes:
                break
            time.sleep(0.5)
        longest = max((last_seen[r] - first_seen[r] for r in first_seen), default=0)
        print(f"flood: {len(first_seen)} connections seen at the seed after the get, {len(remotes)} still open "
              f"{time.monotonic() - t0:.1f} s after the attack began; the longest lived {longest:.1f} s")
        assert not remotes
        assert longest < 25
    finally:
        for s in attack:
            s.close()


def handshake(info_hash, peer_id):
    reserved = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])  # extension protocol, fast extension
    return bytes([19]) + b"BitTorrent protocol" + reserved + info_hash + peer_id


def test_peers_that_ask_for_everything_and_never_read_lose_their_slots(tmp_path, procs):
    """20 peers that request the whole torrent and never read: before, they kept the seed's upload slots (every
    peer sent nothing in a round, so the slots went at random) and an honest leecher took 25 s instead of 0.47 s.
    Now a peer whose connection has taken nothing for 20 s while another waits is choked, and a peer that cannot
    take what we send gets no regular slot in a round."""
    import hashlib
    from clients import bencode, bdecode
    src, torrent, port = share(procs, tmp_path, "hogs", 16 * MiB, "127.0.9.11")
    meta = bdecode(torrent.read_bytes())
    info_hash = hashlib.sha1(bencode(meta[b"info"])).digest()
    length = meta[b"info"][b"length"] if b"length" in meta[b"info"] else \
        sum(f[b"length"] for f in meta[b"info"][b"files"])
    piece = meta[b"info"][b"piece length"]
    hogs = []
    for i in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((f"127.0.10.{100 + i}", 0))
        s.settimeout(5)
        s.connect(("127.0.9.11", port))
        s.sendall(handshake(info_hash, b"-XX0001-" + os.urandom(6).hex()[:12].encode()))
        msgs = [struct.pack(">IB", 1, 2)]  # interested
        for off in range(0, length, 16384):
            idx, begin = divmod(off, piece)
            msgs.append(struct.pack(">IBIII", 13, 6, idx, begin, min(16384, length - off)))
        s.sendall(b"".join(msgs))
        s.setblocking(False)
        hogs.append((s, b"".join(msgs[1:])))
    # They never read; they ask again and again (a choked one's requests are rejected, unread).
    stop = threading.Event()

    def ask_again():
        while not stop.wait(1.0):
            for s, requests in hogs:
                try:
                    s.send(requests)
                except OSError:
                    pass

    asker = threading.Thread(target=ask_again, daemon=True)
    asker.start()
    try:
        time.sleep(2)
        took = honest_get(tmp_path, torrent, src, f"127.0.9.11:{port}", "127.0.9.12", timeout=90)
        print(f"hogs: 20 peers that never read; the honest get took {took:.2f} s")
        assert took < 45
    finally:
        stop.set()
        asker.join(5)
        for s, _ in hogs:
            s.close()


def test_a_named_peer_that_refused_handshakes_is_dialled_again(tmp_path, procs):
    """`peer get --peer X` while X serves another torrent (it hangs up on our handshakes), then X serves ours:
    before, the get dialled X twice (plaintext, then encrypted), gave up, and sat at 0 B for good. Now it dials
    again after 1, 2, 4 … s and finishes once X has the torrent."""
    from clients import free_port
    addr = "127.0.9.21"
    port = free_port(addr)
    src = tmp_path / "src" / "late"
    src.mkdir(parents=True)
    (src / "data.bin").write_bytes(os.urandom(2 * MiB))
    torrent = tmp_path / "late.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "64K")
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.bin").write_bytes(os.urandom(100_000))
    other_torrent = tmp_path / "other.torrent"
    run_peer("create", other / "x.bin", "-o", other_torrent)
    wrong = procs([PEER, "share", other_torrent, "--data", other, "--bind", addr, "--port", str(port), "--state",
                   tmp_path / "wrong-state"], tmp_path / "wrong.log")
    wrong.wait_for("listening on")
    out = tmp_path / "out"
    get = procs([PEER, "get", torrent, "-o", out, "--peer", f"{addr}:{port}", "--bind", "127.0.9.22", "--port", "0",
                 "--state", tmp_path / "get-state"], tmp_path / "get.log")
    get.wait_for("closed the connection before its handshake", timeout=15)
    time.sleep(3)
    wrong.stop()
    seed = procs([PEER, "share", torrent, "--data", src.parent, "--bind", addr, "--port", str(port), "--state",
                  tmp_path / "seed-state"], tmp_path / "seed.log")
    seed.wait_for("listening on")
    t0 = time.monotonic()
    assert get.p.wait(60) == 0
    print(f"named peer: the get finished {time.monotonic() - t0:.1f} s after the seed came up")
    assert tree_digest(out / "late") == tree_digest(src)


def test_byte_counters_survive_kill_9(tmp_path, procs):
    """The daemon downloads a torrent and serves it to a leecher, then is killed with SIGKILL: on the same state
    its byte counters come back. Before, what was uploaded since the torrent's last change of state was written
    every 30 s only, so the upload came back as 0 B."""
    from test_daemon import Daemon
    src, torrent, port = share(procs, tmp_path, "counted", 3 * MiB, "127.0.9.31")
    state = tmp_path / "state"
    d = Daemon(procs, tmp_path, "127.0.9.32", state=state, log="serve-1.log")
    link, info = magnet_of(torrent, x_pe=[f"127.0.9.31:{port}"])
    id = info["id"]
    d.ok("POST", "/api/torrents", {"magnet": link}, expect=201)
    d.wait(id, lambda t: t["state"] == "seeding", timeout=60, what="complete")
    daemon_port = d.ok("GET", "/api/session")["listen_port"]
    run_peer("get", torrent, "-o", tmp_path / "leech", "--peer", f"127.0.9.32:{daemon_port}", "--bind",
             "127.0.9.33", "--port", "0", "--state", tmp_path / "leech-state", timeout=60)
    served = d.wait(id, lambda t: t["uploaded"] >= 3 * MiB, timeout=20, what="the upload counted")
    time.sleep(6)  # one save interval
    os.kill(d.proc.p.pid, 9)
    d.proc.p.wait(10)
    d2 = Daemon(procs, tmp_path, "127.0.9.32", state=state, log="serve-2.log")
    after = next(t for t in d2.ok("GET", "/api/torrents")["torrents"] if t["id"] == id)
    print(f"counters: uploaded {served['uploaded']} before the kill, {after['uploaded']} after; downloaded "
          f"{after['downloaded']}")
    assert after["uploaded"] >= 3 * MiB and after["downloaded"] >= 3 * MiB
