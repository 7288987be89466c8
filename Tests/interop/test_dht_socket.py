"""Issue: DHT abuse. A real Peer node's DHT socket under bad input (truncated bencode, wrong types, a huge `t`,
unknown methods, maximum-size datagrams, random bytes): it never crashes, a malformed query gets no answer or a
short fixed error, a long transaction id gets nothing, every answer stays under 1 500 bytes, and a flood from one
address is rate-limited (measured: bytes out per byte in) while another address is still answered. And BEP 27: a
private torrent in a node with the DHT on is never looked up or announced there, while a public one is.

Every node has its own 127.0.0.x (the node under test .170, its table's nodes .171-.190, probes .191-.199 and
.215-.254, the private-torrent swarm .200-.205); no router outside the machine is ever named."""
import hashlib
import json
import urllib.parse
import os
import random
import select
import socket
import threading
import time

import pytest

from clients import bdecode, bencode as benc
from conftest import PEER, run_peer, wait_until
from test_daemon import Daemon
from test_swarm import Proc, procs  # noqa: F401 (procs is a fixture)

NODE = "127.0.0.170"
# DHTNode.Configuration's figures: the reply cap, the per-source bucket, and the longest transaction id echoed.
MAX_REPLY = 1500
REPLY_BURST, REPLIES_PER_SECOND = 20, 5
MAX_T = 8
SHORT_ERROR = 100  # "a short fixed error": error 203/204 with a 2-byte t, our address and the version is ~70 bytes


# --- bencoding: clients.py's encoder and strict decoder, with text keys ---------------------------------------------

def bdec(b):
    """Decodes one bencoded value (dictionary keys as str); ValueError on anything malformed or trailing."""
    return bdecode(b, text_keys=True)


def compact_nodes(b):
    return [(b[i:i + 20], socket.inet_ntoa(b[i + 20:i + 24]), int.from_bytes(b[i + 24:i + 26], "big"))
            for i in range(0, len(b), 26)]


def compact_peers(values):
    return {f"{socket.inet_ntoa(v[:4])}:{int.from_bytes(v[4:6], 'big')}" for v in values if len(v) == 6}


# --- KRPC from a socket of our own --------------------------------------------------------------------------------

class Source:
    """A UDP socket on its own 127.0.0.x that sends KRPC to one node and counts the bytes each way. Queries the node
    sends us (its pings to verify a new querier) are counted as bytes out too, and never answered."""

    def __init__(self, addr, node):
        self.addr = addr
        self.node = node
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((addr, 0))
        self.sock.setblocking(False)
        self.id = os.urandom(20)
        self.bytes_in = 0    # what we sent the node
        self.bytes_out = 0   # what the node sent us
        self.sizes = []      # every datagram the node sent us
        self.replies = {}    # t -> (raw, message) of each answer (y = r or e)
        self.answers = 0     # answers received (several may share a t)
        self.pings = 0       # queries the node sent us
        self.tid = random.randrange(1 << 16)

    def send(self, data):
        self.sock.sendto(data, self.node)
        self.bytes_in += len(data)

    def next_t(self):
        self.tid = (self.tid + 1) & 0xFFFF
        return self.tid.to_bytes(2, "big")

    def query(self, q, args=None, t=None):
        t = self.next_t() if t is None else t
        a = {"id": self.id}
        a.update(args or {})
        self.send(benc({"a": a, "q": q, "t": t, "y": "q"}))
        return t

    def drain(self, timeout=0.0):
        """Reads whatever arrives within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if not select.select([self.sock], [], [], max(0.0, left))[0]:
                if left <= 0:
                    return
                continue
            raw, _ = self.sock.recvfrom(65536)
            self.bytes_out += len(raw)
            self.sizes.append(len(raw))
            try:
                m = bdec(raw)
            except ValueError:
                m = {}
            if m.get("y") == b"q":
                self.pings += 1
            elif isinstance(m.get("t"), bytes):
                self.replies[m["t"]] = (raw, m)
                self.answers += 1

    def answer(self, t, timeout=2.0):
        """The node's answer to transaction `t`, or None if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        while t not in self.replies and time.monotonic() < deadline:
            self.drain(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.replies.get(t)

    def ask(self, q, args=None, timeout=2.0):
        raw, m = self.answer(self.query(q, args), timeout) or (None, None)
        assert m is not None, f"{self.addr}: no answer to {q}"
        assert m.get("y") == b"r", f"{self.addr}: {q} got {m}"
        return raw, m["r"]

    def close(self):
        self.sock.close()


class FakeNodes:
    """DHT nodes in a thread, one socket each on its own address: they ping a node (which then pings them back and
    puts them in its routing table) and answer what it asks them, with no nodes of their own."""

    def __init__(self, addrs, node):
        self.node = node
        self.socks = []
        for a in addrs:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((a, 0))
            self.socks.append((s, os.urandom(20)))
        self.queries = []  # (address, decoded query) of every query received
        self.senders = []  # (sender's address and port, decoded query), the same queries
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        ids = {s.fileno(): (s, i) for s, i in self.socks}
        while not self.stop.is_set():
            for s in select.select([s for s, _ in self.socks], [], [], 0.1)[0]:
                try:
                    raw, src = s.recvfrom(65536)
                    m = bdec(raw)
                except (OSError, ValueError):
                    continue
                if m.get("y") != b"q":
                    continue
                self.queries.append((s.getsockname()[0], m))
                self.senders.append((src, m))
                r = {"id": ids[s.fileno()][1]}
                if m.get("q") in (b"find_node", b"get_peers", b"get"):
                    r["nodes"] = b""
                    r["token"] = b"tok"
                s.sendto(benc({"r": r, "t": m.get("t", b""), "y": "r"}), src)

    def join(self):
        for s, i in self.socks:
            s.sendto(benc({"a": {"id": i}, "q": "ping", "t": b"jn", "y": "q"}), self.node)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for s, _ in self.socks:
            s.close()


def wait_answering(node, addr, timeout=15):
    """Pings `node` from `addr` until it answers (the DHT socket opens a moment after the TCP listener)."""
    s = Source(addr, node)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if s.answer(s.query("ping"), timeout=0.5):
                return
        raise AssertionError(f"the DHT node at {node} never answered a ping")
    finally:
        s.close()


def padded_ping(node_id, total):
    """A valid ping of exactly `total` bytes (padded with an unknown key, which nodes ignore)."""
    for n in range(total, -1, -1):
        d = benc({"a": {"id": node_id}, "q": "ping", "t": "aa", "y": "q", "z": b"p" * n})
        if len(d) == total:
            return d
    raise ValueError(total)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A `peer share` node with the DHT on at 127.0.0.170, bootstrapped from nothing, whose routing table is then
    filled by 20 fake nodes; 100 peers announced for one info-hash and a 994-byte BEP 44 item put on it, so that
    get_peers and get answers are as big as they get."""
    # Module-scoped, so conftest's per-test environment is not there yet: the same, but with the DHT on.
    tmp = tmp_path_factory.mktemp("dht-socket")
    mp = pytest.MonkeyPatch()
    mp.setenv("PEER_HOME", str(tmp / "home"))
    mp.setenv("PEER_NO_LSD", "1")
    mp.delenv("PEER_NO_DHT", raising=False)
    mp.setenv("PEER_DHT_BOOTSTRAP", "")
    (tmp / "data").mkdir()
    (tmp / "data" / "x").write_bytes(b"x" * 1000)
    run_peer("create", tmp / "data" / "x", "-o", tmp / "x.torrent")
    p = Proc([PEER, "share", tmp / "x.torrent", "--data", tmp / "data", "--bind", NODE, "--port", "0",
              "--state", tmp / "state", "--dht-bootstrap", f"{NODE}:1"], tmp / "node.log")
    fakes = None
    try:
        port = int(p.wait_for(r"listening on [\d.]+:(\d+)").group(1))
        endpoint = (NODE, port)
        wait_answering(endpoint, "127.0.0.199")
        fakes = FakeNodes([f"127.0.0.{171 + i}" for i in range(20)], endpoint)
        fakes.join()
        # The table is full enough once a find_node answer carries k = 8 nodes.
        probe = Source("127.0.0.198", endpoint)
        deadline = time.monotonic() + 10
        while True:
            _, r = probe.ask("find_node", {"target": os.urandom(20)})
            if len(r.get("nodes", b"")) >= 8 * 26 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(r.get("nodes", b"")) >= 8 * 26, f"the node's table never filled: {r}"
        # 100 peers for one info-hash: 20 addresses, 5 ports each (the peer store keeps 100 per info-hash).
        crowded = os.urandom(20)
        for i in range(20):
            s = Source(f"127.0.0.{171 + i}", endpoint)
            _, r = s.ask("get_peers", {"info_hash": crowded})
            for k in range(5):
                s.ask("announce_peer", {"info_hash": crowded, "port": 10_000 + 10 * i + k, "token": r["token"]})
            s.close()
        # A BEP 44 immutable item as large as a value may be (1 000 bytes bencoded).
        value = benc(os.urandom(994))
        assert len(value) == 998
        target = hashlib.sha1(value).digest()
        _, r = probe.ask("get", {"target": target})
        probe.ask("put", {"token": r["token"], "v": bdec(value)})
        probe.close()
        yield {"endpoint": endpoint, "proc": p, "crowded": crowded, "item": target, "fakes": fakes}
        assert p.p.poll() is None, "the node died"
    finally:
        if fakes:
            fakes.close()
        p.stop()
        mp.undo()


def assert_alive(node, addr):
    assert node["proc"].p.poll() is None, "the node process exited"
    s = Source(addr, node["endpoint"])
    try:
        s.ask("ping")
    finally:
        s.close()


# --- bad input ----------------------------------------------------------------------------------------------------

def malformed_cases():
    """(name, datagram, what may come back: "none" or "short"), one fresh source address each."""
    me = os.urandom(20)
    ping = benc({"a": {"id": me}, "q": "ping", "t": "aa", "y": "q"})
    q = lambda name, a, t=b"aa": benc({"a": a, "q": name, "t": t, "y": "q"})  # noqa: E731
    # A 65 507-byte datagram (the most UDP/IPv4 carries) whose first 2 048 bytes are a complete, valid ping: a
    # node that reads only 2 048 bytes of it must not take it for one.
    head = padded_ping(me, 2048)
    rng = random.Random(27)
    cases = [
        ("empty datagram", b"", "none"),
        ("truncated ping", ping[:len(ping) // 2], "none"),
        ("truncated by one byte", ping[:-1], "none"),
        ("trailing bytes", ping + b"xx", "none"),
        ("a top-level list", benc([b"a", b"q"]), "none"),
        ("a not a dictionary", q("ping", b"x"), "short"),
        ("a missing", benc({"q": "ping", "t": "aa", "y": "q"}), "short"),
        ("id of 19 bytes", q("ping", {"id": me[:19]}), "short"),
        ("id an integer", q("ping", {"id": 7}), "short"),
        ("find_node target of 19 bytes", q("find_node", {"id": me, "target": me[:19]}), "short"),
        ("find_node target a list", q("find_node", {"id": me, "target": [me]}), "short"),
        ("get_peers info_hash of 21 bytes", q("get_peers", {"id": me, "info_hash": me + b"x"}), "short"),
        ("announce_peer port 70000", q("announce_peer", {"id": me, "info_hash": me, "port": 70000,
                                                          "token": b"x"}), "short"),
        ("announce_peer bad token", q("announce_peer", {"id": me, "info_hash": me, "port": 1, "token": b"x"}),
         "short"),
        ("put without v", q("put", {"id": me, "token": b"x"}), "short"),
        ("want an integer", q("find_node", {"id": me, "target": me, "want": 4}), "short"),
        ("unknown q without target", q("x" * 40, {"id": me}), "short"),
        ("q an integer", benc({"a": {"id": me}, "q": 1, "t": "aa", "y": "q"}), "none"),
        ("y unknown", benc({"a": {"id": me}, "q": "ping", "t": "aa", "y": "z"}), "none"),
        ("t an integer", benc({"a": {"id": me}, "q": "ping", "t": 5, "y": "q"}), "none"),
        ("t empty", q("ping", {"id": me}, t=b""), "none"),
        ("t of 9 bytes", q("ping", {"id": me}, t=b"t" * (MAX_T + 1)), "none"),
        ("t of 1 000 bytes", q("ping", {"id": me}, t=b"t" * 1000), "none"),
        ("t of 1 000 bytes, malformed a", q("ping", b"x", t=b"t" * 1000), "none"),
        ("t of 1 000 bytes, unknown q", q("zzz", {"id": me}, t=b"t" * 1000), "none"),
        ("an answer nobody asked for", benc({"r": {"id": me}, "t": "zz", "y": "r"}), "none"),
        ("an error nobody asked for", benc({"e": [201, "x"], "t": "zz", "y": "e"}), "none"),
        ("integer overflow", b"d1:ad2:id20:" + me + b"4:porti99999999999999999999999999ee1:q4:ping1:t2:aa1:y1:qe",
         "none"),
        ("string length 2^32", b"d1:ad2:id4294967296:" + me + b"ee1:q4:ping1:t2:aa1:y1:qe", "none"),
        ("nested 5 000 deep", b"l" * 5000 + b"e" * 5000, "none"),
        ("a valid ping of 2 049 bytes", padded_ping(me, 2049), "none"),
        ("65 507 bytes of ping", benc({"a": {"id": me}, "q": "ping", "t": "aa", "y": "q",
                                       "z": b"p" * 65_500})[:65_507], "none"),
        ("65 507 bytes, a valid ping in the first 2 048", head + b"\0" * (65_507 - 2048), "none"),
        ("65 507 random bytes", rng.randbytes(65_507), "none"),
    ]
    cases.append(("a duplicate key", b"d1:ad2:id20:" + me + b"e1:q4:ping1:t2:aa1:t2:bb1:y1:qe", "none"))
    cases.append(("a negative zero", b"d1:ad2:id20:" + me + b"e1:q4:ping1:t2:aa1:v1:x1:y1:q1:zi-0ee", "none"))
    for i in range(2):
        cases.append((f"random bytes #{i}", rng.randbytes(rng.randrange(1, 1500)), "none"))
    for i in range(2):  # random bytes after a plausible start
        cases.append((f"random after 'd1:a' #{i}", b"d1:ad2:id20:" + rng.randbytes(rng.randrange(20, 600)), "none"))
    assert len(cases) <= 40
    return cases


def test_bad_input_gets_no_answer_or_a_short_error_and_the_node_survives(node):
    """Each malformed datagram comes from its own address (so that no answer is not the rate limiter's doing),
    then the same address pings: the node is alive and still answers it."""
    cases = malformed_cases()
    sources = [Source(f"127.0.0.{215 + i}", node["endpoint"]) for i in range(len(cases))]
    try:
        for s, (_, data, _) in zip(sources, cases):
            s.send(data)
            time.sleep(0.005)  # 65 507-byte datagrams must not overflow the node's socket buffer
        time.sleep(0.5)
        report = []
        for s, (name, data, allowed) in zip(sources, cases):
            s.drain()
            got = list(s.replies.values())
            assert len(got) <= 1, f"{name}: {len(got)} answers"
            if got:
                raw, m = got[0]
                assert allowed == "short", f"{name}: answered with {raw[:120]!r}"
                assert m.get("y") == b"e" and len(raw) <= SHORT_ERROR, f"{name}: answered with {raw[:200]!r}"
            report.append(f"{name}: {len(data)} B in -> " + (f"error {got[0][1]['e'][0]}, {len(got[0][0])} B"
                                                            if got else "nothing"))
        # Alive, and each address is still answered (none was rate-limited by one bad datagram).
        pings = [s.query("ping") for s in sources]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not all(t in s.replies for s, t in zip(sources, pings)):
            for s in sources:
                s.drain()
            time.sleep(0.05)
        for s, t, (name, _, _) in zip(sources, pings, cases):
            assert t in s.replies and s.replies[t][1].get("y") == b"r", f"after {name}: a ping went unanswered"
        print("\n" + "\n".join(report))
        assert_alive(node, "127.0.0.197")
    finally:
        for s in sources:
            s.close()


def test_transaction_ids_longer_than_eight_bytes_are_refused(node):
    s = Source("127.0.0.196", node["endpoint"])
    try:
        assert s.answer(s.query("ping", t=b"8" * MAX_T)) is not None, "an 8-byte t is allowed"
        s.send(padded_ping(s.id, 2048))  # the longest datagram a node reads (KRPCLimits.maxDatagramLength)
        assert s.answer(b"aa") is not None, "a 2 048-byte ping is allowed"
        for n in (MAX_T + 1, 64, 1000):
            assert s.answer(s.query("find_node", {"target": os.urandom(20)}, t=b"t" * n), timeout=0.5) is None, n
        assert max(s.sizes) <= MAX_REPLY
    finally:
        s.close()


# --- answers within the cap ---------------------------------------------------------------------------------------

def test_every_answer_stays_under_the_cap(node):
    """The biggest answers there are: find_node with a full table, get_peers for an info-hash with 100 peers,
    BEP 44 get of a 1 000-byte item, sample_infohashes, an unknown method with a target; with want n4+n6."""
    s = Source("127.0.0.195", node["endpoint"])
    try:
        want = {"want": [b"n4", b"n6"]}
        rows = []

        def ask(name, q, args):
            before = s.bytes_in
            raw, r = s.ask(q, args)
            rows.append((name, s.bytes_in - before, len(raw)))
            assert len(raw) <= MAX_REPLY, f"{name}: {len(raw)} bytes"
            return r

        ask("ping", "ping", {})
        r = ask("find_node", "find_node", {"target": os.urandom(20), **want})
        assert len(compact_nodes(r["nodes"])) == 8
        r = ask("get_peers (100 peers stored)", "get_peers", {"info_hash": node["crowded"], **want})
        assert len(compact_peers(r["values"])) >= 50, "the crowded info-hash lost its peers"
        r = ask("get_peers (none stored)", "get_peers", {"info_hash": os.urandom(20), **want})
        assert "values" not in r
        r = ask("get (1 000-byte item)", "get", {"target": node["item"], **want})
        assert len(benc(r["v"])) == 998
        ask("sample_infohashes", "sample_infohashes", {"target": os.urandom(20), **want})
        ask("unknown q with a target", "vote", {"target": os.urandom(20), **want})
        print()
        for name, q, a in rows:
            print(f"{name}: query {q} B, answer {a} B, x{a / q:.1f}")
        assert max(a for _, _, a in rows) > 1000, "no answer came near the cap: the test lost its teeth"
    finally:
        s.close()


# --- rate limits per source ---------------------------------------------------------------------------------------

def flood(a, send, n, spread, during=None):
    """`n` datagrams from `a`, `send(i)` each, spread over `spread` seconds, then a second to let answers come in;
    `during()` halfway. Prints and returns (answers, seconds from the first send to the last read)."""
    start = time.monotonic()
    for i in range(n):
        send(i)
        if i == n // 2 and during:
            during()
        if i % 50 == 0:
            a.drain()
            lag = start + spread * i / n - time.monotonic()
            if lag > 0:
                time.sleep(lag)
    sent = time.monotonic() - start
    a.drain(1.0)
    elapsed = time.monotonic() - start
    allowed = REPLY_BURST + REPLIES_PER_SECOND * elapsed + 1
    print(f"\nflood: {n} datagrams ({a.bytes_in} B) in {sent:.2f} s from {a.addr}; over {elapsed:.2f} s "
          f"{a.answers} answers + {a.pings} pings from the node = {a.bytes_out} B out "
          f"(largest {max(a.sizes, default=0)} B); out/in = {a.bytes_out / a.bytes_in:.3f}; "
          f"limit {REPLY_BURST} + {REPLIES_PER_SECOND}/s allows {allowed:.0f} answers")
    assert a.answers >= REPLY_BURST, "the node answered less than a burst: was it flooded at all?"
    assert a.answers <= allowed, f"{a.answers} answers to one address in {elapsed:.2f} s"
    assert max(a.sizes) <= MAX_REPLY
    # Answers within the limit, plus at most two verification pings in flight (a send and its retry).
    assert a.bytes_out <= allowed * MAX_REPLY + 2 * SHORT_ERROR
    return a.answers, elapsed


def test_a_flood_from_one_address_is_rate_limited_and_others_are_still_answered(node):
    """2 000 BEP 44 gets of the 1 000-byte item (the best amplification a query can buy: 13 times its size) in
    about two seconds from one address. Its bucket holds 20 answers and refills at 5 a second, so at most 20 + 5
    per second of the flood (and of the second after it) are answered; the bytes out per byte in stay well under
    1. Meanwhile a second address is answered."""
    a = Source("127.0.0.191", node["endpoint"])
    b = Source("127.0.0.192", node["endpoint"])
    try:
        b_t = []
        flood(a, lambda i: a.query("get", {"target": node["item"]}), 2000, 2.0,
              during=lambda: b_t.append(b.query("ping")))
        assert a.bytes_out / a.bytes_in < 0.5, f"{a.bytes_out} B out for {a.bytes_in} B in"
        b_answer = b.answer(b_t[0], timeout=1.0)
        assert b_answer is not None and b_answer[1].get("y") == b"r", "a second address went unanswered"
        # The flooding address is answered again once its bucket refills (1/5 s a token).
        time.sleep(0.5)
        a.ask("ping")
        assert_alive(node, "127.0.0.193")
    finally:
        a.close()
        b.close()


def test_a_flood_of_malformed_queries_gets_rate_limited_errors(node):
    """Errors to malformed queries take from the same per-address bucket: 500 in half a second get at most
    20 + 5/s short errors."""
    a = Source("127.0.0.194", node["endpoint"])
    try:
        bad = benc({"a": {"id": a.id, "target": b"short"}, "q": "find_node", "t": "aa", "y": "q"})
        flood(a, lambda i: a.send(bad), 500, 0.5)
        assert all(len(raw) <= SHORT_ERROR and m.get("y") == b"e" for raw, m in a.replies.values())
    finally:
        a.close()


# --- BEP 27: private torrents stay off the DHT ------------------------------------------------------------------

class DHTDaemon(Daemon):
    """`peer serve` (one Session, its DHT on) joined to the DHT through `hub`."""

    def __init__(self, procs, tmp_path, addr, hub):
        self.addr = addr
        self.state = tmp_path / f"state-{addr}"
        self.proc = procs([PEER, "serve", "--api", f"{addr}:0", "--bind", addr, "--port", "0", "--state", self.state,
                           "--download-dir", tmp_path / f"dl-{addr}", "--allow-path", tmp_path / "src",
                           "--dht-bootstrap", hub], tmp_path / "serve.log")
        self.port = int(self.proc.wait_for(r"API and web UI on http://([\d.]+):(\d+)").group(2))
        self.token = (self.state / "api-token").read_text().strip()


def test_a_private_torrent_is_never_looked_up_or_announced_on_the_dht(tmp_path, procs, monkeypatch):
    """One `peer serve` node with the DHT on seeds the same files as a public and as a private torrent. A Python
    node in the DHT records every query it gets: the public info-hash is looked up and announced (the control, with
    implied_port from the listen port), the private one never appears; the hub has peers for the public one only, and so does `peer dht peers`."""
    monkeypatch.delenv("PEER_NO_DHT")
    src = tmp_path / "src" / "album"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(200_000))
    hashes = {}
    for kind, extra in (("public", []), ("private", ["--private"])):
        out = run_peer("create", src, "-o", tmp_path / f"{kind}.torrent", "--v1", "--json", *extra).stdout
        hashes[kind] = json.loads(out)["info_hash_v1"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_bytes(b"x" * 1000)
    run_peer("create", tmp_path / "other" / "x", "-o", tmp_path / "x.torrent")
    hub = procs([PEER, "share", tmp_path / "x.torrent", "--data", tmp_path / "other", "--bind", "127.0.0.200",
                 "--port", "0", "--state", tmp_path / "hub", "--dht-bootstrap", "127.0.0.200:1"], tmp_path / "hub.log")
    hub_ep = ("127.0.0.200", int(hub.wait_for(r"listening on [\d.]+:(\d+)").group(1)))
    wait_answering(hub_ep, "127.0.0.205")
    # The observer enters the hub's table (the hub pings it back), so the hub hands it to whoever joins.
    observer = FakeNodes(["127.0.0.202"], hub_ep)
    client = Source("127.0.0.203", hub_ep)
    try:
        observer.join()
        wait_until("the hub to verify the observer", lambda: any(m.get("q") == b"ping" for _, m in observer.queries))
        d = DHTDaemon(procs, tmp_path, "127.0.0.201", f"{hub_ep[0]}:{hub_ep[1]}")
        path = "/api/torrents?save_path=" + urllib.parse.quote(str(src.parent))
        for kind in hashes:
            status, _, body = d.request("POST", path, (tmp_path / f"{kind}.torrent").read_bytes(),
                                        headers={"Content-Type": "application/x-bittorrent"})
            assert status == 201, body
        for kind, h in hashes.items():
            d.wait(h, lambda t: t["state"] == "seeding", timeout=30, what=f"the {kind} torrent")
        port = d.ok("GET", "/api/session")["listen_port"]
        seed = f"127.0.0.201:{port}"

        def asked_about(h):
            h = bytes.fromhex(h)
            return [m["q"] for _, m in observer.queries
                    if isinstance(m.get("a"), dict) and h in (m["a"].get("info_hash"), m["a"].get("target"))]

        def hub_peers(h):
            _, r = client.ask("get_peers", {"info_hash": bytes.fromhex(h)})
            return compact_peers(r.get("values", []))

        # The control: the public torrent is looked up and announced, and the hub gives it out.
        wait_until("the public torrent's announce", lambda: b"announce_peer" in asked_about(hashes["public"]))
        wait_until("the hub to list the seed", lambda: seed in hub_peers(hashes["public"]), interval=0.5)
        # The DHT speaks from the listen port, so its announces say implied_port (BEP 5): a node stores the port the
        # datagram came from, which a NAT that changes ports has mapped.
        announces = [(src, m["a"]) for src, m in observer.senders if m.get("q") == b"announce_peer"
                     and m["a"].get("info_hash") == bytes.fromhex(hashes["public"])]
        assert announces and all(a.get("implied_port") == 1 and src == ("127.0.0.201", port) for src, a in announces), \
            announces
        found = run_peer("dht", "peers", hashes["public"], "--bind", "127.0.0.204", "--state", tmp_path / "dht-204",
                         "--dht-bootstrap", f"{hub_ep[0]}:{hub_ep[1]}", "--timeout", "20", check=False, timeout=60)
        assert seed in found.stdout.split(), found.stderr
        # The private torrent, started at the same time, never reached the DHT.
        assert asked_about(hashes["private"]) == [], "the private torrent's info-hash went out on the DHT"
        assert hub_peers(hashes["private"]) == set()
        p = run_peer("dht", "peers", hashes["private"], "--bind", "127.0.0.204", "--state", tmp_path / "dht-204",
                     "--dht-bootstrap", f"{hub_ep[0]}:{hub_ep[1]}", "--timeout", "20", check=False, timeout=60)
        assert p.returncode != 0 and p.stdout.strip() == "", p.stdout + p.stderr
        print(f"\nobserver saw {len(observer.queries)} queries; about the public torrent: "
              f"{sorted(set(asked_about(hashes['public'])))}; about the private one: none")
    finally:
        client.close()
        observer.close()
