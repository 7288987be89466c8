#!/usr/bin/python3
"""A hostile BitTorrent peer for the fault tests (not a model of any client): it pretends to seed a torrent
and misbehaves in one chosen way.

  badpeer.py MODE INFOHASH_HEX PIECES --bind ADDR --port N
  MODE: corrupt     answers every request with the right length of wrong bytes
        garbage     sends random bytes after the handshake
        oversized   sends a message length prefix of 2 GiB
        badbitfield sends a bitfield one byte too long
Prints READY once listening; serves connections until SIGTERM.
"""
import os
import signal
import socket
import struct
import sys
import threading


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def serve(conn, mode, info_hash, pieces):
    try:
        hs = recv_exact(conn, 68)
        if hs[28:48] != info_hash:
            return
        reserved = b"\0" * 8
        conn.sendall(bytes([19]) + b"BitTorrent protocol" + reserved + info_hash + b"-BAD001-" + os.urandom(12))
        nbytes = (pieces + 7) // 8
        full = bytearray(b"\xff" * nbytes)
        if pieces % 8:
            full[-1] = (0xFF << (8 - pieces % 8)) & 0xFF
        if mode == "garbage":
            conn.sendall(os.urandom(4096))
            return
        if mode == "oversized":
            conn.sendall(struct.pack(">I", 0x7FFFFFFF) + b"\x07")
            return
        if mode == "badbitfield":
            full = full + b"\x00"
        conn.sendall(struct.pack(">IB", 1 + len(full), 5) + bytes(full))
        conn.sendall(struct.pack(">IB", 1, 1))  # unchoke
        while True:
            length = struct.unpack(">I", recv_exact(conn, 4))[0]
            if length == 0:
                continue
            body = recv_exact(conn, length)
            if body[0] == 6 and mode == "corrupt":
                index, begin, size = struct.unpack(">III", body[1:13])
                payload = struct.pack(">BII", 7, index, begin) + os.urandom(size)
                conn.sendall(struct.pack(">I", len(payload)) + payload)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


def main():
    mode, info_hash, pieces = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
    bind = sys.argv[sys.argv.index("--bind") + 1]
    port = int(sys.argv[sys.argv.index("--port") + 1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(8)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("READY", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, mode, info_hash, pieces), daemon=True).start()


if __name__ == "__main__":
    main()
