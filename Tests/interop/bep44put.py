#!/usr/bin/env python3
"""An independent BEP 44 mutable-item publisher (the channels test): signs with python3-cryptography's Ed25519 and
speaks raw KRPC over UDP with its own bencoding, so it shares no code with Peer or libtorrent. To each node it sends
a `get` for target SHA1(k + salt) to obtain a token, then a `put` of the signed item (BEP 44; the value by default
is BEP 46's {"ih": <20 bytes>}). Runs under either python3 (it needs only `cryptography`).

  bep44put.py --bind 127.0.0.x --node HOST:PORT [--node ...] --seed-hex SEED --seq N
              (--ih IH_HEX | --value-hex BENCODED_HEX) [--salt-hex HEX] [--cas N] [--bad-sig] [--print-link]
Prints `LINK magnet:?xs=urn:btpk:<k hex>&s=<salt hex>` if asked, then one line per node: `PUT host:port ok`,
`PUT host:port error <code> <msg>` (the node's KRPC error), or `PUT host:port timeout get|put`.
Exits 0 if at least one node stored the item, else 1.
Importable: keypair(seed), sign(seed, salt, seq, v_bencoded), put(bind, nodes, seed, salt, seq, v_bencoded, ...).
"""
import argparse
import hashlib
import os
import select
import socket
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


# --- bencoding ------------------------------------------------------------------------------------------------------

class Raw(bytes):
    """Already-bencoded bytes, copied into a message as they are (a value to put may be anything, even invalid)."""


def bencode(x):
    if isinstance(x, Raw):
        return bytes(x)
    if isinstance(x, bool):
        raise TypeError("bool")
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, (list, tuple)):
        return b"l" + b"".join(bencode(i) for i in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(x))


def bdecode(b):
    """One bencoded value (strings and keys as bytes); ValueError on anything malformed or trailing."""
    def at(i):
        c = b[i:i + 1]
        if c == b"i":
            j = b.index(b"e", i)
            return int(b[i + 1:j]), j + 1
        if c == b"l" or c == b"d":
            i, out = i + 1, []
            while b[i:i + 1] != b"e":
                if i >= len(b):
                    raise ValueError("unterminated")
                v, i = at(i)
                out.append(v)
            if c == b"l":
                return out, i + 1
            if len(out) % 2 or not all(isinstance(k, bytes) for k in out[::2]):
                raise ValueError("bad dict")
            return dict(zip(out[::2], out[1::2])), i + 1
        if c.isdigit():
            j = b.index(b":", i)
            n = int(b[i:j])
            if j + 1 + n > len(b):
                raise ValueError("short string")
            return b[j + 1:j + 1 + n], j + 1 + n
        raise ValueError("bad byte at %d" % i)
    try:
        v, end = at(0)
    except (IndexError, ValueError) as e:
        raise ValueError(str(e))
    if end != len(b):
        raise ValueError("trailing data")
    return v


# --- BEP 44 ----------------------------------------------------------------------------------------------------------

def keypair(seed):
    """(private key object, 32-byte public key) for a 32-byte Ed25519 seed."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, pub


def signed_buffer(salt, seq, v_bencoded):
    """What BEP 44 signs: `4:salt<len>:<salt>3:seqi<N>e1:v<v>`, the salt part only if there is a salt."""
    head = b"4:salt%d:%s" % (len(salt), salt) if salt else b""
    return head + b"3:seqi%de1:v" % seq + v_bencoded


def sign(seed, salt, seq, v_bencoded):
    return keypair(seed)[0].sign(signed_buffer(salt, seq, v_bencoded))


def target(pub, salt=b""):
    return hashlib.sha1(pub + salt).digest()


def magnet(pub, salt=b""):
    return "magnet:?xs=urn:btpk:%s" % pub.hex() + ("&s=%s" % salt.hex() if salt else "")


# --- KRPC ------------------------------------------------------------------------------------------------------------

def _query(sock, node, q, args, timeout, retries):
    """Sends query `q` to `node` (resending `retries` times) and returns its answer message, or None."""
    t = os.urandom(2)
    msg = bencode({"a": args, "q": q, "t": t, "y": "q"})
    for _ in range(1 + retries):
        sock.sendto(msg, node)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            raw, src = sock.recvfrom(65536)
            try:
                m = bdecode(raw)
            except ValueError:
                continue
            # Skip the node's own queries (it pings a new querier) and strays.
            if src == node and isinstance(m, dict) and m.get(b"t") == t and m.get(b"y") in (b"r", b"e"):
                return m
    return None


def _error(m):
    e = m.get(b"e")
    if isinstance(e, list) and len(e) >= 2 and isinstance(e[0], int) and isinstance(e[1], bytes):
        return "error %d %s" % (e[0], e[1].decode(errors="replace"))
    return "error 0 %r" % (e,)


def put(bind, nodes, seed, salt, seq, v_bencoded, bad_sig=False, cas=None, timeout=3.0, retries=2):
    """Puts the signed item to each (host, port); returns {node: "ok" | "error <code> <msg>" | "timeout get|put"}."""
    _, pub = keypair(seed)
    sig = sign(seed, salt, seq, v_bencoded)
    if bad_sig:
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    node_id = os.urandom(20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, 0))
    results = {}
    try:
        for node in nodes:
            m = _query(sock, node, "get", {"id": node_id, "target": target(pub, salt)}, timeout, retries)
            if m is None:
                results[node] = "timeout get"
                continue
            r = m.get(b"r")
            token = r.get(b"token") if m.get(b"y") == b"r" and isinstance(r, dict) else None
            if not isinstance(token, bytes):
                results[node] = _error(m) if m.get(b"y") == b"e" else "error 0 no token in the get answer"
                continue
            args = {"id": node_id, "k": pub, "seq": seq, "sig": sig, "token": token, "v": Raw(v_bencoded)}
            if salt:
                args["salt"] = salt
            if cas is not None:
                args["cas"] = cas
            m = _query(sock, node, "put", args, timeout, retries)
            if m is None:
                results[node] = "timeout put"
            elif m.get(b"y") == b"r":
                results[node] = "ok"
            else:
                results[node] = _error(m)
    finally:
        sock.close()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--node", action="append", required=True, help="HOST:PORT, repeatable")
    ap.add_argument("--seed-hex", required=True)
    ap.add_argument("--salt-hex", default="")
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--cas", type=int)
    v = ap.add_mutually_exclusive_group(required=True)
    v.add_argument("--ih", help="40 hex: puts BEP 46's {'ih': <20 bytes>}")
    v.add_argument("--value-hex", help="any bencoded value, in hex, put as it is")
    ap.add_argument("--bad-sig", action="store_true", help="flip a bit of the signature")
    ap.add_argument("--print-link", action="store_true")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per query attempt")
    ap.add_argument("--retries", type=int, default=2)
    a = ap.parse_args()
    seed, salt = bytes.fromhex(a.seed_hex), bytes.fromhex(a.salt_hex)
    value = bencode({"ih": bytes.fromhex(a.ih)}) if a.ih else bytes.fromhex(a.value_hex)
    if a.print_link:
        print("LINK", magnet(keypair(seed)[1], salt), flush=True)
    nodes = [(h, int(p)) for h, p in (n.rsplit(":", 1) for n in a.node)]
    results = put(a.bind, nodes, seed, salt, a.seq, value, a.bad_sig, a.cas, a.timeout, a.retries)
    for (h, p), r in results.items():
        print("PUT %s:%d %s" % (h, p, r), flush=True)
    return 0 if "ok" in results.values() else 1


if __name__ == "__main__":
    sys.exit(main())
