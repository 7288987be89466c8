#!/usr/bin/env python3
"""libtorrent's DHT for BEP 44 tests: joins a private DHT through one node, then puts or gets one item and prints
the result as JSON. Run with Debian's /usr/bin/python3 (python3-libtorrent 2.0).

  ltdht.py --bind 127.0.0.x --bootstrap HOST:PORT put-immutable TEXT
  ltdht.py ... get-immutable TARGET_HEX
  ltdht.py ... put-mutable TEXT --seed SEED_HEX [--salt S] [--seq N]
  ltdht.py ... get-mutable PUBKEY_HEX [--salt S]
"""
import argparse
import hashlib
import json
import sys
import time

import libtorrent as lt


def expanded_secret(seed):
    """libtorrent's 64-byte ed25519 secret key: SHA-512 of the seed, clamped."""
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def plain(item):
    """An item's value as text, however the binding hands it over (bytes, or a dict holding it)."""
    if isinstance(item, dict) and "value" in item:
        item = item["value"]
    return item.decode() if isinstance(item, bytes) else item


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("op", choices=["put-immutable", "get-immutable", "put-mutable", "get-mutable"])
    ap.add_argument("arg")
    ap.add_argument("--seed", default="")
    ap.add_argument("--public", default="")
    ap.add_argument("--salt", default="")
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()
    ses = lt.session({
        "listen_interfaces": "%s:%d" % (a.bind, a.port), "outgoing_interfaces": a.bind,
        "enable_dht": True, "dht_bootstrap_nodes": a.bootstrap, "enable_lsd": False, "enable_upnp": False,
        "enable_natpmp": False, "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False, "dht_prefer_verified_node_ids": False,
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.error_notification,
    })
    deadline = time.monotonic() + a.timeout
    time.sleep(2)  # joins through the bootstrap node
    salt = a.salt.encode()
    if a.op == "put-immutable":
        target = ses.dht_put_immutable_item(a.arg)
        want = lt.dht_put_alert
    elif a.op == "get-immutable":
        ses.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(a.arg)))
        want = lt.dht_immutable_item_alert
    elif a.op == "put-mutable":
        seed = bytes.fromhex(a.seed)
        public = bytes.fromhex(a.public)
        ses.dht_put_mutable_item(expanded_secret(seed), public, a.arg, salt)
        want = lt.dht_put_alert
    else:
        ses.dht_get_mutable_item(bytes.fromhex(a.arg), salt)
        want = lt.dht_mutable_item_alert
    while time.monotonic() < deadline:
        for alert in ses.pop_alerts():
            if isinstance(alert, want):
                if want is lt.dht_put_alert:
                    out = {"target": str(alert.target), "stored_on": alert.num_success}
                elif want is lt.dht_immutable_item_alert:
                    out = {"value": plain(alert.item)}
                else:
                    out = {"value": plain(alert.item), "seq": alert.seq}
                print(json.dumps(out, default=str), flush=True)
                return 0
        time.sleep(0.1)
    print("timed out", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
