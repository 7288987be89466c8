"""Issue 16: port mapping through a home router. A network namespace plays the router: miniupnpd (Debian's,
nftables backend) serves UPnP IGD, NAT-PMP and PCP on its LAN side (192.168.77.1); its WAN side has an address that
is not reserved (20.77.0.1: Debian 12's miniupnpd refuses to map behind a private WAN address) and no route out.
A second namespace is the home computer (192.168.77.2, default route through the router) running `peer share`.

For each method (PCP, NAT-PMP, UPnP IGD; PEER_PORT_MAPPING_METHODS picks one): the mapping of the listen port, TCP
and UDP, appears in the router's nftables rules, is renewed (leases of 6 s here, renewed every 3), and is gone
after Peer exits. A router that refuses (miniupnpd denying the client's ports) or does not answer (no miniupnpd)
costs Peer a line in its log and nothing else: the share still serves a download.
"""
import itertools
import os
import re
import subprocess
import time

import pytest

from clients import Namespaces, NetnsPair, add_namespaces, address, in_ns, veth
from conftest import PEER, det_bytes, run_peer
from test_swarm import procs  # noqa: F401 (a fixture)

LAN, ROUTER, WAN = "192.168.77.2", "192.168.77.1", "20.77.0.1"
_counter = itertools.count(1)


class HomeRouter(Namespaces):
    """Namespaces `home` and `router`, a veth pair between them, and a WAN veth on the router to a namespace of
    its own (so the WAN link is up) with no further route."""

    def __init__(self):
        tag = f"{os.getpid()}x{next(_counter)}"
        self.home, self.router, self.wan = (f"peerpm-{tag}-{x}" for x in ("home", "router", "wan"))
        self.lan_dev, self.router_lan = f"ph{tag}"[:15], f"pl{tag}"[:15]
        self.router_wan, self.wan_dev = f"pw{tag}"[:15], f"px{tag}"[:15]
        self.created = []
        ip = NetnsPair._ip
        try:
            add_namespaces((self.home, self.router, self.wan), self.created)
            veth(self.home, self.lan_dev, self.router, self.router_lan)
            veth(self.router, self.router_wan, self.wan, self.wan_dev)
            for ns, dev, addr in ((self.home, self.lan_dev, f"{LAN}/24"), (self.router, self.router_lan, f"{ROUTER}/24"),
                                  (self.router, self.router_wan, f"{WAN}/24"), (self.wan, self.wan_dev, "20.77.0.2/24")):
                address(ns, dev, addr)
            ip("-n", self.home, "route", "add", "default", "via", ROUTER)
            # The router's own default route goes to the WAN side, which has nowhere further to go.
            ip("-n", self.router, "route", "add", "default", "via", "20.77.0.2")
            subprocess.run(in_ns(self.router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]), check=True, timeout=60)
            self.nft("add table inet filter; add chain inet filter forward { type filter hook forward priority 0; "
                     "policy accept; }; add chain inet filter miniupnpd; add rule inet filter forward jump miniupnpd; "
                     "add table inet nat; add chain inet nat prerouting { type nat hook prerouting priority -100; "
                     "policy accept; }; add chain inet nat postrouting { type nat hook postrouting priority 100; "
                     "policy accept; }; add chain inet nat prerouting_miniupnpd; add chain inet nat "
                     "postrouting_miniupnpd; add rule inet nat prerouting jump prerouting_miniupnpd; add rule inet nat "
                     "postrouting jump postrouting_miniupnpd")
        except BaseException:
            self.close()
            raise

    def nft(self, commands):
        p = subprocess.run(in_ns(self.router, ["nft", commands]), capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"nft {commands}: {p.stderr}"

    def rules(self):
        """(protocol, external port) of every DNAT rule miniupnpd holds (it writes the protocol as the IP header's
        byte: `@nh,72,8 0x6 th dport 6881 dnat ip to …`)."""
        out = subprocess.run(in_ns(self.router, ["nft", "list", "chain", "inet", "nat", "prerouting_miniupnpd"]),
                             capture_output=True, text=True, timeout=60).stdout
        names = {"0x6": "TCP", "0x11": "UDP"}
        return sorted((names.get(m.group(1), m.group(1)), int(m.group(2)))
                      for m in re.finditer(r"@nh,72,8 (0x[0-9a-f]+) th dport (\d+)", out))

    def miniupnpd(self, procs, tmp_path, allow="allow 1024-65535 192.168.77.0/24 1024-65535", natpmp=True):
        conf = tmp_path / "miniupnpd.conf"
        conf.write_text("\n".join([
            f"ext_ifname={self.router_wan}", f"listening_ip={self.router_lan}", "http_port=5000",
            f"enable_natpmp={'yes' if natpmp else 'no'}", "enable_upnp=yes", "secure_mode=yes", "system_uptime=yes",
            "uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b", "min_lifetime=2", "max_lifetime=86400",
            "upnp_table_name=filter", "upnp_nat_table_name=nat", "upnp_forward_chain=miniupnpd",
            "upnp_nat_chain=prerouting_miniupnpd", "upnp_nat_postrouting_chain=postrouting_miniupnpd",
            "clean_ruleset_interval=0", allow, "deny 0-65535 0.0.0.0/0 0-65535", ""]))
        return procs(in_ns(self.router, ["miniupnpd", "-d", "-f", conf, "-P", tmp_path / "miniupnpd.pid"]),
                     tmp_path / "miniupnpd.log")



@pytest.fixture
def home():
    h = HomeRouter()
    yield h
    h.close()


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    base = tmp_path_factory.mktemp("pm")
    src = base / "data" / "file.bin"
    src.parent.mkdir()
    src.write_bytes(det_bytes(3 << 20, "pm"))
    torrent = base / "file.torrent"
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "256K", "--no-date")
    return {"src": src, "torrent": torrent}


def share(procs, tmp_path, home, payload, env):
    return procs(["env", *[f"{k}={v}" for k, v in env.items()],
                  *in_ns(home.home, [PEER, "share", payload["torrent"], "--data", payload["src"].parent, "--bind", LAN,
                                     "--port", "0", "--no-dht", "--no-lsd", "--state", tmp_path / "state"])],
                 tmp_path / "share.log")


def wait_until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return value


@pytest.mark.parametrize("method", ["pcp", "natpmp", "upnp"])
def test_the_listen_port_is_mapped_renewed_and_removed(payload, tmp_path, procs, home, method):
    home.miniupnpd(procs, tmp_path)
    s = share(procs, tmp_path, home, payload, {"PEER_PORT_MAPPING_METHODS": method, "PEER_PORT_MAPPING_LIFETIME": 6})
    port = int(s.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    log = s.wait_for(rf"port mapping: {method} on {ROUTER}: .*", timeout=30).group(0)
    assert f"TCP {port} -> {port}" in log and f"UDP {port} -> {port}" in log, log
    if method != "upnp":  # PCP and NAT-PMP tell the external address; so does UPnP's GetExternalIPAddress
        assert f"external address {WAN}" in log, log
    assert wait_until("the router's rules", lambda: home.rules() == [("TCP", port), ("UDP", port)], 10)
    s.wait_for(r"port mapping: renewed", timeout=20)
    assert home.rules() == [("TCP", port), ("UDP", port)]
    s.stop()
    wait_until(f"the mappings gone after Peer exits: {home.rules()}", lambda: home.rules() == [], 10)


@pytest.mark.parametrize("router", ["refuses", "absent"])
def test_a_router_that_refuses_or_is_not_there_costs_a_log_line(payload, tmp_path, procs, home, router):
    """miniupnpd allowing no port to this client refuses UPnP's AddPortMapping; with no miniupnpd at all, nobody
    answers. Either way Peer logs why, maps nothing, and serves a download from the LAN as before.

    The refusing miniupnpd has NAT-PMP and PCP off: asked by PCP for a port it may not map, Debian's 2.3.1 tries
    every other port, logging "port mapping rejected" 15 000 times and answering nothing for seconds (in CI an
    `nft list` in its namespace then hung for a minute)."""
    if router == "refuses":
        home.miniupnpd(procs, tmp_path, allow="allow 1-2 192.168.77.99/32 1-2", natpmp=False)
    s = share(procs, tmp_path, home, payload, {})
    port = int(s.wait_for(r"listening on [\d.]+:(\d+)").group(1))
    line = s.wait_for(r"port mapping: pcp: .*", timeout=60).group(0)
    assert "natpmp:" in line and "upnp:" in line, line
    if router == "refuses":
        assert "upnp: UPnP error" in line, line
    assert home.rules() == []
    out = tmp_path / "out"
    got = subprocess.run(in_ns(home.home, [PEER, "get", payload["torrent"], "-o", out, "--peer", f"{LAN}:{port}",
                                          "--bind", LAN, "--port", "0", "--no-dht", "--no-lsd", "--no-port-mapping",
                                          "--state", tmp_path / "get-state"]),
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    assert (out / payload["src"].name).read_bytes() == payload["src"].read_bytes()
