"""Shared fixtures for the interoperability tests: real clients from Debian's packages against `peer`.

Run with Debian's Python (python3-libtorrent lives there): /usr/bin/python3 -m pytest Tests/interop
PEER_BIN points at the `peer` executable (default: .build/debug/peer).
"""
import hashlib
import os
import pathlib
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PEER = os.environ.get("PEER_BIN", str(ROOT / ".build" / "debug" / "peer"))


def run_peer(*args, cwd=None, check=True, timeout=120):
    """Runs peer and returns the CompletedProcess (text mode)."""
    p = subprocess.run([PEER, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"peer {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr}")
    return p


def det_bytes(n, seed):
    """n deterministic pseudo-random bytes (SHAKE-256 stream) so that runs are reproducible."""
    return hashlib.shake_256(seed.encode()).digest(n) if n else b""


def write(path, n, seed=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(det_bytes(n, seed or str(path.name)))


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Payloads that cover the acceptance list: nested folders, an empty file, a file of exactly one
    piece (16 KiB and 32 KiB), sizes that are not multiples of 16 KiB, a 1-byte file, non-ASCII names,
    and a single file big enough for two 16 MiB pieces."""
    base = tmp_path_factory.mktemp("data")
    multi = base / "multi"
    write(multi / "a.bin", 40_000)
    write(multi / "empty.txt", 0)
    write(multi / "exact16k.bin", 16 * 1024)
    write(multi / "exact32k.bin", 32 * 1024)
    write(multi / "one.byte", 1)
    write(multi / "nested" / "deeper" / "c.dat", 100_003)
    write(multi / "nested" / "b.dat", 16 * 1024 + 1)
    write(multi / "émigré" / "日本語 ファイル.txt", 12_345)
    write(multi / "zz last.bin", 70_000)
    single = base / "single.bin"
    write(single, 300_001)
    onebyte = base / "tiny.txt"
    write(onebyte, 1)
    big = base / "big.bin"
    write(big, 20 * 1024 * 1024 + 5)
    return {"multi": multi, "single": single, "onebyte": onebyte, "big": big}


@pytest.fixture(scope="session")
def lt():
    import libtorrent
    return libtorrent


@pytest.fixture(autouse=True)
def peer_home(tmp_path_factory, monkeypatch):
    """Every test gets its own default state folder, so that no resume data or metadata leaks between tests
    (or into ~/.local/share/peer); tests with several nodes also give each its own --state."""
    # Outside the test's own folder, which some tests compare before and after.
    monkeypatch.setenv("PEER_HOME", str(tmp_path_factory.mktemp("peer-home")))
    # Local discovery multicasts on the interface of --bind; tests that want it turn it back on.
    monkeypatch.setenv("PEER_NO_LSD", "1")
    # Never a public DHT router: tests that use the DHT name their own bootstrap node.
    monkeypatch.setenv("PEER_NO_DHT", "1")
    monkeypatch.setenv("PEER_DHT_BOOTSTRAP", "")


def wait_until(what, check, timeout=30, interval=0.25):
    """Calls check() until it returns something truthy, at most `timeout` seconds; returns that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")

