"""Web seeds (BEP 19, GetRight style): a torrent whose only source is an HTTP server the test runs (with Range
support), and a server that sends wrong bytes, which is dropped. No peers, no trackers; every node has its own
127.0.0.x and --state folder."""
import json
import os
import pathlib
import re
import signal
import sys

import pytest

from conftest import PEER, run_peer
from test_swarm import free_port, peer_share, procs, tree_digest  # noqa: F401 (fixture)

HERE = pathlib.Path(__file__).resolve().parent
SERVER = str(HERE / "webseed_server.py")


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    """A multi-file payload with a name that needs percent-encoding, a piece spanning three files, an empty
    file, and a single file; served from ROOT (the folder that holds both)."""
    root = tmp_path_factory.mktemp("webseed")
    album = root / "my album"
    (album / "cd 1").mkdir(parents=True)
    (album / "cd 1" / "01 été.bin").write_bytes(os.urandom(1_500_000))
    (album / "cd 1" / "02.bin").write_bytes(os.urandom(30_001))
    (album / "notes.txt").write_bytes(b"hello\n")
    (album / "empty").write_bytes(b"")
    (album / "z.bin").write_bytes(os.urandom(700_003))
    (root / "single.iso").write_bytes(os.urandom(1_234_567))
    return root


def serve(procs, tmp_path, root, addr, mode="good"):
    port = free_port(addr)
    p = procs([sys.executable, SERVER, str(root), "--bind", addr, "--port", str(port), "--mode", mode],
              tmp_path / f"server-{mode}.log")
    p.wait_for("READY", timeout=10)
    return p, f"http://{addr}:{port}/pub/"


def create(source, torrent, kind, web_seed):
    return json.loads(run_peer("create", source, "-o", torrent, f"--{kind}", "--piece-length", "64K",
                               "--web-seed", web_seed, "--json").stdout)


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_download_from_a_web_seed_only(content, tmp_path, procs, kind):
    """Multi-file: the URL is a folder (BEP 19: + name + path); hybrid adds padding files, never requested."""
    server, url = serve(procs, tmp_path, content, "127.0.0.46")
    torrent = tmp_path / "t.torrent"
    create(content / "my album", torrent, kind, url)
    out = tmp_path / "out"
    p = run_peer("get", torrent, "-o", out, "--bind", "127.0.0.47", "--port", "0", "--state", tmp_path / "state",
                 timeout=90)
    assert "complete" in p.stdout
    assert tree_digest(out / "my album") == tree_digest(content / "my album")
    server.log.seek(0)
    log = server.log.read()
    assert "/pub/my%20album/cd%201/01%20%C3%A9t%C3%A9.bin bytes=" in log, log
    assert "-> 206" in log and "-> 404" not in log and ".pad" not in log


def test_single_file_web_seed_url_is_the_file(content, tmp_path, procs):
    server, url = serve(procs, tmp_path, content, "127.0.0.48")
    torrent = tmp_path / "t.torrent"
    create(content / "single.iso", torrent, "v1", url + "single.iso")
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--bind", "127.0.0.49", "--port", "0", "--state", tmp_path / "state",
             timeout=90)
    assert tree_digest(out) == {"single.iso": tree_digest(content)["single.iso"]}


def test_a_web_seed_that_sends_wrong_bytes_is_dropped(content, tmp_path, procs):
    """Every piece from it fails its hash check: after the second one it is dropped (logged), nothing is
    written, and the download, with no other source, does not complete; SIGTERM ends it (exit 130)."""
    _, url = serve(procs, tmp_path, content, "127.0.0.50", mode="corrupt")
    torrent = tmp_path / "t.torrent"
    create(content / "my album", torrent, "v1", url)
    out = tmp_path / "out"
    g = procs([PEER, "get", torrent, "-o", out, "--bind", "127.0.0.51", "--port", "0", "--state",
               tmp_path / "state"], tmp_path / "get.log")
    g.wait_for(re.escape(f"dropped web seed {url}: 2 pieces failed their hash check"), timeout=30)
    g.log.seek(0)
    assert "complete" not in g.log.read().replace("download complete", "")
    g.p.send_signal(signal.SIGTERM)
    assert g.p.wait(10) == 130
    g.log.seek(0)
    assert "download complete" not in g.log.read()


def test_a_web_seed_that_ignores_range_is_used_near_file_starts(content, tmp_path, procs):
    """A server that always answers 200 with the whole file still serves small files (the bytes before the
    wanted range are read and dropped); the download completes."""
    _, url = serve(procs, tmp_path, content, "127.0.0.52", mode="norange")
    torrent = tmp_path / "t.torrent"
    create(content / "my album", torrent, "v1", url)
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--bind", "127.0.0.53", "--port", "0", "--state", tmp_path / "state",
             timeout=90)
    assert tree_digest(out / "my album") == tree_digest(content / "my album")


def test_a_web_seed_beside_a_peer(content, tmp_path, procs):
    """A web seed and a Peer seed together: pieces come from both (the web seed takes whole pieces no peer
    has started), and the result is whole."""
    server, url = serve(procs, tmp_path, content, "127.0.0.54")
    torrent = tmp_path / "t.torrent"
    create(content / "my album", torrent, "hybrid", url)
    _, port = peer_share(procs, tmp_path, torrent, content, "127.0.0.55")
    out = tmp_path / "out"
    run_peer("get", torrent, "-o", out, "--peer", f"127.0.0.55:{port}", "--bind", "127.0.0.56", "--port", "0",
             "--state", tmp_path / "state", timeout=90)
    assert tree_digest(out / "my album") == tree_digest(content / "my album")
    server.log.seek(0)
    assert "-> 206" in server.log.read()


def test_the_download_limit_holds_for_web_seeds(content, tmp_path, procs):
    """--max-down applies to web seed pieces too (each is taken on credit from the same token bucket)."""
    import time
    _, url = serve(procs, tmp_path, content, "127.0.0.57")
    torrent = tmp_path / "t.torrent"
    create(content / "my album", torrent, "v1", url)
    size = sum(p.stat().st_size for p in (content / "my album").rglob("*") if p.is_file())
    rate = 512 * 1024
    out = tmp_path / "out"
    started = time.monotonic()
    run_peer("get", torrent, "-o", out, "--bind", "127.0.0.58", "--port", "0", "--state", tmp_path / "state",
             "--max-down", "512K", timeout=90)
    elapsed = time.monotonic() - started
    assert tree_digest(out / "my album") == tree_digest(content / "my album")
    # The bucket starts with a quarter second's worth and lends one piece: the rest takes its time.
    assert elapsed >= (size - rate // 4 - 64 * 1024) / rate * 0.9, elapsed
