"""Issue 14: harvesting the DHT, politely. A Peer daemon with --harvest at 127.0.0.241 is the node everyone joins
a private DHT through (added as an ordinary node: libtorrent keeps a bootstrap router out of its routing table, so it
would never announce to one); six python3-libtorrent nodes (127.0.0.247-252) seed 30 torrents with distinct names,
5 each (so that one node's announces stay under the DHT's per-address reply limit, 5 a second); a node that asks to
be sampled at most every 300 s (dhtinterval.py, 127.0.0.243) counts the samples it gets."""
import json
import os
import time
import urllib.parse

import pytest

from conftest import PEER, run_peer, wait_until
from test_daemon import Daemon
from test_swarm import free_port, procs  # noqa: F401 (procs is a fixture)
from test_dht_socket import Source

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("Orchard Lantern Meridian Cobalt Thistle Harbinger Solstice Quill Ember Marigold Talisman Verdant "
         "Nimbus Cinder Obsidian Juniper Halcyon Sparrow Tempest Aurora Lichen Zenith Bramble Cascade Fathom "
         "Gossamer Hollow Ironwood Kestrel Larkspur").split()


def test_harvest_finds_what_libtorrent_seeds_within_budget_and_honours_interval(tmp_path, procs, monkeypatch):
    monkeypatch.delenv("PEER_NO_DHT")
    d = Daemon(procs, tmp_path, "127.0.0.241", extra=["--harvest", "--dht-bootstrap", "127.0.0.241:1"])
    dht_port = int(d.proc.wait_for(r"peers on port (\d+)").group(1))
    hub = f"127.0.0.241:{dht_port}"
    sampler = procs(["/usr/bin/python3", os.path.join(HERE, "dhtinterval.py"), "--bind", "127.0.0.243", "--port",
                     str(free_port("127.0.0.243")), "--introduce", hub, "--interval", "300"], tmp_path / "interval.log")
    sampler.wait_for("READY")
    # 30 torrents, 5 on each libtorrent node.
    addresses = [f"127.0.0.{247 + i}" for i in range(6)]
    groups = [[] for _ in addresses]
    for i, word in enumerate(NAMES):
        src = tmp_path / "data" / f"{word}.Harvest.{i:02d}"
        src.mkdir(parents=True)
        (src / "file.bin").write_bytes(os.urandom(20_000 + i))
        t = tmp_path / f"{word}.torrent"
        run_peer("create", src, "-o", t, "--v1")
        groups[i % len(addresses)].append(str(t))
    t0 = time.monotonic()
    for g, addr in zip(groups, addresses):
        p = procs(["/usr/bin/python3", os.path.join(HERE, "ltmultiseed.py"), "--bind", addr, "--port",
                   str(free_port(addr)), "--dht-bootstrap", hub, str(tmp_path / "data"), *g], tmp_path / f"lt-{addr}.log")
        p.wait_for("READY", timeout=60)

    found = {}
    took = None

    def all_found():
        nonlocal took
        for word in NAMES:
            if word not in found:
                hits = d.ok("GET", f"/api/search?q={urllib.parse.quote(word + ' harvest')}")["hits"]
                if hits:
                    found[word] = hits[0]
        if len(found) == len(NAMES) and took is None:
            took = time.monotonic() - t0
        return len(found) == len(NAMES)
    # The DHT keeps answering while it harvests: a probe's get_peers, about 3 a second (under the per-address
    # limit), all answered; at least 40 of them, however fast the harvest.
    probe = Source("127.0.0.244", ("127.0.0.241", dht_port))
    asked = answered = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not all_found() or asked < 40):
        for _ in range(2):
            t = probe.query("get_peers", {"info_hash": os.urandom(20)})
            asked += 1
            answered += probe.answer(t, timeout=1.0) is not None
        time.sleep(0.5)
    stats = d.ok("GET", "/api/index")
    print(f"harvest: the daemon's DHT: {json.dumps(d.ok('GET', '/api/dht'))}")
    h = stats["harvest"]
    print(f"harvest: {len(found)}/{len(NAMES)} found by keyword in {took or -1:.1f} s; {json.dumps(h)}; probe {answered}/{asked}")
    assert len(found) == len(NAMES), f"missing {sorted(set(NAMES) - set(found))}"
    assert all(hit["verified"] and "dht" in hit["sources"] for hit in found.values())
    assert took is not None and took < 120
    # The budget, as the harvester counted it: queries within any second, fetches at once, fetches per address.
    assert h["max_queries_per_second"] <= 20
    assert 1 <= h["max_concurrent_fetches"] <= 4
    assert h["max_fetches_per_address"] == 1
    assert answered >= 0.99 * asked
    # The node that asked for 300 s was sampled once, and not again within them.
    sampler.log.seek(0)
    samples = [line for line in sampler.log.read().splitlines() if line.startswith("SAMPLE")]
    print(f"harvest: the 300 s node saw {samples}")
    assert len(samples) == 1
