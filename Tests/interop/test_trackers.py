"""Trackers beyond the basics: HTTPS (through a TLS terminator the test runs, with a certificate it makes),
BEP 12 tier order with dead trackers first, and scrape (BEP 48 over HTTP(S), BEP 15 over UDP).
Every node has its own 127.0.0.x; opentracker is the only tracker, on loopback."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import PEER, run_peer
from test_swarm import free_port, opentracker, peer_share, procs, tree_digest  # noqa: F401 (fixtures)

HERE = pathlib.Path(__file__).resolve().parent
TLSPROXY = str(HERE / "tlsproxy.py")
TLS_HOST = "127.0.0.35"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 2.3 MiB two-file payload (fast to move, several 64 KiB pieces, a piece spanning both files)."""
    base = tmp_path_factory.mktemp("trackers")
    src = base / "src" / "set"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 4321))
    (src / "b.bin").write_bytes(os.urandom(300_007))
    return {"src": src, "data": src.parent}


def make_torrent(small, path, *tiers):
    """Creates a v1 torrent whose tiers are `tiers` (each a list of URLs) and returns its info JSON."""
    args = []
    for tier in tiers:
        args += ["--tracker", ",".join(tier)]
    return json.loads(run_peer("create", small["src"], "-o", path, "--v1", "--piece-length", "64K", *args,
                               "--json").stdout)


@pytest.fixture
def tls(tmp_path):
    """A self-signed certificate for 127.0.0.35 (CN and IP subjectAltName), made with openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={TLS_HOST}", "-addext", f"subjectAltName=IP:{TLS_HOST}"],
                   check=True, capture_output=True, timeout=60)
    return {"cert": cert, "key": key}


def start_tls_proxy(procs, tmp_path, tls, upstream_port):
    port = free_port(TLS_HOST)
    p = procs([sys.executable, TLSPROXY, "--listen", f"{TLS_HOST}:{port}", "--upstream",
               f"127.0.0.30:{upstream_port}", "--cert", str(tls["cert"]), "--key", str(tls["key"])],
              tmp_path / "tlsproxy.log")
    p.wait_for("READY", timeout=10)
    return port


def test_https_tracker(small, tmp_path, procs, opentracker, tls, monkeypatch):
    """Seed and leecher find each other only through an https:// tracker they trust via SSL_CERT_FILE."""
    port = start_tls_proxy(procs, tmp_path, tls, opentracker.port)
    url = f"https://{TLS_HOST}:{port}/announce"
    torrent = tmp_path / "t.torrent"
    info = make_torrent(small, torrent, [url])
    opentracker.start([info["info_hash_v1"]])
    monkeypatch.setenv("SSL_CERT_FILE", str(tls["cert"]))
    peer_share(procs, tmp_path, torrent, small["data"], "127.0.0.36")
    import time
    time.sleep(1.0)  # the seed's first announce
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--bind", "127.0.0.37", "--port", "0", "--state", tmp_path / "state",
             timeout=90)
    assert tree_digest(out / "set") == tree_digest(small["src"])


def test_https_tracker_with_an_untrusted_certificate(small, tmp_path, procs, opentracker, tls, monkeypatch):
    """Without SSL_CERT_FILE the self-signed certificate is refused, and the log says why."""
    port = start_tls_proxy(procs, tmp_path, tls, opentracker.port)
    url = f"https://{TLS_HOST}:{port}/announce"
    torrent = tmp_path / "t.torrent"
    info = make_torrent(small, torrent, [url])
    opentracker.start([info["info_hash_v1"]])
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    g = procs([PEER, "get", torrent, "-o", tmp_path / "out", "--bind", "127.0.0.38", "--port", "0", "--state",
               tmp_path / "state"], tmp_path / "get.log")
    g.wait_for(rf"tracker {url}: .*(certificate|CERTIFICATE|handshake)", timeout=30)


def free_udp_port(host):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_dead_first_tier_falls_back_to_the_second(small, tmp_path, procs, opentracker):
    """BEP 12: tier 1 is a closed UDP port and a refused HTTP port; both are tried (in either order), then
    the live tracker of tier 2, and the download completes through it."""
    import time
    dead_udp = f"udp://127.0.0.39:{free_udp_port('127.0.0.39')}"
    dead_http = f"http://127.0.0.39:{free_port('127.0.0.39')}/announce"
    live = f"http://127.0.0.30:{opentracker.port}/announce"
    torrent = tmp_path / "t.torrent"
    info = make_torrent(small, torrent, [dead_udp, dead_http], [live])
    opentracker.start([info["info_hash_v1"]])
    seed, _ = peer_share(procs, tmp_path, torrent, small["data"], "127.0.0.40")
    seed.wait_for(rf"tracker {dead_http}: connection refused", timeout=15)
    seed.wait_for(rf"tracker {dead_udp}: connection refused", timeout=15)
    time.sleep(0.5)  # the seed's announce to the live tracker
    out = tmp_path / "out"
    started = time.monotonic()
    p = run_peer("get", torrent, "-o", out, "--bind", "127.0.0.41", "--port", "0", "--state", tmp_path / "state",
                 timeout=60)
    assert tree_digest(out / "set") == tree_digest(small["src"])
    assert f"tracker {dead_udp}: connection refused" in p.stderr, p.stderr
    assert f"tracker {dead_http}: connection refused" in p.stderr, p.stderr
    assert f"tracker {live}" not in p.stderr, p.stderr  # it answered: nothing to report
    assert time.monotonic() - started < 30, "falling back took too long"


def scrape(*args, check=True):
    p = run_peer("scrape", *args, "--bind", "127.0.0.44", "--json", check=check, timeout=60)
    return p, (json.loads(p.stdout) if p.stdout.strip() else None)


def test_scrape_http_and_udp(small, tmp_path, procs, opentracker, tls, monkeypatch):
    """peer scrape asks opentracker over HTTP (BEP 48), HTTPS and UDP (BEP 15): the seed that announced is
    counted; a dead tracker gets a clear error without failing the command; once the seed stops (SIGTERM,
    so it sends `stopped`), the count drops to 0."""
    import time
    http = f"http://127.0.0.30:{opentracker.port}/announce"
    udp = f"udp://127.0.0.30:{opentracker.port}"
    https = f"https://{TLS_HOST}:{start_tls_proxy(procs, tmp_path, tls, opentracker.port)}/announce"
    dead = f"udp://127.0.0.39:{free_udp_port('127.0.0.39')}"
    torrent = tmp_path / "t.torrent"
    info = make_torrent(small, torrent, [http])
    opentracker.start([info["info_hash_v1"]])
    seed, _ = peer_share(procs, tmp_path, torrent, small["data"], "127.0.0.42")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls["cert"]))
    deadline = time.monotonic() + 20
    while True:  # until the seed's started announce is counted
        p, doc = scrape(torrent, "--tracker", udp, "--tracker", https, "--tracker", dead)
        if doc["trackers"][0]["seeders"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert p.returncode == 0
    assert doc["kind"] == "scrape" and doc["info_hash"] == info["info_hash_v1"] and doc["answered"] == 3
    by_url = {t["tracker"]: t for t in doc["trackers"]}
    assert [t["tracker"] for t in doc["trackers"]] == [http, udp, https, dead]
    for url in (http, udp, https):
        assert by_url[url]["ok"] and by_url[url]["seeders"] >= 1 and by_url[url]["listed"], doc
        assert by_url[url]["leechers"] == 0 and by_url[url]["error"] is None
    assert not by_url[dead]["ok"] and "refused" in by_url[dead]["error"] and by_url[dead]["seeders"] is None
    text = run_peer("scrape", torrent, "--tracker", dead, "--bind", "127.0.0.44", timeout=60)
    assert f"{http}: seeders 1, completed 0, leechers 0" in text.stdout
    assert dead in text.stderr and "refused" in text.stderr

    seed.p.send_signal(__import__("signal").SIGTERM)
    assert seed.p.wait(10) == 0
    _, after = scrape(torrent, "--tracker", udp)
    assert [t["seeders"] for t in after["trackers"]] == [0, 0], after


def test_scrape_fails_when_no_tracker_answers(small, tmp_path):
    """A refused HTTP port, a UDP tracker that never answers (given up after --timeout) and an unsupported
    scheme: three clear errors and exit status 1."""
    import socket
    import time
    torrent = tmp_path / "t.torrent"
    dead_http = f"http://127.0.0.39:{free_port('127.0.0.39')}/announce"
    make_torrent(small, torrent, [dead_http])
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.45", 0))
    try:
        started = time.monotonic()
        p, doc = scrape(torrent, "--tracker", f"udp://127.0.0.45:{silent.getsockname()[1]}",
                        "--tracker", "wss://tracker.invalid/announce", "--timeout", "2", check=False)
        assert time.monotonic() - started < 10
    finally:
        silent.close()
    assert p.returncode == 1
    assert doc["answered"] == 0 and [t["ok"] for t in doc["trackers"]] == [False, False, False]
    assert "refused" in doc["trackers"][0]["error"]
    assert doc["trackers"][1]["error"] == "no answer within 2 s"
    assert "not a udp://, http:// or https:// URL" in doc["trackers"][2]["error"]
    none = run_peer("scrape", f"magnet:?xt=urn:btih:{'ab' * 20}", check=False)
    assert none.returncode == 1 and "names no tracker" in none.stderr
