#!/usr/bin/python3
"""A minimal libtorrent peer for the interop tests (Debian's python3-libtorrent 2.0).

  ltpeer.py seed  TORRENT SAVE_DIR --bind ADDR --port N [--connect HOST:PORT] [--upload-limit BYTES/S]
  ltpeer.py leech TORRENT SAVE_DIR --bind ADDR --port N [--connect HOST:PORT] [--timeout S]
  (--transport utp: uTP only, in and out, TCP off; the default is TCP only)
  (TORRENT may be a magnet link: libtorrent then fetches the metadata from its peers first)

Loopback only: no DHT, LSD, UPnP or NAT-PMP. A seed prints READY once it is seeding and runs until SIGTERM;
a leech exits 0 once every piece is downloaded and verified, 2 on timeout. On the way out both print one line
`STATS {json}` with the torrent's byte counters (payload and total, incl. protocol overhead) for this session.
"""
import json
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
    ap.add_argument("mode", choices=["seed", "leech"])
    ap.add_argument("torrent")
    ap.add_argument("save")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connect", action="append", default=[])
    ap.add_argument("--upload-limit", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--encryption", choices=["enabled", "forced", "rc4"], default="enabled",
                    help="libtorrent's default (try an encrypted handshake, fall back to plaintext), encrypted "
                         "handshakes only, or encrypted handshakes that must select RC4 for the whole stream")
    ap.add_argument("--transport", choices=["tcp", "utp", "both"], default="tcp",
                    help="the transport libtorrent may use, incoming and outgoing (both: TCP and uTP)")
    ap.add_argument("--download-limit", type=int, default=0)
    ap.add_argument("--dht-bootstrap", default="",
                    help="turn the DHT on, bootstrapped only from these HOST:PORT nodes (comma-separated)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ses = lt.session({
        "listen_interfaces": ("[%s]:%d" if ":" in a.bind else "%s:%d") % (a.bind, a.port), "outgoing_interfaces": a.bind,
        "enable_dht": bool(a.dht_bootstrap), "dht_bootstrap_nodes": a.dht_bootstrap,
        # Every test node is on 127.0.0.x: let libtorrent's DHT keep and ask such nodes.
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False, "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        # Announce (and look up) again every 5 s instead of every 15 min, so a peer that joins later is found.
        "dht_announce_interval": 5, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": a.transport != "tcp", "enable_incoming_utp": a.transport != "tcp",
        "enable_outgoing_tcp": a.transport != "utp", "enable_incoming_tcp": a.transport != "utp",
        "allow_multiple_connections_per_ip": True, "upload_rate_limit": a.upload_limit,
        "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
        # enc_policy: 0 forced, 1 enabled, 2 disabled; enc_level: 1 plaintext, 2 RC4, 3 both.
        "out_enc_policy": 1 if a.encryption == "enabled" else 0, "in_enc_policy": 1 if a.encryption == "enabled" else 0,
        "allowed_enc_level": 2 if a.encryption == "rc4" else 3, "prefer_rc4": a.encryption == "rc4",
    })
    if a.download_limit:
        ses.set_peer_class(lt.session.global_peer_class_id, {"download_limit": a.download_limit})
    if a.upload_limit:
        # Loopback peers are in libtorrent's "local" peer class, which the global rate limit does not touch.
        ses.set_peer_class(lt.session.local_peer_class_id, {"upload_limit": a.upload_limit})
    if a.torrent.startswith("magnet:"):
        p = lt.parse_magnet_uri(a.torrent)
    else:
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(a.torrent)
    p.save_path = a.save
    h = ses.add_torrent(p)
    for c in a.connect:
        host, _, port = c.rpartition(":")
        h.connect_peer((host, int(port)))
    deadline = time.monotonic() + a.timeout
    announced = False
    try:
        while not stop and time.monotonic() < deadline:
            s = h.status()
            if s.is_seeding and s.has_metadata:
                if a.mode == "leech":
                    print("COMPLETE", flush=True)
                    return 0
                if not announced:
                    print("READY", flush=True)
                    announced = True
            for alert in ses.pop_alerts():
                if alert.category() & lt.alert.category_t.error_notification:
                    print("lt:", alert.message(), file=sys.stderr, flush=True)
            time.sleep(0.05)
        return 0 if a.mode == "seed" else 2
    finally:
        s = h.status()
        print("STATS " + json.dumps({
            "total_payload_upload": s.total_payload_upload, "total_upload": s.total_upload,
            "all_time_upload": s.all_time_upload, "total_payload_download": s.total_payload_download,
            "total_download": s.total_download}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
