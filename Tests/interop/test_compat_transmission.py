"""Issue 18: Transmission's RPC in `peer serve`, driven by Debian's transmission-remote 3.00 as a user would, and
compared with a real transmission-daemon 3.00 (in its own network namespace). Addresses: 127.0.13.x."""
import re
import subprocess
import time

from clients import NetnsPair, Transmission
from conftest import run_peer, wait_until
from test_daemon import Daemon, lt_seed
from test_daemon_ui import make_payload
from test_swarm import magnet_of, procs, tree_digest  # noqa: F401 (procs is a fixture)

SEED, PEER_D = "127.0.13.1", "127.0.13.2"
USER, PASSWORD = "admin", "correct horse battery"
# A row of `transmission-remote -l`: ID, Done, Have, ETA, Up, Down, Ratio, Status, Name.
ROW = re.compile(r"^\s*(\d+)\*?\s+(\d+%|n/a)\s+(.+?)\s{2,}(\S.*?)\s{2,}([\d.]+)\s+([\d.]+)\s+(\S+)\s+"
                 r"(Idle|Seeding|Downloading|Up & Down|Stopped|Queued|Verifying|Will Verify|Finished)\s+(.+)$")
LABEL = re.compile(r"^  ([A-Z][A-Za-z ]+):", re.M)


def compat_daemon(procs, tmp_path):
    secret = tmp_path / "compat-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    return Daemon(procs, tmp_path, PEER_D, extra=["--compat-user", USER, "--compat-password-file", secret])


def remote(d, *args, auth=f"{USER}:{PASSWORD}"):
    return subprocess.run(["transmission-remote", f"{d.addr}:{d.port}", "--auth", auth, *args],
                          capture_output=True, text=True, timeout=30)


def test_transmission_remote_adds_lists_shows_stops_starts_and_removes_with_data(tmp_path, procs):
    src, torrent = make_payload(tmp_path)
    port = lt_seed(procs, tmp_path, torrent, src.parent, SEED)
    link, info = magnet_of(torrent, x_pe=[f"{SEED}:{port}"])
    d = compat_daemon(procs, tmp_path)

    wrong = remote(d, "-l", auth=f"{USER}:wrong")
    assert wrong.returncode != 0 and "Unauthorized" in wrong.stdout + wrong.stderr, wrong

    added = remote(d, "-a", link)
    assert added.returncode == 0 and 'responded: "success"' in added.stdout, added.stdout + added.stderr

    def done():
        rows = [m for m in map(ROW.match, remote(d, "-l").stdout.splitlines()) if m]
        return rows and rows[0].group(2) == "100%" and rows[0]
    row = wait_until("100% Done in transmission-remote -l", done, timeout=120, interval=0.5)
    assert row.group(1) == "1" and row.group(9) == "album" and row.group(8) in ("Idle", "Seeding"), row.group(0)
    assert tree_digest(d.downloads / "album") == tree_digest(src)

    shown = remote(d, "-t", "1", "-i").stdout
    print(f"transmission-remote -i against Peer:\n{shown}")
    assert "Name: album" in shown and f"Hash: {info['info_hash_v1']}" in shown and "Percent Done: 100%" in shown
    assert f"Location: {d.downloads}" in shown

    assert remote(d, "-t", "1", "-S").returncode == 0
    assert re.search(r"State: Stopped", remote(d, "-t", "1", "-i").stdout)
    assert remote(d, "-t", "1", "-s").returncode == 0
    assert not re.search(r"State: Stopped", remote(d, "-t", "1", "-i").stdout)

    gone = remote(d, "-t", "1", "--remove-and-delete")
    assert gone.returncode == 0 and 'responded: "success"' in gone.stdout, gone.stdout
    assert not [m for m in map(ROW.match, remote(d, "-l").stdout.splitlines()) if m]
    wait_until("the data removed", lambda: not (d.downloads / "album").exists(), timeout=10)


def test_transmission_remote_prints_the_same_fields_for_peer_as_for_transmission_daemon(tmp_path, procs):
    """The same paused torrent in both: `-i` prints the same labels and `-l` the same columns, so scripts that parse
    transmission-remote's output read Peer's too."""
    src, _ = make_payload(tmp_path)
    torrent = tmp_path / "album-v1.torrent"  # Transmission 3.00 reads no v2 or hybrid torrent
    run_peer("create", src, "-o", torrent, "--v1", "--piece-length", "32K", "--no-date", "--quiet")
    d = compat_daemon(procs, tmp_path)
    assert 'responded: "success"' in remote(d, "--start-paused", "-a", str(torrent)).stdout
    ours = remote(d, "-t", "1", "-i").stdout
    ours_list = remote(d, "-l").stdout.splitlines()

    pair = NetnsPair()
    try:
        real = Transmission(procs, tmp_path, pair.a, pair.addr_a)
        try:
            assert "success" in real.remote("-w", str(tmp_path / "tr-dl"), "--start-paused", "-a", str(torrent)).stdout
            theirs = real.remote("-t", "1", "-i").stdout
            theirs_list = real.remote("-l").stdout.splitlines()
        finally:
            real.stop()
    finally:
        pair.close()
    print(f"labels only Peer prints: {set(LABEL.findall(ours)) - set(LABEL.findall(theirs))}; only "
          f"transmission-daemon: {set(LABEL.findall(theirs)) - set(LABEL.findall(ours))}")
    assert set(LABEL.findall(ours)) == set(LABEL.findall(theirs)), (ours, theirs)
    assert ours_list[0].split() == theirs_list[0].split()
    assert ROW.match(ours_list[1]) and ROW.match(theirs_list[1]), (ours_list, theirs_list)
    assert ours_list[-1].startswith("Sum:") and theirs_list[-1].startswith("Sum:")


def test_the_rpc_refuses_a_foreign_host_and_rate_limits_wrong_passwords(tmp_path, procs):
    import http.client
    d = compat_daemon(procs, tmp_path)

    def post(headers):
        c = http.client.HTTPConnection(d.addr, d.port, timeout=10)
        c.request("POST", "/transmission/rpc", body='{"method": "session-get"}', headers=headers)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, dict(r.getheaders()), body

    import base64
    good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    status, headers, _ = post({"Host": f"{d.addr}:{d.port}", "Authorization": good})
    assert status == 409 and len(headers["X-Transmission-Session-Id"]) == 48
    sid = headers["X-Transmission-Session-Id"]
    status, _, body = post({"Host": f"{d.addr}:{d.port}", "Authorization": good, "X-Transmission-Session-Id": sid})
    assert status == 200 and '"rpc-version":17' in body.replace(" ", "") and '"result":"success"' in body.replace(" ", "")
    status, _, _ = post({"Host": "evil.example:80", "Authorization": good, "X-Transmission-Session-Id": sid})
    assert status == 403
    status, _, _ = post({"Host": f"{d.addr}:{d.port}", "Origin": "http://evil.example", "Authorization": good,
                         "X-Transmission-Session-Id": sid})
    assert status == 403
    status, _, _ = post({"Host": f"{d.addr}:{d.port}", "X-Transmission-Session-Id": sid})
    assert status == 401
    bad = "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()
    statuses = [post({"Host": f"{d.addr}:{d.port}", "Authorization": bad})[0] for _ in range(6)]
    assert statuses[:4] == [401] * 4 and statuses[5] == 429, statuses
    # While blocked, even the right password waits.
    assert post({"Host": f"{d.addr}:{d.port}", "Authorization": good, "X-Transmission-Session-Id": sid})[0] == 429
