"""Issue 18: qBittorrent's Web API v2 (and Transmission's RPC) in `peer serve`, driven by the PyPI packages scripts and
the *arr tools' users use (`qbittorrent-api`, `transmission-rpc`, installed by .ci/run in a virtual environment), and
compared with a real qbittorrent-nox 4.5.2 (Debian's, in its own network namespace). Addresses: 127.0.13.10-19."""
import base64
import json
import os
import pathlib
import shutil
import subprocess
import time
import urllib.parse

from clients import NetnsPair, in_ns
from conftest import wait_until
from test_compat_transmission import PASSWORD, USER
from test_daemon import Daemon, lt_seed
from test_daemon_ui import make_payload, named_torrent
from test_swarm import magnet_of, procs  # noqa: F401 (procs is a fixture)

HERE = pathlib.Path(__file__).parent
CLIENT = HERE / "compat_client.py"
VENV = pathlib.Path(os.environ.get("PEER_PYVENV", HERE.parent.parent / ".build" / "pyvenv"))
VPY = VENV / "bin" / "python"
# What Sonarr, Radarr and Prowlarr read of a torrent (../shared/research/next-capabilities.md §6).
ARR_FIELDS = ("hash", "name", "size", "progress", "eta", "state", "category", "save_path", "content_path", "ratio",
              "ratio_limit", "seeding_time", "seeding_time_limit", "last_activity")


def compat_daemon(procs, tmp_path, addr):
    secret = tmp_path / f"compat-password-{addr}"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    return Daemon(procs, tmp_path, addr, extra=["--compat-user", USER, "--compat-password-file", secret])


def disc(tmp_path):
    """A second payload, "disc", and its v1 .torrent (qBittorrent 4.5 and Transmission read v1 alike)."""
    torrent, info = named_torrent(tmp_path, "disc", {"track1.bin": 500_003, "cover.txt": 2_000}, v1=True)
    return tmp_path / "src" / "disc", torrent, info


def drive(*args, ns=None, timeout=180):
    assert VPY.exists(), f"{VPY} is missing: .ci/run's install step makes it (qbittorrent-api, transmission-rpc)"
    p = subprocess.run(in_ns(ns, [VPY, CLIENT, *args]), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"compat_client.py {' '.join(map(str, args))}:\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


def kind(v):
    """A JSON value's type, numbers as one (Qt and Foundation both write 1.0 as 1)."""
    return ("bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else
            "string" if isinstance(v, str) else "list" if isinstance(v, list) else
            "object" if isinstance(v, dict) else "null")


def cycle_setup(procs, tmp_path, seed_addr, daemon_addr):
    """A libtorrent seed of "album" (for a magnet link) and a daemon that has "disc"'s data in its download folder
    already (its .torrent completes after a check)."""
    album, album_torrent = make_payload(tmp_path)
    port = lt_seed(procs, tmp_path, album_torrent, album.parent, seed_addr)
    link, album_info = magnet_of(album_torrent, x_pe=[f"{seed_addr}:{port}"])
    src, torrent, info = disc(tmp_path)
    d = compat_daemon(procs, tmp_path, daemon_addr)
    d.downloads.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, d.downloads / "disc")
    return d, link, album_info, torrent, info


def test_qbittorrent_api_adds_lists_reads_limits_pauses_resumes_and_deletes(tmp_path, procs):
    d, link, album_info, torrent, info = cycle_setup(procs, tmp_path, "127.0.13.10", "127.0.13.11")

    out = drive("qbittorrent", f"http://{d.addr}:{d.port}", USER, PASSWORD, "--torrent", torrent,
                "--save", d.downloads, "--category", "tv", "--tags", "peer-test,second", "--magnet", link)
    print(json.dumps({k: v for k, v in out.items() if k != "torrents"}))
    assert out["wrong_password"] == "refused"
    assert tuple(map(int, out["webapi"].split("."))) >= (2, 11)
    assert out["categories"]["tv"]["savePath"] == str(d.downloads)
    assert out["add_file"] == "Ok." and out["add_magnet"] == "Ok."
    assert out["other_category"] == 0
    by_name = {t["info"]["name"]: t for t in out["torrents"]}
    assert set(by_name) == {"disc", "album"}
    for name, expect in (("disc", info), ("album", album_info)):
        t = by_name[name]
        row = t["info"]
        assert all(k in row for k in ARR_FIELDS), [k for k in ARR_FIELDS if k not in row]
        assert row["hash"] == expect["info_hash_v1"]
        assert row["size"] == expect["total_size"] == t["properties"]["total_size"]
        assert row["progress"] == 1 and row["amount_left"] == 0 and row["completed"] == expect["total_size"]
        assert row["state"] in ("stalledUP", "uploading"), row["state"]
        assert isinstance(row["eta"], int) and row["category"] == "tv" and row["tags"] == "peer-test, second"
        assert row["save_path"] == str(d.downloads) and row["content_path"] == str(d.downloads / name)
        assert isinstance(row["ratio"], (int, float)) and row["seeding_time"] >= 1
        assert t["properties"]["save_path"] == str(d.downloads) and t["properties"]["pieces_have"] == \
            t["properties"]["pieces_num"]
        files = {f["name"]: f["size"] for f in t["files"]}
        assert files == {f["path"] if f["path"].startswith(name + "/") else f"{name}/{f['path']}": f["length"]
                         for f in expect["files"] if "p" not in f["attributes"]}, (files, expect["files"])
        assert all(f["progress"] == 1 for f in t["files"])
    # The magnet was added with sequential download and first/last piece priority, and keeps both.
    assert by_name["album"]["info"]["seq_dl"] and by_name["album"]["info"]["f_l_piece_prio"]
    assert not by_name["disc"]["info"]["seq_dl"]
    assert out["limits"] == {"ratio_limit": 2.5, "seeding_time_limit": 120}
    assert set(out["paused_states"]) == {"stoppedUP"}
    assert not set(out["resumed_states"]) & {"stoppedUP", "pausedUP"}
    assert out["left"] == 0
    wait_until("both torrents' data deleted", lambda: not (d.downloads / "disc").exists()
               and not (d.downloads / "album").exists(), timeout=10)


def test_transmission_rpc_package_drives_the_same_cycle(tmp_path, procs):
    d, link, album_info, torrent, info = cycle_setup(procs, tmp_path, "127.0.13.12", "127.0.13.13")

    out = drive("transmission", d.addr, str(d.port), USER, PASSWORD, "--torrent", torrent, "--save", d.downloads,
                "--tags", "peer-test,second", "--magnet", link)
    print(json.dumps({k: v for k, v in out.items() if k != "torrents"}))
    assert out["wrong_password"] == "refused" and out["rpc_version"] >= 17
    by_name = {t["name"]: t for t in out["torrents"]}
    assert set(by_name) == {"disc", "album"}
    for name, expect in (("disc", info), ("album", album_info)):
        t = by_name[name]
        assert t["hash"] == expect["info_hash_v1"] and t["size"] == expect["total_size"] and t["left"] == 0
        assert t["progress"] == 1 and t["status"] == "seeding" and t["labels"] == ["peer-test", "second"]
        assert t["download_dir"] == str(d.downloads) and t["seconds_seeding"] >= 1
        assert sorted(size for _, size, _ in t["files"]) == sorted(f["length"] for f in expect["files"]
                                                                   if "p" not in f["attributes"])
        assert all(done == size for _, size, done in t["files"])
    assert out["labelled"] == 2
    assert out["limits"] == [[2.5, 1], [2.5, 1]]
    assert set(out["paused_states"]) == {"stopped"} and "stopped" not in out["resumed_states"]
    assert out["left"] == 0
    wait_until("both torrents' data deleted", lambda: not (d.downloads / "disc").exists()
               and not (d.downloads / "album").exists(), timeout=10)


class QBittorrentNox:
    """Debian's qbittorrent-nox 4.5.2 in namespace ns: Web UI on the namespace's own 127.0.0.1:8080 (user admin,
    4.5's default password adminadmin), DHT, LSD, PeX and UPnP off."""

    def __init__(self, procs, workdir, ns):
        self.ns = ns
        profile = pathlib.Path(workdir) / "qbt-profile"
        conf = profile / "qBittorrent" / "config"
        conf.mkdir(parents=True)
        (conf / "qBittorrent.conf").write_text("\n".join([
            "[LegalNotice]", "Accepted=true", "",
            "[BitTorrent]", "Session\\DHTEnabled=false", "Session\\LSDEnabled=false", "Session\\PeXEnabled=false",
            "Session\\Port=51414", f"Session\\DefaultSavePath={workdir}/qbt-default", "",
            "[Preferences]", "Connection\\UPnP=false", "General\\Locale=en", "WebUI\\Address=127.0.0.1",
            "WebUI\\Port=8080", "WebUI\\LocalHostAuth=true", "WebUI\\HostHeaderValidation=false", ""]))
        self.proc = procs(in_ns(ns, ["qbittorrent-nox", f"--profile={profile}"]), pathlib.Path(workdir) / "qbt.log")

        def up():
            probe = ("import urllib.request, urllib.error\ntry: urllib.request.urlopen("
                     "'http://127.0.0.1:8080/api/v2/app/webapiVersion', timeout=2)\n"
                     "except urllib.error.HTTPError: pass\n")
            return subprocess.run(in_ns(ns, ["/usr/bin/python3", "-c", probe]), capture_output=True,
                                  timeout=10).returncode == 0 or self.proc.p.poll() is not None
        wait_until("qbittorrent-nox's Web API", up, timeout=30)
        assert self.proc.p.poll() is None, "qbittorrent-nox exited"


def test_qbittorrent_api_reads_the_same_shapes_from_peer_as_from_qbittorrent_nox(tmp_path, procs):
    """The same script and the same torrent against both: every key qBittorrent 4.5.2 gives in torrents/info,
    torrents/properties and torrents/files, Peer gives too, with the same JSON type; and the values that say what the
    torrent is are the same."""
    src, torrent, info = disc(tmp_path)
    d = compat_daemon(procs, tmp_path, "127.0.13.14")
    d.downloads.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, d.downloads / "disc")
    ours = drive("qbittorrent", f"http://{d.addr}:{d.port}", USER, PASSWORD, "--torrent", torrent,
                 "--save", d.downloads)

    qb_dl = tmp_path / "qbt-dl"
    shutil.copytree(src, qb_dl / "disc")
    pair = NetnsPair()
    try:
        QBittorrentNox(procs, tmp_path, pair.a)
        theirs = drive("qbittorrent", "http://127.0.0.1:8080", "admin", "adminadmin", "--torrent", torrent,
                       "--save", qb_dl, ns=pair.a)
    finally:
        pair.close()
    print(f"qbittorrent-nox {theirs['version']} (Web API {theirs['webapi']}), Peer {ours['version']} "
          f"(Web API {ours['webapi']})")
    for section in ("info", "properties"):
        a, b = ours["torrents"][0][section], theirs["torrents"][0][section]
        print(f"{section}: qbittorrent-nox gives {len(b)} keys; only Peer gives {sorted(set(a) - set(b))}")
        assert not set(b) - set(a), f"{section}: Peer lacks {sorted(set(b) - set(a))}"
        wrong = {k: (kind(a[k]), kind(b[k])) for k in b if kind(a[k]) != kind(b[k])}
        assert not wrong, f"{section}: types differ (Peer, qBittorrent): {wrong}"
    for fa, fb in zip(ours["torrents"][0]["files"], theirs["torrents"][0]["files"]):
        assert not set(fb) - set(fa), f"files: Peer lacks {sorted(set(fb) - set(fa))}"
        assert {k: kind(fa[k]) for k in fb} == {k: kind(v) for k, v in fb.items()}
        assert (fa["name"], fa["size"], fa["piece_range"], fa["progress"]) == \
            (fb["name"], fb["size"], fb["piece_range"], fb["progress"])
    a, b = ours["torrents"][0]["info"], theirs["torrents"][0]["info"]
    for k in ("hash", "name", "size", "total_size", "progress", "amount_left", "completed", "category", "tags",
              "ratio", "eta", "state", "ratio_limit", "seeding_time_limit", "max_ratio", "max_seeding_time", "priority"):
        assert a[k] == b[k], f"{k}: Peer {a[k]!r}, qbittorrent-nox {b[k]!r}"
    assert os.path.relpath(a["content_path"], a["save_path"]) == os.path.relpath(b["content_path"], b["save_path"])
    pa, pb = ours["torrents"][0]["properties"], theirs["torrents"][0]["properties"]
    for k in ("piece_size", "pieces_num", "pieces_have", "total_size", "created_by", "comment", "is_private"):
        assert pa[k] == pb[k], f"properties {k}: Peer {pa[k]!r}, qbittorrent-nox {pb[k]!r}"
    assert set(ours["preferences"]) == set(theirs["preferences"])
    assert {k: kind(v) for k, v in ours["preferences"].items()} == {k: kind(v) for k, v in theirs["preferences"].items()}
    for key in ("limits", "paused_states", "resumed_states", "left"):
        print(f"{key}: Peer {ours[key]}, qbittorrent-nox {theirs[key]}")
    assert ours["limits"] == theirs["limits"] and ours["left"] == theirs["left"] == 0


def call(d, method, path, form=None, headers=None):
    """A request as a qBittorrent client makes it: a form body, no API token; the body as text."""
    h = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
    status, headers, body = d.request(method, path, urllib.parse.urlencode(form).encode() if form is not None else None,
                                      headers={**h, **(headers or {})}, token=False, raw=True)
    return status, headers, body.decode()


def test_the_web_api_needs_its_own_login_refuses_foreign_pages_and_rate_limits(tmp_path, procs):
    d = compat_daemon(procs, tmp_path, "127.0.13.15")
    # No SID: 403, which is also how the *arr tools tell Web API v2 (log in) from v1 (404).
    assert call(d, "GET", "/api/v2/app/webapiVersion")[0] == 403
    assert call(d, "GET", "/api/v2/torrents/info")[0] == 403
    # The daemon's own API token is not a login here (a tool given this login cannot use the full API, and back).
    assert call(d, "GET", "/api/v2/torrents/info", headers={"Authorization": f"Bearer {d.token}"})[0] == 403
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert call(d, "GET", "/api/torrents", headers={"Authorization": basic})[0] == 401

    status, headers, body = call(d, "POST", "/api/v2/auth/login", {"username": USER, "password": PASSWORD})
    assert (status, body) == (200, "Ok.")
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("SID=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    sid = {"Cookie": cookie.split(";")[0]}
    assert call(d, "GET", "/api/v2/app/webapiVersion", headers=sid)[2] == "2.11.2"
    # Changes need POST, so that a link or an image in a page cannot make them.
    assert call(d, "GET", "/api/v2/torrents/delete?hashes=all&deleteFiles=true", headers=sid)[0] == 405
    # A foreign Host (DNS rebinding) or a foreign page's Origin is refused, with a good SID too.
    assert call(d, "GET", "/api/v2/torrents/info", headers={**sid, "Host": "evil.example"})[0] == 403
    assert call(d, "POST", "/api/v2/torrents/pause", {"hashes": "all"},
                headers={**sid, "Origin": "http://evil.example"})[0] == 403
    assert call(d, "POST", "/api/v2/auth/login", {"username": USER, "password": PASSWORD},
                headers={"Origin": "http://evil.example"})[0] == 403
    # A bounded body: one larger than four of the largest .torrent files is refused.
    status, _, _ = d.request("POST", "/api/v2/torrents/add", b"x" * (65 << 20), token=False, raw=True,
                             headers={**sid, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413

    # Logging out ends the SID.
    assert call(d, "POST", "/api/v2/auth/logout", {}, headers=sid)[0] == 200
    assert call(d, "GET", "/api/v2/torrents/info", headers=sid)[0] == 403

    # Wrong passwords: "Fails." (qBittorrent's answer), then after five within a minute every login is refused for a
    # while, the right one too; Transmission's RPC shares the same count.
    for _ in range(5):
        assert call(d, "POST", "/api/v2/auth/login", {"username": USER, "password": "guess"})[2] == "Fails."
    status, headers, body = call(d, "POST", "/api/v2/auth/login", {"username": USER, "password": PASSWORD})
    assert status == 403 and "banned" in body and int(headers["Retry-After"]) > 0, (status, body)


def test_without_a_compat_login_the_web_api_is_not_there(tmp_path, procs):
    d = Daemon(procs, tmp_path, "127.0.13.16")
    assert call(d, "POST", "/api/v2/auth/login", {"username": "admin", "password": "adminadmin"})[0] == 401
    status, _, _ = call(d, "GET", "/api/v2/app/webapiVersion", headers={"Authorization": f"Bearer {d.token}"})
    assert status == 404
