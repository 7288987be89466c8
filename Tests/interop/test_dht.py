"""Trackerless: a private DHT on loopback, each node on its own 127.0.0.x (libtorrent ignores DHT peers that share
an address), bootstrapped only from a Peer node; bare magnet links (no tracker, no x.pe) in both directions."""
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import PEER, run_peer
from test_swarm import LTPEER, free_port, procs, tree_digest  # noqa: F401 (procs is a fixture)


@pytest.fixture
def swarm(tmp_path, procs, monkeypatch):
    monkeypatch.delenv("PEER_NO_DHT")
    src = tmp_path / "src" / "trackerless"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(5_000_000))
    (src / "b.txt").write_bytes(b"no tracker was harmed\n")
    torrent = tmp_path / "t.torrent"
    info = json.loads(run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "64K", "--json").stdout)
    # The hub: a Peer node with the DHT on and nothing to share but an unrelated torrent.
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_bytes(b"x" * 1000)
    run_peer("create", other / "x", "-o", tmp_path / "x.torrent")
    hub = procs([PEER, "share", tmp_path / "x.torrent", "--data", other, "--bind", "127.0.0.120", "--port", "0",
                 "--state", tmp_path / "hub", "--dht-bootstrap", "127.0.0.120:1"], tmp_path / "hub.log")
    port = int(hub.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    return {"src": src, "torrent": torrent, "info": info, "hub": f"127.0.0.120:{port}"}


def test_peer_gets_a_bare_magnet_from_a_libtorrent_seed(tmp_path, procs, swarm):
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(swarm["torrent"]), str(swarm["src"].parent), "--bind",
               "127.0.0.121", "--port", str(free_port("127.0.0.121")), "--dht-bootstrap", swarm["hub"]],
              tmp_path / "lt-seed.log")
    s.wait_for("READY")
    link = f"magnet:?xt=urn:btih:{swarm['info']['info_hash_v1']}"
    p = run_peer("get", link, "-o", tmp_path / "out", "--bind", "127.0.0.122", "--port", "0", "--state",
                 tmp_path / "leech", "--dht-bootstrap", swarm["hub"], timeout=120)
    assert tree_digest(tmp_path / "out" / "trackerless") == tree_digest(swarm["src"])
    # The routing table is kept for the next run.
    assert (tmp_path / "leech" / "dht-nodes").stat().st_size > 0


def test_the_daemon_gets_a_bare_magnet_through_the_dht(tmp_path, procs, swarm):
    """`peer serve` uses the DHT by default: a bare magnet added through its API finds a libtorrent seed, and
    the routing table is kept in its database for the next start."""
    import sqlite3
    from test_daemon import Daemon
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(swarm["torrent"]), str(swarm["src"].parent), "--bind",
               "127.0.0.125", "--port", str(free_port("127.0.0.125")), "--dht-bootstrap", swarm["hub"]],
              tmp_path / "lt-seed.log")
    s.wait_for("READY")
    d = Daemon(procs, tmp_path, "127.0.0.126", extra=["--dht-bootstrap", swarm["hub"]])
    id = swarm["info"]["info_hash_v1"]
    d.ok("POST", "/api/torrents", {"magnet": f"magnet:?xt=urn:btih:{id}"}, expect=201)
    d.wait(id, lambda t: t["state"] == "seeding", timeout=120, what="the bare magnet")
    assert tree_digest(d.downloads / "trackerless") == tree_digest(swarm["src"])
    assert d.ok("GET", "/api/session")["dht_nodes"] >= 1
    # `peer dht` uses the daemon's node (it has joined; a temporary node here would have no bootstrap at all).
    stats = json.loads(run_peer("dht", "stats", "--state", d.state, "--json").stdout)
    assert stats["node_id"] == d.ok("GET", "/api/dht")["node_id"] and stats["ipv4_nodes"] >= 1
    found = json.loads(run_peer("dht", "peers", id, "--state", d.state, "--json", timeout=60).stdout)
    assert any(p.startswith("127.0.0.125:") for p in found["peers"]), found
    assert "the daemon's node" in run_peer("dht", "ping", swarm["hub"], "--state", d.state).stdout
    status, _, err = d.request("POST", "/api/dht/peers", {"info_hash": "xyz"})
    assert status == 400 and "40 hex digits" in err["error"]["message"]
    # BEP 44 through the daemon's node (the state folder holds no routing table of its own, so a temporary node
    # could not even join): what it stores, a node of our own reads back, and the other way round.
    before = d.ok("GET", "/api/dht")["queries_sent"]
    put = json.loads(run_peer("dht", "put", "--immutable", "via the daemon", "--state", d.state, "--json",
                              timeout=60).stdout)
    assert put["stored_on"] >= 1 and d.ok("GET", "/api/dht")["queries_sent"] > before
    assert peer_dht(tmp_path, "127.0.0.127", swarm["hub"], "get", "--immutable", put["target"]).stdout == "via the daemon\n"
    key = tmp_path / "daemon.key"
    public = run_peer("dht", "keygen", "-o", key).stdout.strip()
    for text in ["one", "two"]:
        run_peer("dht", "put", "--mutable", text, "--key", key, "--salt", "s", "--state", d.state, timeout=60)
    got = json.loads(run_peer("dht", "get", "--mutable", public, "--salt", "s", "--state", d.state, "--json",
                              timeout=60).stdout)
    assert (got["value"], got["seq"], got["public_key"]) == ("two", 1, public)
    mine = peer_dht(tmp_path, "127.0.0.127", swarm["hub"], "put", "--immutable", "via a node of its own").stdout.strip()
    assert run_peer("dht", "get", "--immutable", mine, "--state", d.state, timeout=60).stdout == "via a node of its own\n"
    d.proc.stop()
    db = sqlite3.connect(d.state / "peer.sqlite")
    (nodes,) = db.execute("SELECT length(value) FROM setting WHERE key = 'dht-nodes'").fetchone()
    db.close()
    assert nodes > 0


def test_libtorrent_gets_a_bare_magnet_from_a_peer_seed(tmp_path, procs, swarm):
    seed = procs([PEER, "share", swarm["torrent"], "--data", swarm["src"].parent, "--bind", "127.0.0.123",
                  "--port", "0", "--state", tmp_path / "seed", "--dht-bootstrap", swarm["hub"]], tmp_path / "seed.log")
    seed.wait_for("listening on")
    out = tmp_path / "lt-out"
    out.mkdir()
    link = f"magnet:?xt=urn:btih:{swarm['info']['info_hash_v1']}"
    lt = subprocess.run(["/usr/bin/python3", LTPEER, "leech", link, str(out), "--bind", "127.0.0.124", "--port",
                         str(free_port("127.0.0.124")), "--dht-bootstrap", swarm["hub"], "--timeout", "90"],
                        capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "trackerless") == tree_digest(swarm["src"])


@pytest.fixture
def ipv6_host():
    """A network namespace whose lo holds fd00:d47::1 to ::9, so that each IPv6 node has an address of its own."""
    name = f"peerdht6-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=20)
    try:
        inside = ["ip", "netns", "exec", name]
        subprocess.run(inside + ["ip", "link", "set", "lo", "up"], check=True, capture_output=True, timeout=20)
        for i in range(1, 10):
            subprocess.run(inside + ["ip", "addr", "add", f"fd00:d47::{i}/128", "dev", "lo", "nodad"], check=True,
                           capture_output=True, timeout=20)
        yield inside
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def test_bare_magnets_over_the_ipv6_dht(tmp_path, procs, swarm, ipv6_host):
    """BEP 32: the same trackerless fetches with every node on IPv6 only: Peer from a libtorrent seed, and
    libtorrent from a Peer seed."""
    inside = ipv6_host
    hub = procs(inside + [PEER, "share", tmp_path / "x.torrent", "--data", tmp_path / "other", "--bind", "fd00:d47::1",
                          "--port", "0", "--state", tmp_path / "hub6", "--dht-bootstrap", "[fd00:d47::1]:1"],
                tmp_path / "hub6.log")
    boot = "[fd00:d47::1]:%s" % hub.wait_for(r"listening on \[fd00:d47::1\]:(\d+)").group(1)
    link = f"magnet:?xt=urn:btih:{swarm['info']['info_hash_v1']}"
    s = procs(inside + ["/usr/bin/python3", LTPEER, "seed", str(swarm["torrent"]), str(swarm["src"].parent), "--bind",
                        "fd00:d47::2", "--port", "6881", "--dht-bootstrap", boot], tmp_path / "lt-seed6.log")
    s.wait_for("READY")
    p = subprocess.run(inside + [PEER, "get", link, "-o", tmp_path / "out6", "--bind", "fd00:d47::3", "--port", "0",
                                 "--state", tmp_path / "leech6", "--dht-bootstrap", boot],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert tree_digest(tmp_path / "out6" / "trackerless") == tree_digest(swarm["src"])
    seed = procs(inside + [PEER, "share", swarm["torrent"], "--data", swarm["src"].parent, "--bind", "fd00:d47::4",
                           "--port", "0", "--state", tmp_path / "seed6", "--dht-bootstrap", boot], tmp_path / "seed6.log")
    seed.wait_for("listening on")
    s.stop()
    out = tmp_path / "lt-out6"
    out.mkdir()
    lt = subprocess.run(inside + ["/usr/bin/python3", LTPEER, "leech", link, str(out), "--bind", "fd00:d47::5", "--port",
                                  "6881", "--dht-bootstrap", boot, "--timeout", "90"],
                        capture_output=True, text=True, timeout=120)
    assert lt.returncode == 0, lt.stderr
    assert tree_digest(out / "trackerless") == tree_digest(swarm["src"])


LTDHT = str(__import__("pathlib").Path(__file__).resolve().parent / "ltdht.py")


def lt_dht(tmp_path, addr, hub, *args):
    p = subprocess.run(["/usr/bin/python3", LTDHT, "--bind", addr, "--port", str(free_port(addr)), "--bootstrap", hub,
                        *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def peer_dht(tmp_path, addr, hub, *args, check=True):
    return run_peer("dht", *args, "--bind", addr, "--state", tmp_path / f"dht-{addr}", "--dht-bootstrap", hub,
                    timeout=60, check=check)


def test_bep44_items_between_peer_and_libtorrent(tmp_path, procs, swarm):
    """Immutable and mutable items put by Peer are read by libtorrent, and the other way round; a mutable item's
    newer sequence number wins."""
    hub = swarm["hub"]
    # A few more Peer nodes, so that lookups have somewhere to go (libtorrent finds nothing in a DHT of two).
    for i in range(3):
        n = procs([PEER, "share", tmp_path / "x.torrent", "--data", tmp_path / "other", "--bind", f"127.0.0.14{i}",
                   "--port", "0", "--state", tmp_path / f"n{i}", "--dht-bootstrap", hub], tmp_path / f"n{i}.log")
        n.wait_for("listening on")
    time.sleep(1)
    # Peer puts, libtorrent gets.
    target = peer_dht(tmp_path, "127.0.0.125", hub, "put", "--immutable", "from peer").stdout.strip()
    assert lt_dht(tmp_path, "127.0.0.126", hub, "get-immutable", target)["value"] == "from peer"
    # libtorrent puts, Peer gets.
    put = lt_dht(tmp_path, "127.0.0.127", hub, "put-immutable", "from libtorrent")
    assert put["stored_on"] >= 1
    assert peer_dht(tmp_path, "127.0.0.125", hub, "get", "--immutable", put["target"]).stdout.strip() == "from libtorrent"
    # Mutable: Peer puts twice (seq 0 then 1), libtorrent reads the newer value.
    key = tmp_path / "k.key"
    public = run_peer("dht", "keygen", "-o", key).stdout.strip()
    peer_dht(tmp_path, "127.0.0.125", hub, "put", "--mutable", "first", "--key", key, "--salt", "s")
    peer_dht(tmp_path, "127.0.0.125", hub, "put", "--mutable", "second", "--key", key, "--salt", "s")
    got = lt_dht(tmp_path, "127.0.0.128", hub, "get-mutable", public, "--salt", "s")
    assert got == {"value": "second", "seq": 1}
    # libtorrent puts a mutable item with its own key; Peer reads it and checks the signature.
    seed = key.read_text().strip()
    lt_dht(tmp_path, "127.0.0.129", hub, "put-mutable", "from lt", "--seed", seed, "--public", public, "--salt", "t")
    p = peer_dht(tmp_path, "127.0.0.125", hub, "get", "--mutable", public, "--salt", "t")
    assert p.stdout.strip() == "from lt"
