#!/usr/bin/python3
"""A lying search neighbour for the search tests (an adversary, not a model of any client): it joins the
peer_search overlay (BEP 10 extension on the rendezvous info-hash) and answers every query with fake hits that
have every word of the query, and refuses to send the info dictionary of any of them.

  searchliar.py --bind ADDR --port N [--hits 10]
Prints READY once listening, then one line per event: CONNECTED ADDR, QUERY TEXT, CLOSED ADDR.
Serves incoming connections until SIGTERM; `--dial HOST:PORT` also connects out (to see whether it is refused).
"""
import argparse
import hashlib
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from badpeer import recv_exact  # noqa: E402
from clients import bencode, bdecode  # noqa: E402

RENDEZVOUS = hashlib.sha1(b"peer-search-v1").digest()
OUR_ID = 7


def say(line):
    print(line, flush=True)


def extended(conn, their_id, payload):
    body = bytes([20, their_id]) + payload
    conn.sendall(struct.pack(">I", len(body)) + body)


def serve(conn, addr, hits, outgoing):
    reserved = bytes([0, 0, 0, 0, 0, 0x10, 0, 0x04])
    handshake = bytes([19]) + b"BitTorrent protocol" + reserved + RENDEZVOUS + b"-LIAR01-" + os.urandom(12)
    try:
        if outgoing:
            conn.sendall(handshake)
        hs = recv_exact(conn, 68)
        if hs[28:48] != RENDEZVOUS:
            return
        if not outgoing:
            conn.sendall(handshake)
        say(f"CONNECTED {addr}")
        ext = bencode({b"m": {b"peer_search": OUR_ID}, b"v": b"Liar 1.0"})
        body = bytes([20, 0]) + ext
        conn.sendall(struct.pack(">I", len(body)) + body)
        their_id = None
        while True:
            length = struct.unpack(">I", recv_exact(conn, 4))[0]
            if length == 0:
                continue
            body = recv_exact(conn, length)
            if body[0] != 20:
                continue
            if body[1] == 0:
                their_id = bdecode(body[2:]).get(b"m", {}).get(b"peer_search")
                continue
            if body[1] != OUR_ID or their_id is None:
                continue
            m = bdecode(body[2:])
            kind = m.get(b"y")
            if kind == b"q":
                text = m[b"q"].decode()
                say(f"QUERY {text}")
                fake = [{b"ih": os.urandom(20), b"n": f"{text} 1080p {i} PROPER".encode(), b"s": 700_000_000 + i,
                         b"f": 1, b"se": 5000} for i in range(hits)]
                extended(conn, their_id, bencode({b"y": b"r", b"t": m[b"t"], b"r": fake}))
            elif kind == b"m":
                extended(conn, their_id, bencode({b"y": b"x", b"t": m[b"t"], b"ih": m[b"ih"], b"p": m[b"p"]}))
    except (ConnectionError, OSError, KeyError, ValueError):
        pass
    finally:
        say(f"CLOSED {addr}")
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hits", type=int, default=10)
    ap.add_argument("--dial", action="append", default=[])
    args = ap.parse_args()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.bind, args.port))
    server.listen(16)
    for target in args.dial:
        host, port = target.rsplit(":", 1)
        c = socket.create_connection((host, int(port)), timeout=10, source_address=(args.bind, 0))
        c.settimeout(None)
        threading.Thread(target=serve, args=(c, target, args.hits, True), daemon=True).start()
    say("READY")
    while True:
        conn, addr = server.accept()
        threading.Thread(target=serve, args=(conn, f"{addr[0]}:{addr[1]}", args.hits, False), daemon=True).start()


if __name__ == "__main__":
    main()
