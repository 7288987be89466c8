"""Issue: foundation. Torrents made by `peer create` against libtorrent, and torrents made by libtorrent,
mktorrent and transmission-create against `peer info --json`; malformed input; path sanitizing."""
import base64
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import PEER, det_bytes, run_peer

KINDS = ["v1", "v2", "hybrid"]
PIECES = {"16k": 16 * 1024, "16m": 16 * 1024 * 1024}


def lt_hashes(lt, torrent_path):
    ti = lt.torrent_info(str(torrent_path))
    ih = ti.info_hashes()
    return (str(ih.v1) if ih.has_v1() else None, str(ih.v2) if ih.has_v2() else None), ti


def lt_files(ti):
    fs = ti.files()
    out = []
    for i in range(fs.num_files()):
        if fs.file_flags(i) & 1:  # pad file
            continue
        out.append((fs.file_path(i).replace(os.sep, "/"), fs.file_size(i)))
    return out


def peer_info(path):
    p = run_peer("info", path, "--json")
    return json.loads(p.stdout), p.stderr


def lt_check_all_pieces(lt, torrents, timeout=120):
    """Adds each (torrent, save_path) to one libtorrent session, has libtorrent check the data on disk,
    and returns {torrent: (pieces it found, pieces in all)} once every check has finished."""
    ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                      "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
                      "enable_incoming_utp": False,
                      "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification})
    handles = {}
    try:
        for t, save in torrents:
            p = lt.add_torrent_params()
            p.ti = lt.torrent_info(str(t))
            p.save_path = str(save)
            p.flags &= ~lt.torrent_flags.auto_managed
            p.flags |= lt.torrent_flags.paused  # added paused, then rechecked: a full check of the data
            h = ses.add_torrent(p)
            h.force_recheck()
            h.resume()
            handles[t] = h
        pending = set(handles)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            ses.wait_for_alert(200)
            for a in ses.pop_alerts():
                if isinstance(a, lt.torrent_checked_alert):
                    for t, h in handles.items():
                        if h == a.handle:
                            pending.discard(t)
        assert not pending, f"libtorrent never finished checking {[t.name for t in pending]}"
        return {t: (h.status().num_pieces, h.torrent_file().num_pieces()) for t, h in handles.items()}
    finally:
        for h in handles.values():
            ses.remove_torrent(h)
        del ses


# --- peer create -> libtorrent -------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_peer_created_torrents_load_in_libtorrent_with_equal_hashes_and_verify(lt, datasets, tmp_path, kind):
    made = []
    for pname, pl in PIECES.items():
        for dname in ("multi", "single", "onebyte", "big"):
            if dname == "big" and pname == "16k":
                continue  # 1 280 pieces of 16 KiB add time and nothing new
            src = datasets[dname]
            out = tmp_path / f"{dname}-{pname}.torrent"
            p = run_peer("create", src, "-o", out, f"--{kind}", "--piece-length", pl, "--no-date", "--json")
            created = json.loads(p.stdout)
            (v1, v2), ti = lt_hashes(lt, out)
            assert created["info_hash_v1"] == v1, (dname, pname)
            assert created["info_hash_v2"] == v2, (dname, pname)
            assert (v1 is not None) == (kind != "v2") and (v2 is not None) == (kind != "v1")
            peer_files = [(f["path"], f["length"]) for f in created["files"] if not f["padding"]]
            assert peer_files == lt_files(ti)
            assert ti.piece_length() == pl
            made.append((out, src.parent))
    result = lt_check_all_pieces(lt, made)
    for t, (have, total) in result.items():
        assert have == total and total > 0, f"libtorrent found {have}/{total} pieces of {t.name}"


def test_libtorrent_rejects_corrupted_data_of_a_peer_torrent(lt, datasets, tmp_path):
    """The check above can fail: flip one byte of a copy and libtorrent must miss a piece."""
    copy = tmp_path / "multi"
    shutil.copytree(datasets["multi"], copy)
    out = tmp_path / "m.torrent"
    run_peer("create", copy, "-o", out, "--hybrid", "--piece-length", 16384)
    target = copy / "nested" / "deeper" / "c.dat"
    data = bytearray(target.read_bytes())
    data[50_000] ^= 0xFF
    target.write_bytes(bytes(data))
    (have, total), = lt_check_all_pieces(lt, [(out, tmp_path)]).values()
    assert have == total - 1


# --- other clients -> peer info ------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pname", list(PIECES))
def test_libtorrent_made_torrents_read_the_same_in_peer(lt, datasets, tmp_path, kind, pname):
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[kind]
    for dname in ("multi", "single", "onebyte"):
        src = datasets[dname]
        fs = lt.file_storage()
        lt.add_files(fs, str(src))
        ct = lt.create_torrent(fs, PIECES[pname], flags=flags)
        ct.add_tracker("http://127.0.0.1:6969/announce", 0)
        ct.add_tracker("udp://127.0.0.1:6969", 1)
        ct.set_comment("made by libtorrent")
        lt.set_piece_hashes(ct, str(src.parent))
        out = tmp_path / f"lt-{dname}.torrent"
        out.write_bytes(lt.bencode(ct.generate()))
        (v1, v2), ti = lt_hashes(lt, out)
        info, _ = peer_info(out)
        assert (info["info_hash_v1"], info["info_hash_v2"]) == (v1, v2), dname
        assert info["version"] == kind
        assert info["piece_length"] == PIECES[pname]
        assert info["piece_count"] == ti.num_pieces()
        assert info["total_size"] == sum(s for _, s in lt_files(ti))
        assert [(f["path"], f["length"]) for f in info["files"] if not f["padding"]] == lt_files(ti)
        # The file index is the position in the v1 list including padding files; for v2-only torrents it
        # is the position in file-tree order (libtorrent numbers its internal padding there too, Peer not).
        fs2 = ti.files()
        if kind == "v2":
            assert [f["index"] for f in info["files"]] == list(range(len(info["files"])))
            assert not any(f["padding"] for f in info["files"])
        else:
            for f in info["files"]:
                assert fs2.file_path(f["index"]).replace(os.sep, "/") == f["path"]
                assert bool(fs2.file_flags(f["index"]) & 1) == f["padding"]
        assert info["trackers"] == [["http://127.0.0.1:6969/announce"], ["udp://127.0.0.1:6969"]]
        assert info["comment"] == "made by libtorrent"


@pytest.mark.parametrize("piece_log2", [15, 24])
def test_mktorrent_made_torrents_read_the_same_in_peer(lt, datasets, tmp_path, piece_log2):
    for dname in ("multi", "single", "onebyte"):
        out = tmp_path / f"mk-{dname}.torrent"
        subprocess.run(["mktorrent", "-l", str(piece_log2), "-p", "-a", "http://127.0.0.1:6969/announce",
                        "-c", "mktorrent", "-o", str(out), str(datasets[dname])],
                       check=True, capture_output=True, timeout=120)
        (v1, v2), ti = lt_hashes(lt, out)
        info, _ = peer_info(out)
        assert info["info_hash_v1"] == v1 and v2 is None and info["info_hash_v2"] is None
        assert info["version"] == "v1" and info["private"] is True
        assert info["piece_length"] == 1 << piece_log2
        assert [(f["path"], f["length"]) for f in info["files"]] == lt_files(ti)


@pytest.mark.parametrize("piece_kib", [16, 16384])
def test_transmission_create_torrents_read_the_same_in_peer(lt, datasets, tmp_path, piece_kib):
    for dname in ("multi", "single", "onebyte"):
        out = tmp_path / f"tr-{dname}.torrent"
        subprocess.run(["transmission-create", "-o", str(out), "-s", str(piece_kib), "-t",
                        "http://127.0.0.1:6969/announce", str(datasets[dname])],
                       check=True, capture_output=True, timeout=120)
        (v1, v2), ti = lt_hashes(lt, out)
        info, _ = peer_info(out)
        assert info["info_hash_v1"] == v1 and info["info_hash_v2"] is None
        assert info["piece_length"] == piece_kib * 1024
        assert [(f["path"], f["length"]) for f in info["files"]] == lt_files(ti)


def test_round_trip_of_every_client_made_torrent_is_byte_identical(lt, datasets, tmp_path):
    """Decode then encode with Peer's own code is checked in Swift; here libtorrent re-encodes what Peer
    made and must produce the same bytes (Peer writes canonical bencode)."""
    for kind in KINDS:
        out = tmp_path / f"{kind}.torrent"
        run_peer("create", datasets["multi"], "-o", out, f"--{kind}", "--tracker", "http://a/x,http://b/x",
                 "--tracker", "udp://c:1", "--web-seed", "http://ws/", "--comment", "c", "--private")
        raw = out.read_bytes()
        assert lt.bencode(lt.bdecode(raw)) == raw


# --- bad input -------------------------------------------------------------------------------------

def benc(v):
    """A bencoder that keeps dict order as given (so tests can write non-canonical input)."""
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(benc(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"d" + b"".join(benc(k) + benc(x) for k, x in v.items()) + b"e"
    raise TypeError(v)


def v1_torrent(info_overrides=None, files=None, drop=()):
    data = det_bytes(40_000, "bad")
    pieces = b"".join(__import__("hashlib").sha1(data[i:i + 16384]).digest() for i in range(0, len(data), 16384))
    info = {"length": 40_000, "name": "x.bin", "piece length": 16384, "pieces": pieces}
    if files is not None:
        del info["length"]
        info["files"] = files
    info.update(info_overrides or {})
    for k in drop:
        info.pop(k, None)
    return {"announce": "http://127.0.0.1:6969/announce", "info": dict(sorted(info.items()))}


def v2_torrent_with_bad_layer():
    import hashlib
    data = det_bytes(3 * 16384, "v2")
    leaves = [hashlib.sha256(data[i:i + 16384]).digest() for i in range(0, len(data), 16384)]
    # piece length 16 KiB: the piece layer is the leaves; the root pads to 4 leaves with zeros.
    z = b"\0" * 32
    h01 = hashlib.sha256(leaves[0] + leaves[1]).digest()
    h23 = hashlib.sha256(leaves[2] + z).digest()
    root = hashlib.sha256(h01 + h23).digest()
    bad_layer = leaves[0] + leaves[2] + leaves[1]
    info = {"file tree": {"f.bin": {"": {"length": len(data), "pieces root": root}}}, "meta version": 2,
            "name": "f.bin", "piece length": 16384}
    good = {"info": info, "piece layers": {root: b"".join(leaves)}}
    bad = {"info": info, "piece layers": {root: bad_layer}}
    return benc(good), benc(bad)


def malformed_corpus():
    good = benc(v1_torrent())
    good_v2, bad_v2 = v2_torrent_with_bad_layer()
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "truncated-by-one": good[:-1],
        "not-bencode": b"<html>not a torrent</html>",
        "top-level-list": b"li1ee",
        "info-not-dict": benc({"info": [1, 2]}),
        "missing-info": benc({"announce": "x"}),
        "integer-past-64-bits": benc(v1_torrent())[:0] + b"d4:infod6:lengthi99999999999999999999999e4:name1:xee",
        "nesting-100000-deep": b"l" * 100_000 + b"e" * 100_000,
        "string-declares-2GiB": b"d4:info2147483648:abc",
        "wrong-type-piece-length": benc(v1_torrent({"piece length": "16384"})),
        "missing-piece-length": benc(v1_torrent(drop=["piece length"])),
        "missing-name": benc(v1_torrent(drop=["name"])),
        "missing-pieces": benc(v1_torrent(drop=["pieces"])),
        "zero-piece-length": benc(v1_torrent({"piece length": 0})),
        "negative-length": benc(v1_torrent({"length": -5})),
        "too-few-pieces": benc(v1_torrent({"length": 400_000})),
        "pieces-not-multiple-of-20": benc(v1_torrent({"pieces": b"x" * 59})),
        "length-and-files": benc(v1_torrent({"files": [{"length": 1, "path": ["a"]}]})),
        "empty-files-list": benc(v1_torrent(files=[])),
        "path-not-list": benc(v1_torrent(files=[{"length": 40_000, "path": "a"}])),
        "v2-not-power-of-two": benc({"info": {"file tree": {"a": {"": {"length": 1, "pieces root": b"r" * 32}}},
                                              "meta version": 2, "name": "a", "piece length": 20000}}),
        "v2-layer-mismatch": bad_v2,
        "meta-version-3": benc(v1_torrent({"meta version": 3})),
        "file-and-folder": benc(v1_torrent(files=[{"length": 20_000, "path": ["a"]},
                                                  {"length": 20_000, "path": ["a", "b"]}])),
    }


@pytest.mark.parametrize("name", list(malformed_corpus()))
def test_malformed_torrents_fail_with_one_clear_line(tmp_path, name):
    path = tmp_path / f"{name}.torrent"
    path.write_bytes(malformed_corpus()[name])
    before = sorted(os.listdir(tmp_path))
    t0 = time.monotonic()
    p = run_peer("info", path, check=False, cwd=tmp_path, timeout=30)
    assert time.monotonic() - t0 < 20
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("peer info: error: "), lines[0]
    assert p.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before, "peer info wrote something"
    # The JSON form fails the same way.
    pj = run_peer("info", path, "--json", check=False, cwd=tmp_path)
    assert pj.returncode == 1 and pj.stdout == ""


def test_malformed_messages_name_the_problem_and_offset(tmp_path):
    corpus = malformed_corpus()
    expect = {
        "truncated-by-one": "unexpected end of input at byte",
        "integer-past-64-bits": "does not fit in 64 bits",
        "nesting-100000-deep": "nesting deeper than 100 levels at byte 100",
        "string-declares-2GiB": "declares 2147483648 bytes",
        "too-few-pieces": "piece hashes for 400000 bytes",
        "v2-layer-mismatch": "does not match its pieces root",
        "missing-piece-length": "missing key \"piece length\"",
        "wrong-type-piece-length": "\"piece length\" at byte",
        "file-and-folder": "no safe layout",
        "meta-version-3": "unsupported meta version 3",
        "v2-not-power-of-two": "power of two",
    }
    for name, needle in expect.items():
        path = tmp_path / f"{name}.torrent"
        path.write_bytes(corpus[name])
        p = run_peer("info", path, check=False)
        assert needle in p.stderr, (name, p.stderr)


def test_a_2GiB_declaration_allocates_nothing(tmp_path):
    path = tmp_path / "huge.torrent"
    path.write_bytes(b"d4:info2147483648:" + b"x" * 100)
    # The process's own peak (GNU time's %M): RUSAGE_CHILDREN would be the largest of every child this
    # pytest run waited for so far, a browser among them.
    p = subprocess.run(["/usr/bin/time", "-f", "maxrss %M", PEER, "info", str(path)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and "declares 2147483648 bytes" in p.stderr, p.stderr
    peak = int(p.stderr.strip().splitlines()[-1].split()[1])
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"


def test_the_good_v2_torrent_of_the_corpus_loads():
    good, _ = v2_torrent_with_bad_layer()
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".torrent") as f:
        f.write(good)
        f.flush()
        info, _ = peer_info(f.name)
        assert info["version"] == "v2"


@pytest.mark.parametrize("magnet,needle", [
    ("magnet:?dn=x", "no info-hash"),
    ("magnet:?xt=urn:btih:1234", "40 hex or 32 base32"),
    ("magnet:?xt=urn:btih:" + "g" * 40, "not valid"),
    ("magnet:?xt=urn:btmh:1114" + "0" * 40, "SHA-256 multihash"),
    ("magnet:?xt=urn:btih:" + "a" * 40 + "&dn=%zz", "bad percent escape"),
    ("magnet:?xt=urn:btih:" + "a" * 40 + "&so=3-1", "bad range"),
])
def test_malformed_magnets_fail_with_one_clear_line(magnet, needle):
    p = run_peer("info", magnet, check=False)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr


def test_magnet_fields_are_parsed():
    m = ("magnet:?xt=urn:btih:CFOURLSAUZLR3MV4I5Y2DLDK3HQZKDNO&xt=urn:btmh:1220" + "ab" * 32 +
         "&dn=My+File%20name&tr=udp%3A%2F%2F127.0.0.1%3A6969&tr.1=http://127.0.0.1/a&ws=http://127.0.0.1/ws"
         "&x.pe=127.0.0.1:6881&so=0,2,4-6&xl=12345")
    info = json.loads(run_peer("info", m, "--json").stdout)
    assert info["kind"] == "magnet"
    assert info["info_hash_v1"] == base64.b32decode("CFOURLSAUZLR3MV4I5Y2DLDK3HQZKDNO").hex()
    assert info["info_hash_v2"] == "ab" * 32
    assert info["display_name"] == "My File name"
    assert info["trackers"] == ["udp://127.0.0.1:6969", "http://127.0.0.1/a"]
    assert info["web_seeds"] == ["http://127.0.0.1/ws"] and info["peers"] == ["127.0.0.1:6881"]
    assert info["selected_files"] == [0, 2, 4, 5, 6] and info["exact_length"] == 12345


# --- path safety -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,expected", [
    (["..", "..", "etc", "passwd"], "etc/passwd"),
    (["/etc/passwd"], "_etc_passwd"),
    (["a/../../b"], "a_.._.._b"),
    ([".", "", "ok.txt"], "ok.txt"),
    (["back\\slash"], "back_slash"),
    ([".."], "_"),
])
def test_escaping_paths_load_with_a_warning_and_sanitized_paths(lt, tmp_path, path, expected):
    t = benc(v1_torrent(files=[{"length": 40_000, "path": path}]))
    f = tmp_path / "escape.torrent"
    f.write_bytes(t)
    p = run_peer("info", f, "--json")
    info = json.loads(p.stdout)
    assert "warning:" in p.stderr and "sanitized" in p.stderr
    (only,) = info["files"]
    assert only["path"] == "x.bin/" + expected
    parts = only["path"].split("/")
    assert ".." not in parts and "" not in parts and not only["path"].startswith("/")
    # The hash is still the one every client computes from the raw bytes.
    (v1, _), _ = lt_hashes(lt, f)
    assert info["info_hash_v1"] == v1


def test_non_canonical_info_dict_hashes_from_raw_bytes(lt, tmp_path):
    t = v1_torrent()
    info = t["info"]
    t["info"] = dict(reversed(list(info.items())))  # keys out of order
    f = tmp_path / "nc.torrent"
    f.write_bytes(benc(t))
    p = run_peer("info", f, "--json")
    (v1, _), _ = lt_hashes(lt, f)
    assert json.loads(p.stdout)["info_hash_v1"] == v1
    assert "canonical" in p.stderr


# --- the commands as a user meets them ----------------------------------------------------------------

def test_create_prints_hashes_and_magnet_and_refuses_to_overwrite(datasets, tmp_path):
    out = tmp_path / "m.torrent"
    p = run_peer("create", datasets["multi"], "-o", out)
    assert "v1 hash" in p.stdout and "v2 hash" in p.stdout and "magnet:?xt=urn:btih:" in p.stdout
    again = run_peer("create", datasets["multi"], "-o", out, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    run_peer("create", datasets["multi"], "-o", out, "--force")


def test_create_default_output_name_and_bad_piece_length(datasets, tmp_path):
    run_peer("create", datasets["single"], cwd=tmp_path)
    assert (tmp_path / "single.bin.torrent").exists()
    bad = run_peer("create", datasets["single"], "--piece-length", "1000", check=False, cwd=tmp_path)
    assert bad.returncode != 0 and "power of two" in bad.stderr


def test_create_excludes_and_skips_symlinks(lt, tmp_path):
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "a.txt").write_bytes(b"a" * 1000)
    (src / "skip.tmp").write_bytes(b"t" * 10)
    (src / "link").symlink_to(src / "keep" / "a.txt")
    out = tmp_path / "x.torrent"
    p = run_peer("create", src, "-o", out, "--exclude", "*.tmp", "--json")
    paths = [f["path"] for f in json.loads(p.stdout)["files"] if not f["padding"]]
    assert paths == ["src/keep/a.txt"]
    assert "skipped link" in p.stderr
    out2 = tmp_path / "y.torrent"
    p2 = run_peer("create", src, "-o", out2, "--exclude", "*.tmp", "--follow-symlinks", "--json")
    paths2 = [f["path"] for f in json.loads(p2.stdout)["files"] if not f["padding"]]
    assert paths2 == ["src/keep/a.txt", "src/link"]


def test_create_with_no_date_is_reproducible(datasets, tmp_path):
    a, b = tmp_path / "a.torrent", tmp_path / "b.torrent"
    run_peer("create", datasets["multi"], "-o", a, "--no-date", "--threads", "1")
    run_peer("create", datasets["multi"], "-o", b, "--no-date", "--threads", "2")
    assert a.read_bytes() == b.read_bytes()


def test_info_human_output_shows_the_essentials(datasets, tmp_path):
    out = tmp_path / "h.torrent"
    run_peer("create", datasets["multi"], "-o", out, "--tracker", "http://127.0.0.1:1/announce",
             "--comment", "hello", "--private")
    text = run_peer("info", out).stdout
    for needle in ("name:", "size:", "version:      hybrid", "info-hash v1:", "info-hash v2:", "private:      yes",
                   "tier 1:", "comment:      hello", "日本語 ファイル.txt", "[0]"):
        assert needle in text, needle


def test_help_teaches():
    for args in (["--help"], ["create", "--help"], ["info", "--help"]):
        p = run_peer(*args)
        assert "Examples" in p.stdout or "EXAMPLES" in p.stdout.upper()
