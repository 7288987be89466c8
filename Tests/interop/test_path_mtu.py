"""Issue 16: uTP's packets fit the path. Three network namespaces in a row (`RoutedPair`); the link between the router
and side b has an MTU of 1 280 (an IPv6 tunnel's, or a VPN's), under the 1 428 bytes a 1 400-byte uTP datagram
needs. A Peer on side b seeds over uTP to a Peer on side a.

uTP asks the kernel for the MTU of its route to each peer and sends no datagram bigger than it allows (1 280 less
the IPv4 and UDP headers: 1 252). The kernel of side b counts the IP fragments it makes (`FragCreates` in its
/proc/net/snmp): before this, every full packet went out as two fragments, each loss of one losing both.
"""
import subprocess

from clients import NetnsPair, RoutedPair, in_ns
from conftest import PEER, det_bytes, run_peer
from test_swarm import procs  # noqa: F401 (a fixture)

SIZE = 8 << 20


def frag_creates(ns):
    snmp = subprocess.run(in_ns(ns, ["cat", "/proc/net/snmp"]), capture_output=True, text=True, timeout=15).stdout
    names, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Ip:")][:2]
    return int(dict(zip(names, values))["FragCreates"])


def test_utp_packets_fit_a_small_mtu_route(tmp_path, procs):
    pair = RoutedPair()
    try:
        for ns, dev in ((pair.b, pair.b_dev), (pair.r, pair.r_to_b)):
            NetnsPair._ip("-n", ns, "link", "set", "dev", dev, "mtu", "1280")
        src = tmp_path / "data" / "tunnel.bin"
        src.parent.mkdir()
        src.write_bytes(det_bytes(SIZE, "mtu"))
        torrent = tmp_path / "tunnel.torrent"
        run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "256K", "--no-date")
        seed = procs(in_ns(pair.b, [PEER, "share", torrent, "--data", src.parent, "--bind", pair.addr_b, "--port", "0",
                                    "--no-dht", "--no-lsd", "--transport", "utp", "--state", tmp_path / "seed-state"]),
                     tmp_path / "seed.log")
        port = int(seed.wait_for(r"listening on [\d.]+:(\d+)", timeout=60).group(1))
        before = frag_creates(pair.b)
        get = subprocess.run(in_ns(pair.a, [PEER, "get", torrent, "-o", tmp_path / "out", "--peer",
                                            f"{pair.addr_b}:{port}", "--bind", pair.addr_a, "--port", "0", "--no-dht",
                                            "--no-lsd", "--transport", "utp", "--state", tmp_path / "leech-state"]),
                             capture_output=True, text=True, timeout=180)
        assert get.returncode == 0, get.stdout[-2000:] + get.stderr[-2000:]
        assert (tmp_path / "out" / "tunnel.bin").read_bytes() == src.read_bytes()
        made = frag_creates(pair.b) - before
        print(f"\n{SIZE >> 20} MiB over uTP through a 1 280-byte MTU: {made} IP fragments made by the seed's side")
        assert made == 0, f"the seed's side made {made} IP fragments: its uTP datagrams were bigger than the route"
    finally:
        pair.close()
