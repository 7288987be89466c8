"""Issue 14, deliverable 4 (with issue 19's corrections): an optional index node. `peer serve --index` takes signed
announces on a listener of its own; `peer serve --index-server URL` announces its torrents there and asks it in
remote searches. A node announces, another finds the torrent through the index node, checks it and downloads it;
bad announces are refused (signed here with python3-cryptography, from the format in docs/api.md); the Torznab
answers are read with lxml. Nodes on 127.0.0.200-219, each its own --state; every wait is bounded and every
process stopped by the `procs` fixture."""
import email.utils
import hashlib
import http.client
import json
import socket
import time
import urllib.parse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from lxml import etree

from clients import bencode
from conftest import det_bytes, run_peer, wait_until
from test_daemon import Daemon
from test_swarm import free_port, procs  # noqa: F401 (procs is a fixture)

TORZNAB = "http://torznab.com/schemas/2015/feed"
# Python's announcers send from here (the index node takes an announcer's address from the connection).
ANNOUNCER = "127.0.0.204"


class IndexNode:
    """A `peer serve --index` and a client of its listener."""

    def __init__(self, procs, tmp_path, addr, extra=()):
        self.daemon = Daemon(procs, tmp_path, addr, extra=["--index", "--index-listen", f"{addr}:0", *extra],
                             log=f"index-{addr}.log")
        m = self.daemon.proc.wait_for(r"index node on http://([\d.]+):(\d+)")
        self.addr, self.port = m.group(1), int(m.group(2))
        self.url = f"http://{self.addr}:{self.port}"
        self.apikey = (self.daemon.state / "index-apikey").read_text().strip()

    def request(self, method, path, body=None, headers=None, source=None):
        c = http.client.HTTPConnection(self.addr, self.port, timeout=30,
                                       source_address=(source, 0) if source else None)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def json(self, path):
        status, _, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def xml(self, query):
        status, headers, body = self.request("GET", "/api/torznab?" + urllib.parse.urlencode(query))
        assert status == 200 and headers["Content-Type"].startswith("application/xml"), (status, headers, body)
        return etree.fromstring(body)

    def announce(self, body, source=ANNOUNCER):
        status, headers, data = self.request("POST", "/announce", body,
                                             {"Content-Type": "application/octet-stream"}, source=source)
        return status, headers, json.loads(data) if data else None


class Announcer:
    """An ed25519 key that signs announces as docs/api.md describes them."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def body(self, torrents, port=6881, at=None, tamper=False):
        payload = bencode({"key": self.public, "port": port, "time": int(at or time.time()), "v": 1,
                           "torrents": [{"info_hash": ih, "name": name, "size": size, "files": 1, "seed": 1}
                                        for ih, name, size in torrents]})
        signature = bytearray(self.key.sign(payload))
        if tamper:
            signature[0] ^= 1
        return bencode({"payload": payload, "signature": bytes(signature)})


def fake(n, prefix="Fake"):
    return [(hashlib.sha1(f"{prefix}{i}".encode()).digest(), f"{prefix}.Title.{i}.2160p", 1000 + i) for i in range(n)]


def sharer(procs, tmp_path, addr, index, files, private=()):
    """A daemon that announces to `index` and seeds `files` (name -> bytes), each a torrent of its own (private,
    BEP 27, for the names in `private`); returns it with its peer port and the torrents' `peer info` answers."""
    d = Daemon(procs, tmp_path, addr, extra=["--index-server", index.url], log=f"share-{addr}.log")
    d.peer_port = int(d.proc.wait_for(r"peers on port (\d+)").group(1))
    d.downloads.mkdir(parents=True, exist_ok=True)
    infos = {}
    for name, data in files.items():
        (d.downloads / name).write_bytes(data)
        t = tmp_path / f"{hashlib.sha1(name.encode()).hexdigest()}.torrent"
        run_peer("create", d.downloads / name, "-o", t, "--v1", "--no-date", *(["--private"] if name in private else []))
        infos[name] = json.loads(run_peer("info", t, "--json").stdout)
        status, _, body = d.request("POST", "/api/torrents", t.read_bytes(), {"Content-Type": "application/x-bittorrent"})
        assert status == 201, body
    for info in infos.values():
        d.wait(info["id"], lambda t: t["state"] == "seeding", timeout=30, what="seeding")
    return d, infos


def test_a_node_announces_another_finds_checks_and_downloads_it(tmp_path, procs):
    t0 = time.monotonic()
    index = IndexNode(procs, tmp_path, "127.0.0.200")
    name = "Sintel.2010.Open.Movie.1080p.mkv"
    data = det_bytes(3 * 1024 * 1024 + 12345, "sintel")
    # A private torrent (BEP 27) is shared only through its trackers: it is never announced.
    secret = "Sintel.Private.Tracker.Only.mkv"
    share, infos = sharer(procs, tmp_path, "127.0.0.201", index, {name: data, secret: det_bytes(50_000, "secret")},
                          private={secret})
    ih = infos[name]["info_hash_v1"]
    # The announce comes once the torrent seeds; the index node checks the new claim (its info dictionary,
    # fetched from the announcer) and marks it verified.
    hit = wait_until("the index node to verify the announced torrent", lambda: next(
        (h for h in index.json("/search?q=sintel%201080p")["hits"] if h["verified"]), None), timeout=30)
    assert hit["info_hash"] == ih and hit["name"] == name and hit["size"] == len(data) and hit["sources"] == ["index"]
    assert hit["peers"] == [f"127.0.0.201:{share.peer_port}"] and hit["seeders"] == 1
    stats = index.json("/stats")
    assert stats["announcers"] == 1 and stats["checks_passed"] == 1 and stats["checks_failed"] == 0
    assert stats["rows"] == 1 and index.json("/search?q=private")["hits"] == []
    share.proc.wait_for(r"announced 1 torrents \(1 new\)")
    announced = time.monotonic() - t0

    # Another node searches: its neighbours (none here: no DHT) and the index node; the index node's hit is
    # checked against the announcer before it shows as verified.
    seeker = Daemon(procs, tmp_path, "127.0.0.202", extra=["--index-server", index.url], log="seek.log")
    t1 = time.monotonic()
    rid = seeker.ok("GET", "/api/search?q=sintel%201080p&remote=1")["remote"]
    report = wait_until("the remote search to finish", lambda: (lambda r: r if r["done"] else None)(
        seeker.ok("GET", f"/api/search/{rid}")), timeout=30, interval=0.1)
    searched = time.monotonic() - t1
    part = report["index"]
    assert part["server"] == index.url and part.get("error") is None and part["failed"] == 0
    assert [h["info_hash"] for h in part["hits"]] == [ih]
    found = part["hits"][0]
    assert found["check"] == "verified" and found["source"] == "index" and found["name"] == name
    assert found["peers"] == [f"127.0.0.201:{share.peer_port}"]
    assert f"x.pe=127.0.0.201:{share.peer_port}" in found["magnet"]
    # The CLI shows the same through the daemon.
    cli = json.loads(run_peer("search", "sintel", "--remote", "--json", "--state", seeker.state).stdout)
    assert cli["index"]["hits"][0]["check"] == "verified"

    # What it found is what it downloads: the magnet link names the announcer.
    t2 = time.monotonic()
    added = seeker.ok("POST", "/api/torrents", {"magnet": found["magnet"]}, expect=201)
    seeker.wait(added["id"], lambda t: t["state"] == "seeding", timeout=60, what="the download")
    assert (seeker.downloads / name).read_bytes() == data
    print(f"index node: announced and verified in {announced:.1f} s (from start), remote search done in "
          f"{searched:.2f} s, downloaded {len(data)} bytes in {time.monotonic() - t2:.1f} s")


def test_bad_oversized_stale_and_too_frequent_announces_are_refused(tmp_path, procs):
    index = IndexNode(procs, tmp_path, "127.0.0.203")
    a = Announcer()

    def refused(result, status, code):
        got, headers, body = result
        assert got == status and body["error"]["code"] == code and body["error"]["message"], result
        return headers

    # A bad signature.
    refused(index.announce(a.body(fake(2), tamper=True)), 403, "bad_signature")
    # Oversized: refused on its Content-Length before the body is read (none is sent here) ...
    with socket.create_connection((index.addr, index.port), timeout=10, source_address=(ANNOUNCER, 0)) as s:
        s.sendall(b"POST /announce HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413") and '"code":"payload_too_large"' in head, head
    # ... and whole, and with more rows than an announce holds.
    refused(index.announce(b"d" + b"x" * 300_000), 413, "payload_too_large")
    refused(index.announce(a.body(fake(1001))), 413, "too_many_torrents")
    # A stale time, and one from the future.
    refused(index.announce(a.body([], at=time.time() - 3600)), 400, "stale")
    refused(index.announce(a.body([], at=time.time() + 3600)), 400, "stale")
    # One announce a key a minute (the default): the second is refused with when to come back; the first again
    # is a replay. None of the refusals above counted.
    first = a.body([])
    status, _, receipt = index.announce(first)
    assert status == 200 and receipt == {"accepted": 0, "new": 0, "checking": 0, "interval": 60}, receipt
    headers = refused(index.announce(a.body([], at=time.time() + 1)), 429, "too_frequent")
    assert 1 <= int(headers["Retry-After"]) <= 60, headers
    refused(index.announce(first), 409, "replay")

    # Claims that fail their checks (nothing listens on the port they name) are dropped, and the key refused.
    liar = Announcer()
    closed = free_port(ANNOUNCER)
    status, _, receipt = index.announce(liar.body(fake(4, "Liar"), port=closed))
    assert status == 200 and receipt["checking"] == 3, receipt
    wait_until("the lying key to be refused", lambda: index.json("/stats")["refused_keys"] == 1, timeout=30)
    assert index.json("/search?q=liar")["hits"] == []
    headers = refused(index.announce(liar.body(fake(4, "Liar"), port=closed, at=time.time() + 1)), 403, "refused_key")
    assert int(headers["Retry-After"]) > 80_000
    stats = index.json("/stats")
    assert stats["rows"] == 0 and stats["checks_failed"] == 3 and stats["announcers"] == 1, stats


def test_torznab_answers_parse_as_torznab_xml(tmp_path, procs):
    # A short interval: the three torrents may reach the index node in two announces.
    index = IndexNode(procs, tmp_path, "127.0.0.205", extra=["--index-interval", "5"])
    files = {
        "Tom & Jerry <1080p> \"Special\" 'Edition'.mkv": det_bytes(200_000, "tom"),
        "Big.Buck.Bunny.2008.720p.mkv": det_bytes(300_000, "bunny"),
        "Ubuntu 24.04 Desktop amd64.iso": det_bytes(400_000, "ubuntu"),
    }
    share, infos = sharer(procs, tmp_path, "127.0.0.206", index, files)
    wait_until("the index node to verify the three torrents", lambda: len(
        [h for h in index.json("/search")["hits"] if h["verified"]]) == 3, timeout=60)

    caps = index.xml({"t": "caps"})
    assert caps.tag == "caps"
    assert caps.find("limits").attrib == {"default": "100", "max": "100"}
    assert caps.find("searching/search").get("available") == "yes"
    assert "q" in caps.find("searching/search").get("supportedParams").split(",")
    assert caps.find("searching/tv-search").get("available") == "yes"
    assert [c.get("id") for c in caps.findall("categories/category")] == ["8000"]

    name = "Tom & Jerry <1080p> \"Special\" 'Edition'.mkv"
    rss = index.xml({"t": "search", "q": "tom jerry special", "apikey": index.apikey})
    assert rss.tag == "rss" and rss.get("version") == "2.0" and rss.nsmap["torznab"] == TORZNAB
    items = rss.findall("channel/item")
    assert len(items) == 1
    item = items[0]
    attrs = {a.get("name"): a.get("value") for a in item.findall(f"{{{TORZNAB}}}attr")}
    info = infos[name]
    assert item.findtext("title") == name
    assert item.findtext("size") == str(len(files[name])) == attrs["size"]
    assert attrs["infohash"] == info["info_hash_v1"]
    assert attrs["magneturl"].startswith(f"magnet:?xt=urn:btih:{info['info_hash_v1']}&dn=")
    assert f"x.pe=127.0.0.206:{share.peer_port}" in attrs["magneturl"]
    assert attrs["seeders"] == "1" and attrs["peers"] == "1" and attrs["files"] == "1" and attrs["category"] == "8000"
    assert item.find("enclosure").get("url") == attrs["magneturl"] == item.findtext("link")
    assert item.find("enclosure").get("length") == attrs["size"]
    assert info["info_hash_v1"] in item.findtext("guid")
    assert abs(email.utils.parsedate_to_datetime(item.findtext("pubDate")).timestamp() - time.time()) < 600

    # An empty query answers with the newest rows; limit and offset page through them; TV searches are searches.
    newest = index.xml({"t": "search", "q": "", "apikey": index.apikey})
    assert sorted(i.findtext("title") for i in newest.findall("channel/item")) == sorted(files)
    page = index.xml({"t": "search", "apikey": index.apikey, "limit": 1, "offset": 1})
    assert len(page.findall("channel/item")) == 1
    tv = index.xml({"t": "tvsearch", "q": "bunny", "apikey": index.apikey})
    assert [i.findtext("title") for i in tv.findall("channel/item")] == ["Big.Buck.Bunny.2008.720p.mkv"]

    # A wrong or missing apikey is the Torznab error element.
    for query in ({"t": "search", "q": "bunny", "apikey": "wrong-key-0123456789"}, {"t": "search", "q": "bunny"}):
        error = index.xml(query)
        assert error.tag == "error" and error.get("code") == "100" and error.get("description"), query


def test_a_lying_index_node_neither_crashes_nor_fools_a_searcher(tmp_path, procs):
    """An index node's hits are claims: repeated hashes count once, malformed ones are dropped, and hits whose
    announcers cannot send the info dictionary fail their check and are not shown."""
    import http.server
    import threading
    closed = free_port("127.0.0.207")  # nothing listens there: every check fails

    def hit(ih, name):
        return {"info_hash": ih, "name": name, "size": 1000, "files": 1, "paths": [], "sources": ["index"],
                "verified": True, "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-01T00:00:00Z",
                "score": 1.0, "magnet": "magnet:?", "peers": [f"127.0.0.207:{closed}"]}
    answer = json.dumps({"query": "lie", "hits": [
        hit("11" * 20, "Lie.One"), hit("11" * 20, "Lie.One.Again"), hit("zz" * 20, "Lie.Bad.Hex"),
        hit("22" * 10, "Lie.Short"), hit("33" * 32, "Lie.V2")]}).encode()
    asked = []

    class Liar(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.207", 0), Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        seeker = Daemon(procs, tmp_path, "127.0.0.208", extra=["--index-server", f"http://127.0.0.207:{server.server_port}"],
                        log="seek-liar.log")
        rid = seeker.ok("GET", "/api/search?q=lie&remote=1")["remote"]
        report = wait_until("the remote search to finish", lambda: (lambda r: r if r["done"] else None)(
            seeker.ok("GET", f"/api/search/{rid}")), timeout=30, interval=0.1)
        part = report["index"]
        assert asked and asked[0].startswith("/search?q=lie")
        assert part["hits"] == [] and part["failed"] == 2 and part.get("error") is None, part
        assert seeker.ok("GET", "/api/session")["torrents"] == 0  # still answering
        # Failed claims leave the searcher's own index too.
        assert seeker.ok("GET", "/api/search?q=lie")["hits"] == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
