"""Drives a daemon through the Python packages the *arr tools' users script with: `qbittorrent-api` against
qBittorrent's Web API v2, `transmission-rpc` against Transmission's RPC. Run by the interop tests with the virtual
environment's Python (.ci/run installs both packages there), once against Peer and, for qBittorrent, once against
the real qbittorrent-nox, so the two runs can be compared.

    compat_client.py qbittorrent URL USER PASSWORD --torrent F --save DIR --category C --tags a,b [--magnet M]
    compat_client.py transmission HOST PORT USER PASSWORD --torrent F --save DIR --tags a,b [--magnet M]

The cycle: log in; add the .torrent file (its data is already in DIR, so it completes after a check) with the
category and tags, and the magnet link if given; list by category; wait until each is complete; read properties and
files; set share limits; pause; resume; delete with files. Prints one JSON object with what each step read."""
import argparse
import json
import sys
import time


def wait(what, check, timeout=90, interval=0.3):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def qbittorrent(a):
    import qbittorrentapi
    c = qbittorrentapi.Client(host=a.url, username=a.user, password=a.password, REQUESTS_ARGS={"timeout": 30},
                              RAISE_NOTIMPLEMENTEDERROR_FOR_UNIMPLEMENTED_API_ENDPOINTS=True)
    out = {"client": "qbittorrent-api"}
    try:
        qbittorrentapi.Client(host=a.url, username=a.user, password=a.password + "x").auth_log_in()
        out["wrong_password"] = "accepted"
    except qbittorrentapi.LoginFailed:
        out["wrong_password"] = "refused"
    c.auth_log_in()
    out["version"], out["webapi"] = c.app_version(), c.app_web_api_version()
    prefs = c.app_preferences()
    out["preferences"] = {k: prefs.get(k) for k in ("save_path", "max_ratio_enabled", "max_ratio",
                                                    "max_seeding_time_enabled", "max_seeding_time", "max_ratio_act",
                                                    "queueing_enabled", "dht")}
    if a.category not in c.torrents_categories():
        c.torrents_create_category(name=a.category, save_path=a.save)
    out["categories"] = {k: dict(v) for k, v in c.torrents_categories().items()}
    tags = a.tags.split(",")
    out["add_file"] = c.torrents_add(torrent_files=a.torrent, category=a.category, tags=tags, save_path=a.save)
    if a.magnet:
        out["add_magnet"] = c.torrents_add(urls=a.magnet, category=a.category, tags=tags, save_path=a.save,
                                           is_sequential_download=True, is_first_last_piece_priority=True)
    want = 2 if a.magnet else 1
    rows = wait("both torrents listed in their category",
                lambda: (lambda r: len(r) == want and r)(c.torrents_info(category=a.category)))
    out["other_category"] = len(c.torrents_info(category=a.category + "-none"))
    hashes = [r["hash"] for r in rows]
    wait("every torrent complete", lambda: all(r["progress"] == 1 for r in c.torrents_info(torrent_hashes=hashes)))
    time.sleep(1.5)  # a second of seeding, so that seeding_time counts
    out["torrents"] = []
    for h in hashes:
        out["torrents"].append({"info": dict(c.torrents_info(torrent_hashes=h)[0]),
                                "properties": dict(c.torrents_properties(torrent_hash=h)),
                                "files": [dict(f) for f in c.torrents_files(torrent_hash=h)]})
    c.torrents_set_share_limits(ratio_limit=2.5, seeding_time_limit=120, inactive_seeding_time_limit=-2,
                                torrent_hashes=hashes)
    limited = c.torrents_info(torrent_hashes=hashes[0])[0]
    out["limits"] = {"ratio_limit": limited["ratio_limit"], "seeding_time_limit": limited["seeding_time_limit"]}
    c.torrents_pause(torrent_hashes=hashes)
    out["paused_states"] = wait("paused", lambda: (lambda s: all(x.startswith(("paused", "stopped")) for x in s) and s)(
        [r["state"] for r in c.torrents_info(torrent_hashes=hashes)]), timeout=20)
    c.torrents_resume(torrent_hashes=hashes)
    out["resumed_states"] = wait("resumed", lambda: (lambda s: not any(x.startswith(("paused", "stopped")) for x in s)
                                                     and s)([r["state"] for r in c.torrents_info(torrent_hashes=hashes)]),
                                 timeout=20)
    c.torrents_delete(delete_files=True, torrent_hashes=hashes)
    wait("deleted", lambda: not c.torrents_info(torrent_hashes=hashes), timeout=20)
    out["left"] = len(c.torrents_info())
    c.auth_log_out()
    return out


def transmission(a):
    import transmission_rpc
    out = {"client": "transmission-rpc"}
    try:
        transmission_rpc.Client(host=a.host, port=a.port, username=a.user, password=a.password + "x", timeout=30)
        out["wrong_password"] = "accepted"
    except transmission_rpc.TransmissionAuthError:
        out["wrong_password"] = "refused"
    c = transmission_rpc.Client(host=a.host, port=a.port, username=a.user, password=a.password, timeout=30)
    s = c.get_session()
    out["version"], out["rpc_version"] = s.version, s.rpc_version
    labels = a.tags.split(",")
    with open(a.torrent, "rb") as f:
        added = [c.add_torrent(f, download_dir=a.save, labels=labels)]
    if a.magnet:
        added.append(c.add_torrent(a.magnet, download_dir=a.save, labels=labels))
    ids = [t.id for t in added]
    wait("every torrent complete", lambda: all(t.percent_done == 1 for t in c.get_torrents(ids)))
    time.sleep(1.5)
    out["torrents"] = []
    for t in c.get_torrents(ids):
        out["torrents"].append({"hash": t.hash_string, "name": t.name, "size": t.total_size, "progress": t.percent_done,
                                "status": str(t.status), "labels": t.labels, "download_dir": t.download_dir,
                                "left": t.left_until_done, "files": [[f.name, f.size, f.completed] for f in t.get_files()],
                                "seconds_seeding": t.fields.get("secondsSeeding"), "ratio": t.ratio})
    out["labelled"] = len([t for t in c.get_torrents(arguments=["id", "labels"]) if labels[0] in t.labels])
    c.change_torrent(ids, seed_ratio_limit=2.5, seed_ratio_mode=1)
    out["limits"] = [(t.seed_ratio_limit, t.seed_ratio_mode.value if hasattr(t.seed_ratio_mode, "value")
                      else t.seed_ratio_mode) for t in c.get_torrents(ids)]
    c.stop_torrent(ids)
    out["paused_states"] = wait("stopped", lambda: (lambda s: all(x == "stopped" for x in s) and s)(
        [str(t.status) for t in c.get_torrents(ids)]), timeout=20)
    c.start_torrent(ids)
    out["resumed_states"] = wait("started", lambda: (lambda s: not any(x == "stopped" for x in s) and s)(
        [str(t.status) for t in c.get_torrents(ids)]), timeout=20)
    c.remove_torrent(ids, delete_data=True)
    wait("removed", lambda: not c.get_torrents(ids), timeout=20)
    out["left"] = len(c.get_torrents())
    return out


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="kind", required=True)
    q = sub.add_parser("qbittorrent")
    q.add_argument("url")
    t = sub.add_parser("transmission")
    t.add_argument("host")
    t.add_argument("port", type=int)
    for s in (q, t):
        s.add_argument("user")
        s.add_argument("password")
        s.add_argument("--torrent", required=True)
        s.add_argument("--save", required=True)
        s.add_argument("--category", default="tv")
        s.add_argument("--tags", default="peer-test,second")
        s.add_argument("--magnet")
    a = p.parse_args()
    out = qbittorrent(a) if a.kind == "qbittorrent" else transmission(a)
    json.dump(out, sys.stdout, default=str)
    print()


if __name__ == "__main__":
    main()
