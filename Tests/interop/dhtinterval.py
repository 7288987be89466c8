#!/usr/bin/python3
"""A DHT node that asks to be sampled at most every INTERVAL seconds (BEP 51) and counts who does (the harvest
test; an adversary's view of the crawler, not a model of any client). It introduces itself to one node with a
ping, answers ping, find_node, get_peers and announce_peer minimally, and sample_infohashes with `interval`.

  dhtinterval.py --bind ADDR --port N --introduce HOST:PORT [--interval 300]
Prints READY, then `SAMPLE <seconds since start> <from>` for each sample_infohashes query.
"""
import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clients import bencode, bdecode  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--introduce", required=True)
    ap.add_argument("--interval", type=int, default=300)
    a = ap.parse_args()
    node_id = os.urandom(20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.bind, a.port))
    host, port = a.introduce.rsplit(":", 1)
    sock.sendto(bencode({"a": {"id": node_id}, "q": "ping", "t": b"in", "y": "q"}), (host, int(port)))
    start = time.monotonic()
    print("READY", flush=True)
    sample = os.urandom(20)
    while True:
        data, src = sock.recvfrom(65536)
        try:
            m = bdecode(data)
        except ValueError:
            continue
        if m.get(b"y") != b"q":
            continue
        q, t = m.get(b"q"), m.get(b"t", b"")
        r = {"id": node_id}
        if q in (b"find_node", b"get_peers"):
            r["nodes"] = b""
        if q == b"get_peers":
            r["token"] = b"tok"
        if q == b"sample_infohashes":
            print(f"SAMPLE {time.monotonic() - start:.1f} {src[0]}:{src[1]}", flush=True)
            r.update({"interval": a.interval, "num": 1, "samples": sample, "nodes": b""})
        sock.sendto(bencode({"r": r, "t": t, "y": "r"}), src)


if __name__ == "__main__":
    main()
