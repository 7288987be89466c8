"""A small TLS terminator for the tests: accepts TLS on --listen and relays the plain bytes to --upstream.

Puts HTTPS in front of opentracker (which speaks plain HTTP only) with a certificate the test made. The relayed
connection leaves from the client's own address (each test node has its own 127.0.0.x), so the tracker records
the peer's real address. Prints READY once listening; stops on SIGTERM.

    tlsproxy.py --listen 127.0.0.35:PORT --upstream 127.0.0.30:PORT --cert cert.pem --key key.pem
"""
import argparse
import signal
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, context, upstream):
    client_ip = conn.getpeername()[0]
    conn.settimeout(30)
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print(f"handshake failed: {e}", flush=True)
        conn.close()
        return
    try:
        plain = socket.create_connection(upstream, timeout=10, source_address=(client_ip, 0))
    except OSError as e:
        print(f"upstream: {e}", flush=True)
        tls.close()
        return
    tls.settimeout(60)
    plain.settimeout(60)
    t = threading.Thread(target=pump, args=(plain, tls), daemon=True)
    t.start()
    pump(tls, plain)
    t.join(60)
    tls.close()
    plain.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    uhost, uport = a.upstream.rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(a.cert, a.key)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("READY", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, context, (uhost, int(uport))), daemon=True).start()


if __name__ == "__main__":
    main()
