"""Issue 15: channels and groups between Peer daemons on loopback, each with its own 127.0.0.x and state. The
publisher's daemon is the node everyone joins the private DHT through; subscribers poll every few seconds."""
import json
import os
import time

import pytest

from conftest import PEER, run_peer, wait_until
from test_daemon import Daemon
from test_swarm import procs  # noqa: F401 (procs is a fixture)

HERE = os.path.dirname(os.path.abspath(__file__))


def daemons(procs, tmp_path, addrs, poll=3, extra=()):
    """The first daemon is the DHT's hub (it joins through nothing); the others join through it."""
    first = Daemon(procs, tmp_path, addrs[0], log=f"serve-{addrs[0]}.log",
                   extra=["--dht-bootstrap", f"{addrs[0]}:1", "--channel-poll", str(poll), *extra])
    dht_port = int(first.proc.wait_for(r"peers on port (\d+)").group(1))
    hub = f"{addrs[0]}:{dht_port}"
    rest = [Daemon(procs, tmp_path, a, log=f"serve-{a}.log",
                   extra=["--dht-bootstrap", hub, "--channel-poll", str(poll), *extra]) for a in addrs[1:]]
    return [first, *rest], hub


def channel(d, id):
    return d.ok("GET", f"/api/channels/{id}")


def test_a_post_reaches_every_subscriber_and_a_torrent_item_is_found_by_search(tmp_path, procs, monkeypatch):
    monkeypatch.delenv("PEER_NO_DHT")
    ds, _ = daemons(procs, tmp_path, [f"127.0.0.{170 + i}" for i in range(4)])
    pub, subs = ds[0], ds[1:]
    c = pub.ok("POST", "/api/channels", {"name": "news", "title": "Open films"}, expect=201)
    assert c["link"].startswith("magnet:?xs=urn:btpk:") and c["mine"]
    for s in subs:
        s.ok("POST", "/api/channels/subscribe", {"link": c["link"]}, expect=201)
    src = tmp_path / "Sintel.Channel.2010"
    src.mkdir()
    (src / "film.bin").write_bytes(os.urandom(50_000))
    t = tmp_path / "sintel.torrent"
    run_peer("create", src, "-o", t)
    import base64
    pub.ok("POST", f"/api/channels/{c['id']}/items",
           {"torrent": base64.b64encode(t.read_bytes()).decode(), "license": "CC-BY-3.0"}, expect=201)
    post = pub.ok("POST", f"/api/channels/{c['id']}/posts", {"title": "Hello", "body": "First post."}, expect=201)
    t0 = time.monotonic()
    for s in subs:
        wait_until(f"both items at {s.addr}", lambda: len(channel(s, c["id"])["items"]) == 2 and channel(s, c["id"]),
                   timeout=60)
    took = time.monotonic() - t0
    d = channel(subs[0], c["id"])
    print(f"channels: 2 items at {len(subs)} subscribers in {took:.1f} s; {json.dumps(d)[:600]}")
    kinds = {i["kind"]: i for i in d["items"]}
    assert kinds["post"]["id"] == post["id"] and kinds["post"]["body"] == "First post."
    assert kinds["torrent"]["license"] == "CC-BY-3.0" and kinds["torrent"]["title"] == "Sintel.Channel.2010"
    assert d["channel"]["title"] == "Open films" and d["channel"]["seq"] == 2
    hits = subs[0].ok("GET", "/api/search?q=sintel+channel")["hits"]
    assert hits and "channel" in hits[0]["sources"]
