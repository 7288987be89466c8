#!/usr/bin/python3
"""libtorrent's DHT reading one BEP 44 mutable item, e.g. a BEP 46 channel pointer (the channels test); or, with
--serve, just a DHT node for others to store items on. The given nodes are added as ordinary DHT nodes (a bootstrap
"router" would never enter libtorrent's routing table). Run with Debian's /usr/bin/python3 (python3-libtorrent 2.0).

  ltmutable.py --bind 127.0.0.x [--port 6881] --node HOST:PORT [--node ...] --key PUBKEY_HEX [--salt-hex HEX]
               [--min-seq N] [--timeout 30] [--wait-authoritative]
  ltmutable.py --bind 127.0.0.x [--port 6881] --node HOST:PORT [--node ...] --serve [--timeout 300]
Get prints one JSON line {"seq", "ih", "signature", "public_key", "salt", "authoritative", "v", "value_from"} for the
first item with seq >= N (exit 0), or `timed out` on stderr (exit 2). --serve prints READY and runs until SIGTERM or
--timeout.

Reading the value: on libtorrent 2.0.8 `dht_mutable_item_alert.item` raises RuntimeError ("invalid type requested
from entry") for any value that is not a string, as a BEP 46 dictionary. So the value is taken from the raw answers
libtorrent logs in dht_pkt_alert (category dht_log): the answer carrying this k, seq and sig, its v re-checked
against the signature here ("value_from": "packet", "v" = the bencoded value in hex). Failing that, "ih" is parsed
from alert.message(), where libtorrent prints the item as text ("value_from": "message"; a binary string shows as
hex, a printable one as itself); failing that "ih" is null.
"""
import argparse
import json
import os
import re
import signal
import sys
import time

import libtorrent as lt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bep44put import bdecode, bencode, signed_buffer  # noqa: E402

stop = False


def on_signal(*_):
    global stop
    stop = True


def value_from_packet(pkt, key, salt, seq, sig):
    """The bencoded v of a KRPC answer holding the item (k, seq, sig), checked against the signature; else None."""
    try:
        r = bdecode(pkt).get(b"r")
    except (ValueError, AttributeError):
        return None
    if not isinstance(r, dict) or r.get(b"k") != key or r.get(b"seq") != seq or r.get(b"sig") != sig:
        return None
    v = bencode(r.get(b"v"))
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        Ed25519PublicKey.from_public_bytes(key).verify(sig, signed_buffer(salt, seq, v))
    except ImportError:
        pass
    except Exception:
        return None
    return v


def ih_from_message(text):
    """'ih' out of alert.message()'s rendering of the item, e.g. `[ {\\n 'ih': '0123…' } ]`; else None."""
    m = re.search(r"'ih': '([^']*)'", text)
    if not m:
        return None
    s = m.group(1)
    if len(s) == 40 and re.fullmatch(r"[0-9a-f]{40}", s):
        return s
    return s.encode("latin-1").hex() if len(s) == 20 else None


def alert_salt(alert, asked):
    """The alert's salt: the binding hands it over as str (UTF-8), and may fail on a binary one."""
    try:
        s = alert.salt
    except Exception:
        return asked
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=6881)
    ap.add_argument("--node", action="append", default=[], help="HOST:PORT, repeatable")
    ap.add_argument("--key", help="the publisher's ed25519 public key, 64 hex")
    ap.add_argument("--salt-hex", default="")
    ap.add_argument("--min-seq", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--wait-authoritative", action="store_true", help="only report the lookup's final answer")
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    if not a.serve and not a.key:
        ap.error("--key is required unless --serve")
    signal.signal(signal.SIGTERM, on_signal)
    ses = lt.session({
        "listen_interfaces": "%s:%d" % (a.bind, a.port), "outgoing_interfaces": a.bind,
        "enable_dht": True, "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False, "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "alert_mask": 0 if a.serve else
        lt.alert_category.dht | lt.alert_category.dht_log | lt.alert_category.error,
    })
    for n in a.node:
        host, port = n.rsplit(":", 1)
        ses.add_dht_node((host, int(port)))
    deadline = time.monotonic() + a.timeout
    if a.serve:
        print("READY", flush=True)
        while not stop and time.monotonic() < deadline:
            time.sleep(0.2)
        return 0

    key, salt = bytes.fromhex(a.key), bytes.fromhex(a.salt_hex)
    packets = []      # raw DHT packets libtorrent logged
    next_get = time.monotonic() + 1  # lets the pings to the given nodes fill the routing table first
    while not stop and time.monotonic() < deadline:
        if time.monotonic() >= next_get:
            ses.dht_get_mutable_item(key, salt)
            next_get = time.monotonic() + 5  # again if this lookup yields nothing new enough
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.dht_pkt_alert):
                packets.append(alert.pkt_buf)
            elif isinstance(alert, lt.dht_mutable_item_alert):
                seq, sig = alert.seq, bytes(alert.signature)
                if seq < a.min_seq or not any(sig) or (a.wait_authoritative and not alert.authoritative):
                    if alert.authoritative:
                        next_get = min(next_get, time.monotonic() + 1)
                    continue
                out = {"seq": seq, "ih": None, "signature": sig.hex(), "public_key": bytes(alert.key).hex(),
                       "salt": alert_salt(alert, salt).hex(), "authoritative": bool(alert.authoritative),
                       "v": None, "value_from": None}
                v = next(filter(None, (value_from_packet(p, key, salt, seq, sig) for p in reversed(packets))), None)
                if v is not None:
                    out["v"], out["value_from"] = v.hex(), "packet"
                    d = bdecode(v)
                    if isinstance(d, dict) and isinstance(d.get(b"ih"), bytes):
                        out["ih"] = d[b"ih"].hex()
                else:
                    out["ih"] = ih_from_message(alert.message())
                    out["value_from"] = "message" if out["ih"] else None
                print(json.dumps(out), flush=True)
                return 0
        time.sleep(0.05)
    print("timed out", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
