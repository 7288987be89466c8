"""A small HTTP server for the web seed tests (BEP 19): serves ROOT under /pub/ with single-range support
(http.server has none), or misbehaves on purpose.

    webseed_server.py ROOT --bind 127.0.0.46 --port PORT [--mode good|corrupt|norange]

good     206 Partial Content for `Range: bytes=a-b`, 200 for the whole file
corrupt  as good, but the first byte of every body is flipped (every piece fails its hash check)
norange  ignores Range: always 200 with the whole file

Prints READY once listening and one line per request ("GET /pub/... bytes=a-b -> 206"); stops on SIGTERM.
"""
import argparse
import os
import re
import signal
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=["good", "corrupt", "norange"], default="good")
    a = ap.parse_args()
    root = os.path.realpath(a.root)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
            rng = self.headers.get("Range")
            status, body, headers = self.answer(path, rng)
            print(f"GET {self.path} {rng or '-'} -> {status}", flush=True)
            try:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client had what it wanted (norange) or went away

        def answer(self, path, rng):
            if not path.startswith("/pub/"):
                return 404, b"", []
            full = os.path.realpath(os.path.join(root, path[len("/pub/"):]))
            if not full.startswith(root + os.sep) or not os.path.isfile(full):
                return 404, b"", []
            size = os.path.getsize(full)
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
            with open(full, "rb") as f:
                if a.mode == "norange" or not m:
                    status, start, end, headers = 200, 0, size - 1, []
                else:
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                    if start >= size or start > end:
                        return 416, b"", [("Content-Range", f"bytes */{size}")]
                    status, headers = 206, [("Content-Range", f"bytes {start}-{end}/{size}")]
                f.seek(start)
                body = bytearray(f.read(end - start + 1))
            if a.mode == "corrupt" and body:
                body[0] ^= 0xFF
            return status, bytes(body), headers

    server = ThreadingHTTPServer((a.bind, a.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
