"""Issue 16: hole punching (BEP 55, ut_holepunch). Two home networks, each behind its own NAT (a router namespace
that masquerades with nftables and lets nothing in that its LAN did not ask for), and a relay on the "internet"
reachable by both. The two NATed Peer nodes know only the relay; it tells each of the other (PEX), a direct dial
fails (the NAT drops it), the node asks the relay for a rendezvous, and both send uTP SYNs at once: each NAT then
takes the other's packets as answers. (The seed joins first, so that only the leecher learns of the other side:
two peers that learn of each other at once dial at once, and that punches the hole without BEP 55.) The seed's data reaches the leecher over that connection (the relay holds
none of it, downloading at 1 KB/s).

The relay is a Peer node, and in a second case libtorrent (Debian's 2.0.8) with TCP and uTP on.

      nsA 10.1.0.2 - 10.1.0.1 natA 20.1.0.1 -+
                                               internet (20.x.0.254) - relay 20.3.0.1
      nsB 10.2.0.2 - 10.2.0.1 natB 20.2.0.1 -+
"""
import itertools
import json
import os
import subprocess
import time

import pytest

from clients import Namespaces, NetnsPair, add_namespaces, address, free_port, in_ns, veth
from conftest import PEER, det_bytes, run_peer
from test_swarm import LTPEER, procs  # noqa: F401 (a fixture)

A, B, RELAY = "10.1.0.2", "10.2.0.2", "20.3.0.1"
NAT_A, NAT_B = "20.1.0.1", "20.2.0.1"
_counter = itertools.count(1)


class TwoNATs(Namespaces):
    def __init__(self):
        tag = f"{os.getpid()}x{next(_counter)}"
        n = {x: f"peerhp-{tag}-{x}" for x in ("a", "nata", "b", "natb", "inet", "relay")}
        self.a, self.nat_a, self.b, self.nat_b, self.inet, self.relay = n.values()
        d = {x: f"h{x}{tag}"[:15] for x in ("a", "al", "aw", "ai", "b", "bl", "bw", "bi", "r", "ri")}
        self.created = []
        ip = NetnsPair._ip
        try:
            add_namespaces(n.values(), self.created)
            veth(self.a, d["a"], self.nat_a, d["al"])
            veth(self.nat_a, d["aw"], self.inet, d["ai"])
            veth(self.b, d["b"], self.nat_b, d["bl"])
            veth(self.nat_b, d["bw"], self.inet, d["bi"])
            veth(self.relay, d["r"], self.inet, d["ri"])
            for ns, dev, cidr in ((self.a, d["a"], f"{A}/24"), (self.nat_a, d["al"], "10.1.0.1/24"),
                                  (self.nat_a, d["aw"], f"{NAT_A}/24"), (self.inet, d["ai"], "20.1.0.254/24"),
                                  (self.b, d["b"], f"{B}/24"), (self.nat_b, d["bl"], "10.2.0.1/24"),
                                  (self.nat_b, d["bw"], f"{NAT_B}/24"), (self.inet, d["bi"], "20.2.0.254/24"),
                                  (self.relay, d["r"], f"{RELAY}/24"), (self.inet, d["ri"], "20.3.0.254/24")):
                address(ns, dev, cidr)
            for ns, gw in ((self.a, "10.1.0.1"), (self.b, "10.2.0.1"), (self.nat_a, "20.1.0.254"),
                           (self.nat_b, "20.2.0.254"), (self.relay, "20.3.0.254")):
                ip("-n", ns, "route", "add", "default", "via", gw)
            for ns, wan in ((self.nat_a, d["aw"]), (self.nat_b, d["bw"])):
                subprocess.run(in_ns(ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]), check=True, timeout=60)
                # Masquerade out; in, only what answers a flow the LAN opened (conntrack), nothing else. An
                # unsolicited packet is dropped before conntrack keeps an entry for it, as a home router does: else
                # the entry would take the port that the LAN's own packet to that sender needs, and masquerade would
                # give the LAN's packet another port (the two SYNs of a hole punch cross, and each would spoil it).
                rules = (f"add table ip raw; add chain ip raw unsolicited {{ type filter hook prerouting priority -150; }}; "
                         f"add rule ip raw unsolicited iifname \"{wan}\" ct state new drop; "
                         f"add table ip nat; add chain ip nat post {{ type nat hook postrouting priority 100; }}; "
                         f"add rule ip nat post oifname \"{wan}\" masquerade; "
                         f"add table ip filter; add chain ip filter lan_only {{ type filter hook forward priority 0; "
                         f"policy drop; }}; add rule ip filter lan_only ct state established,related accept; "
                         f"add rule ip filter lan_only iifname != \"{wan}\" accept")
                p = subprocess.run(in_ns(ns, ["nft", rules]), capture_output=True, text=True, timeout=60)
                assert p.returncode == 0, p.stderr
            subprocess.run(in_ns(self.inet, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]), check=True, timeout=60)
        except BaseException:
            self.close()
            raise



@pytest.fixture
def nets():
    n = TwoNATs()
    yield n
    n.close()


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    base = tmp_path_factory.mktemp("hp")
    src = base / "data" / "film.bin"
    src.parent.mkdir()
    src.write_bytes(det_bytes(6 << 20, "holepunch"))
    torrent = base / "film.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "256K", "--no-date")
    return {"src": src, "torrent": torrent}


@pytest.mark.parametrize("relay", ["peer", "libtorrent"])
def test_two_nated_peers_connect_through_a_hole_punch(payload, tmp_path, procs, nets, relay):
    if relay == "peer":
        r = procs(in_ns(nets.relay, [PEER, "get", payload["torrent"], "-o", tmp_path / "relay-out", "--bind", RELAY,
                                     "--port", "0", "--no-dht", "--no-lsd", "--max-down", "1k",
                                     "--state", tmp_path / "relay-state"]), tmp_path / "relay.log")
        relay_port = int(r.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    else:
        relay_port = 6881
        r = procs(in_ns(nets.relay, ["/usr/bin/python3", LTPEER, "leech", payload["torrent"], tmp_path / "relay-out",
                                     "--bind", RELAY, "--port", str(relay_port), "--transport", "both",
                                     "--download-limit", "1000", "--timeout", "300"]), tmp_path / "relay.log")
        time.sleep(2)
    seed = procs(in_ns(nets.a, [PEER, "share", payload["torrent"], "--data", payload["src"].parent, "--bind", A,
                                "--port", "0", "--no-dht", "--no-lsd", "--no-port-mapping", "--transport", "utp",
                                "--peer", f"{RELAY}:{relay_port}", "--state", tmp_path / "a-state"]),
                 tmp_path / "a.log")
    seed.wait_for(r"listening on")
    # The seed has its first PEX message from the relay (2 s after connecting, naming nobody) before the leecher
    # comes: the next comes a minute later, so only the leecher learns of the other side, and its dial fails.
    time.sleep(5)
    got = subprocess.run(in_ns(nets.b, [PEER, "get", payload["torrent"], "-o", tmp_path / "out", "--bind", B,
                                        "--port", "0", "--no-dht", "--no-lsd", "--no-port-mapping", "--transport",
                                        "utp", "--peer", f"{RELAY}:{relay_port}", "--state", tmp_path / "b-state",
                                        "--json"]),
                         capture_output=True, text=True, timeout=150)
    assert got.returncode == 0, f"{got.stderr[-3000:]}\nseed:\n{(tmp_path / 'a.log').read_text()[-3000:]}"
    assert json.loads(got.stdout)["complete"] is True
    assert (tmp_path / "out" / payload["src"].name).read_bytes() == payload["src"].read_bytes()
    assert "hole punch" in got.stderr, got.stderr[-3000:]
