#!/usr/bin/env python3
"""libtorrent seeding many torrents with its DHT on, bootstrapped only from the given node (the harvest test). The node is added as an ordinary DHT node.
Run with Debian's /usr/bin/python3 (python3-libtorrent 2.0).

  ltmultiseed.py --bind 127.0.0.x --port N --dht-bootstrap HOST:PORT SAVE TORRENT...
Prints READY once every torrent is seeding; runs until SIGTERM.
"""
import argparse
import signal
import sys
import time

import libtorrent as lt

stop = False


def on_signal(*_):
    global stop
    stop = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dht-bootstrap", required=True)
    ap.add_argument("save")
    ap.add_argument("torrents", nargs="+")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    ses = lt.session({
        "listen_interfaces": "%s:%d" % (a.bind, a.port), "outgoing_interfaces": a.bind,
        # The given node is added as an ordinary node, not a bootstrap router: libtorrent keeps routers out of its
        # routing table, so it would never announce to a router nor tell other nodes of it.
        "enable_dht": True, "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False, "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False, "dht_announce_interval": 30,
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True,
        # libtorrent keeps 5 seeds active by default (the rest queued, never announced): all of them here.
        "active_seeds": 100, "active_limit": 200, "active_dht_limit": 200, "active_tracker_limit": 200,
        "alert_mask": lt.alert.category_t.error_notification,
    })
    host, port = a.dht_bootstrap.rsplit(":", 1)
    ses.add_dht_node((host, int(port)))
    handles = []
    for t in a.torrents:
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(t)
        p.save_path = a.save
        handles.append(ses.add_torrent(p))
    ready = False
    while not stop:
        if not ready and all(h.status().is_seeding for h in handles):
            print("READY", flush=True)
            ready = True
        for alert in ses.pop_alerts():
            print("lt:", alert.message(), file=sys.stderr, flush=True)
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
