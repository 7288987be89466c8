"""The daemon's two front ends against a real `peer serve` fed by a libtorrent seed over loopback: the command-line
client (peer add, ls, show, pause, resume, stats, rm) and the web UI in headless Chromium (log in, add a magnet
through the form, watch the progress bar fill from the live events, play the WebM through the stream endpoint;
search the keyword index and add a hit with one click; make a channel and post to it, subscribe to it on another
daemon and watch its posts arrive, download its torrent with one click).

Each node has its own 127.0.0.x (seed .211/.213, daemon .212/.214, the search test's daemon .207; the channels
test's publisher, subscriber and third DHT node 127.0.4.1, .2 and .3); nothing leaves loopback. The browser test
needs Debian's chromium, chromium-driver, python3-selenium and ffmpeg (.ci/run installs them): when one is
missing it fails, it does not skip. Screenshots go to $PEER_ARTIFACTS (default Tests/interop/artifacts/).
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

from conftest import PEER, det_bytes, run_peer, wait_until
from test_swarm import LTPEER, free_port, magnet_of, procs, tree_digest  # noqa: F401 (procs is a fixture)

HERE = pathlib.Path(__file__).resolve().parent
ARTIFACTS = pathlib.Path(os.environ.get("PEER_ARTIFACTS", HERE / "artifacts"))


def lt_seed(procs, tmp_path, torrent, data, addr, upload_limit=0):
    port = free_port(addr)
    s = procs(["/usr/bin/python3", LTPEER, "seed", str(torrent), str(data), "--bind", addr, "--port", str(port),
               "--upload-limit", str(upload_limit)], tmp_path / "lt-seed.log")
    s.wait_for("READY", timeout=60)
    return f"{addr}:{port}"


class Daemon:
    """`peer serve` on its own address, with its state and download folders in the test's folder."""

    def __init__(self, procs, tmp_path, addr):
        self.state = tmp_path / "state"
        self.downloads = tmp_path / "dl"
        self.proc = procs([PEER, "serve", "--api", f"{addr}:{free_port(addr)}", "--bind", addr, "--port", "0",
                           "--state", self.state, "--download-dir", self.downloads], tmp_path / "serve.log")
        address = self.state / "api-address"
        written = lambda: address.exists() and address.read_text().strip()  # noqa: E731
        wait_until("api-address", lambda: written() or self.proc.p.poll() is not None, 30)
        assert self.proc.p.poll() is None, f"peer serve exited {self.proc.p.returncode}: {self.log()}"
        self.url = address.read_text().strip()
        self.token = (self.state / "api-token").read_text().strip()
        # The file is written at start; the API answers from the moment it is there, or very soon after.
        wait_until("the API", lambda: self.cli("stats", check=False).returncode == 0, 15)

    def log(self):
        self.proc.log.seek(0)
        return self.proc.log.read()

    def cli(self, *args, check=True, timeout=60):
        return run_peer(*args, "--state", self.state, check=check, timeout=timeout)

    def json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)


def make_payload(tmp_path):
    src = tmp_path / "src" / "album"
    src.mkdir(parents=True)
    (src / "01.bin").write_bytes(det_bytes(700_001, "daemon-01"))
    (src / "notes.txt").write_bytes(det_bytes(40_000, "daemon-notes"))
    torrent = tmp_path / "album.torrent"
    run_peer("create", src, "-o", torrent, "--piece-length", "32K", "--no-date", "--quiet")
    return src, torrent


def failing(daemon, *args):
    p = daemon.cli(*args, check=False)
    assert p.returncode != 0, f"peer {' '.join(args)} should have failed:\n{p.stdout}"
    assert p.stdout == "", p.stdout
    return p.stderr


def test_cli_files_torrents_under_categories_and_tags(tmp_path, procs):
    """`peer add --category --tag` files a torrent under a category (whose folder, set through the API, is its save
    path) with tags; `peer ls --category/--tag` lists only those; an unknown category lists nothing."""
    import urllib.request
    _, torrent = make_payload(tmp_path)
    daemon = Daemon(procs, tmp_path, "127.0.0.215")
    music = daemon.downloads / "music"
    req = urllib.request.Request(daemon.url + "/api/categories", method="POST",
                                 data=json.dumps({"name": "music", "save_path": str(music)}).encode(),
                                 headers={"Authorization": f"Bearer {daemon.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201
    added = daemon.json("add", torrent, "--paused", "--category", "music", "--tag", "flac", "--tag", "live")
    assert added["category"] == "music" and added["tags"] == ["flac", "live"] and added["save_path"] == str(music)
    assert [t["name"] for t in daemon.json("ls", "--category", "music")["torrents"]] == ["album"]
    assert [t["name"] for t in daemon.json("ls", "--tag", "live")["torrents"]] == ["album"]
    assert daemon.cli("ls", "--category", "films").stdout.startswith("no torrents of that category or tag")
    assert daemon.cli("ls", "--tag", "flac").stdout.splitlines()[1].split()[:2] == [added["id"][:8], "album"]


def test_cli_against_the_daemon(tmp_path, procs):
    t0 = time.monotonic()
    src, torrent = make_payload(tmp_path)
    seed = lt_seed(procs, tmp_path, torrent, src.parent, "127.0.0.211")
    link, info = magnet_of(torrent, x_pe=[seed])
    daemon = Daemon(procs, tmp_path, "127.0.0.212")
    tid = info["id"]

    assert daemon.cli("ls").stdout.startswith("no torrents")
    assert daemon.json("ls") == {"torrents": []}

    added = daemon.json("add", link)
    assert added["id"] == tid and added["info_hash_v1"] == info["info_hash_v1"]
    err = failing(daemon, "add", link)
    assert err.startswith("peer add: error: ") and "HTTP 409 conflict" in err, err

    def complete():
        t = daemon.json("ls")["torrents"]
        return t and t[0]["progress"] >= 1 and t[0]["state"] in ("seeding", "paused") and t[0]
    summary = wait_until("the download to complete", complete, 150, interval=0.5)
    assert summary["name"] == "album" and summary["size"] == 740_001
    assert tree_digest(daemon.downloads / "album") == tree_digest(src)

    table = daemon.cli("ls").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "NAME", "STATE", "DONE"]
    assert table[1].split()[:4] == [tid[:8], "album", summary["state"], "100.0%"], table

    prefix = tid[:5]
    shown = daemon.cli("show", prefix).stdout
    assert f"id:           {tid}" in shown and "album/01.bin" in shown and "album/notes.txt" in shown, shown
    assert "100.0%" in shown and "trackers:" in shown and "peers:" in shown
    detail = daemon.json("show", tid)
    real = sorted(f["path"] for f in detail["files"] if not f["padding"])
    assert detail["id"] == tid and real == ["album/01.bin", "album/notes.txt"], detail["files"]
    assert detail["pieces"]["count"] == detail["pieces"]["have"] == info["piece_count"]

    assert daemon.cli("pause", prefix).stdout.startswith("paused album  [" + tid[:8] + "]")
    assert daemon.json("show", tid)["paused"] is True
    resumed = daemon.json("resume", prefix)
    assert resumed["paused"] is False and resumed["state"] != "paused"
    assert daemon.json("pause", tid)["paused"] is True
    assert daemon.cli("resume", tid).stdout.startswith("resumed album")

    stats = daemon.json("stats")
    assert stats["torrents"] == 1 and stats["downloaded"] >= 740_001
    text = daemon.cli("stats").stdout
    assert "torrents:     1" in text and f"api:          {daemon.url}" in text

    # Clear errors, a non-zero exit and nothing on stdout.
    unknown = "0123456789abcdef0123456789abcdef01234567"
    err = failing(daemon, "show", unknown)
    assert err.startswith("peer show: error: ") and "HTTP 404" in err and "not_found" in err, err
    assert "no torrent has an id starting with ffff" in failing(daemon, "pause", "ffff")
    assert "at least 4 characters" in failing(daemon, "resume", tid[:3])
    assert "not a torrent id" in failing(daemon, "rm", "album")
    nowhere = tmp_path / "no-daemon"
    p = run_peer("ls", "--state", nowhere, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (f"peer ls: error: no daemon: {nowhere}/api-address is missing; "
                                f"start one with `peer serve --state {nowhere}`"), p.stderr
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "api-address").write_text(f"http://127.0.0.212:{free_port('127.0.0.212')}\n")
    (stale / "api-token").write_text(daemon.token)
    p = run_peer("stats", "--state", stale, check=False)
    assert p.returncode == 1 and "connection refused" in p.stderr, p.stderr
    (stale / "api-address").write_text(daemon.url)
    (stale / "api-token").write_text("0" * 64)
    p = run_peer("ls", "--state", stale, check=False)
    assert p.returncode == 1 and "HTTP 401" in p.stderr, p.stderr

    # rm keeps the data; adding the .torrent file (uploaded) finds it complete; rm --delete-data deletes it.
    assert daemon.json("rm", prefix) == {"id": tid, "removed": True, "delete_data": False}
    assert daemon.json("ls") == {"torrents": []}
    assert tree_digest(daemon.downloads / "album") == tree_digest(src)
    out = daemon.cli("add", torrent, "--save-path", daemon.downloads).stdout
    assert out.startswith(f"added album  [{tid[:8]}]"), out
    wait_until("the re-added torrent to be checked",
               lambda: daemon.json("show", tid)["progress"] >= 1, 30, interval=0.5)
    assert daemon.cli("rm", tid, "--delete-data").stdout.startswith("removed album")
    wait_until("the data to be deleted", lambda: not (daemon.downloads / "album" / "01.bin").exists(), 15)
    print(f"CLI test: {time.monotonic() - t0:.1f}s")


def make_clip(tmp_path):
    """A 30 s VP8/Vorbis WebM (about 750 KB: some 23 pieces of 32 KiB) and a text file, in one folder."""
    assert shutil.which("ffmpeg"), "ffmpeg is missing (apt-get install ffmpeg; .ci/run installs it)"
    film = tmp_path / "src" / "film"
    film.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=duration=30:size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=30",
                    "-c:v", "libvpx", "-b:v", "800k", "-minrate", "600k", "-maxrate", "1M", "-deadline", "realtime",
                    "-cpu-used", "8", "-c:a", "libvorbis", str(film / "clip.webm")], check=True, timeout=120)
    (film / "readme.txt").write_text("a test clip\n")
    assert (film / "clip.webm").stat().st_size > 400_000  # testsrc compresses well: ~750 KB, ~23 pieces
    torrent = tmp_path / "film.torrent"
    run_peer("create", film, "-o", torrent, "--piece-length", "32K", "--no-date", "--quiet")
    return film, torrent


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        assert os.path.exists(path), f"{path} is missing (apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def unstale(action, timeout=10):
    """Runs action() again when the page replaced an element it held, at most `timeout` seconds. The detail view
    is rebuilt on every update of its torrent and after each change made in it (a priority's PUT answer arrives
    after the daemon has the change), so an element found a moment ago may be gone; action finds its own."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except StaleElementReferenceException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_web_ui_downloads_and_plays(tmp_path, procs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    t0 = time.monotonic()
    film, torrent = make_clip(tmp_path)
    # 256 KiB/s: the download takes a few seconds, so the page shows it moving.
    seed = lt_seed(procs, tmp_path, torrent, film.parent, "127.0.0.213", upload_limit=256 * 1024)
    link, info = magnet_of(torrent, x_pe=[seed])
    tid = info["id"]
    daemon = Daemon(procs, tmp_path, "127.0.0.214")
    code_link = wait_until("the login link on stderr",
                           lambda: re.search(r"http://\S+/login\?code=[^\s\"']+", daemon.log()), 10).group(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t_ready = time.monotonic()

    driver = chromium()
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        find = driver.find_element
        js = driver.execute_script

        # Without the cookie the page sends us to /login; a wrong token is refused in the page.
        driver.get(daemon.url + "/")
        wait_until("the redirect to /login", lambda: driver.current_url.split("?")[0].endswith("/login"), 10)
        wait_until("the login form", lambda: driver.find_elements(By.ID, "token-input"), 10)
        find(By.ID, "token-input").send_keys("f" * 64)
        find(By.ID, "login-button").click()
        wait_until("the wrong-token message", lambda: find(By.ID, "error").is_displayed(), 10)
        assert "not right" in find(By.ID, "error").text

        # The one-time link logs in; logging out and in again with the token works too.
        driver.get(code_link)
        wait_until("the torrent page", lambda: driver.find_elements(By.ID, "add-form"), 10)
        find(By.ID, "logout").click()
        wait_until("the login page", lambda: driver.find_elements(By.ID, "token-input"), 10)
        find(By.ID, "token-input").send_keys(daemon.token)
        find(By.ID, "login-button").click()
        wait_until("the torrent page", lambda: driver.find_elements(By.ID, "add-form"), 10)
        wait_until("the live events", lambda: find(By.ID, "live").text == "live", 10)

        # Add the magnet through the form and watch the bar fill from the live events.
        find(By.ID, "magnet-input").send_keys(link)
        find(By.ID, "add-button").click()
        row = f'.torrent[data-id="{tid}"]'
        wait_until("the torrent in the list", lambda: driver.find_elements(By.CSS_SELECTOR, row), 10)
        t_added = time.monotonic()
        bar = f"{row} .progress-bar"

        seen = set()

        def progress():
            errors = find(By.ID, "error")
            assert not errors.is_displayed(), errors.text
            seen.add(float(find(By.CSS_SELECTOR, bar).get_attribute("data-progress") or 0))
            return max(seen)
        wait_until("the progress bar to reach 1", lambda: progress() >= 1, 150, interval=0.2)
        t_done = time.monotonic()
        assert any(0 < p < 1 for p in seen), f"the bar never showed the download under way: {sorted(seen)}"
        assert find(By.CSS_SELECTOR, f"{row} .state").text.lower() in ("seeding", "paused")
        assert tree_digest(daemon.downloads / "film") == tree_digest(film)

        # The detail view: both files, a Play button for the WebM only.
        find(By.CSS_SELECTOR, row).click()
        wait_until("the file list", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#files tr.file")) == 2, 10)

        def play():
            buttons = driver.find_elements(By.CSS_SELECTOR, "#files .play-button")
            assert len(buttons) == 1
            file = buttons[0].find_element(By.XPATH, "ancestor::tr")
            index = file.get_attribute("data-index")
            assert index is not None and "clip.webm" in file.text
            buttons[0].click()
            return index
        index = unstale(play)

        video = wait_until("the video element", lambda: driver.find_elements(By.CSS_SELECTOR, "#player video"), 10)[0]
        assert video.get_attribute("src").endswith(f"/api/torrents/{tid}/files/{index}/stream")
        js("const v = arguments[0]; v.muted = true; v.play();", video)
        wait_until("playback to start", lambda: js("return arguments[0].currentTime", video) > 0.2, 20)
        first = js("return arguments[0].currentTime", video)
        time.sleep(3)
        second = js("return arguments[0].currentTime", video)
        assert js("return arguments[0].error", video) is None
        assert second - first >= 1.5, (first, second)
        assert js("return arguments[0].duration", video) > 25
        driver.set_window_size(1280, 1500)  # the player, the detail and the list in one picture
        driver.save_screenshot(str(ARTIFACTS / "web-ui-playing.png"))

        # A phone-sized window: nothing wider than the screen.
        driver.set_window_size(390, 844)
        time.sleep(0.5)
        assert js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        driver.save_screenshot(str(ARTIFACTS / "web-ui-phone.png"))
        driver.set_window_size(1280, 900)
        find(By.ID, "player-close").click()

        # A file's priority, pause and resume, then remove with its data, all through the page.
        readme = '#files tr.file[data-index="2"] select.file-priority'
        assert "readme.txt" in find(By.CSS_SELECTOR, '#files tr.file[data-index="2"]').text
        unstale(lambda: Select(find(By.CSS_SELECTOR, readme)).select_by_value("skip"))
        wait_until("the priority to be saved", lambda: [f["priority"] for f in daemon.json("show", tid)["files"]
                                                         if f["index"] == 2] == ["skip"], 10)
        assert unstale(lambda: Select(find(By.CSS_SELECTOR, readme)).first_selected_option.get_attribute("value")) \
            == "skip"
        unstale(lambda: find(By.ID, "pause-button").click())
        wait_until("the paused state", lambda: find(By.CSS_SELECTOR, f"{row} .state").text.lower() == "paused", 10)
        assert daemon.json("show", tid)["paused"] is True
        unstale(lambda: wait_until("the resume button", lambda: driver.find_elements(By.ID, "resume-button"), 10)[0]
                .click())
        wait_until("the torrent to run again", lambda: not daemon.json("show", tid)["paused"], 10)
        wait_until("the pause button", lambda: driver.find_elements(By.ID, "pause-button"), 10)
        unstale(lambda: find(By.ID, "delete-data").click())  # a rebuilt detail keeps the box ticked
        unstale(lambda: find(By.ID, "remove-button").click())
        alert = wait_until("the confirmation", lambda: driver.switch_to.alert, 5)
        assert "delete its data" in alert.text
        alert.accept()
        wait_until("the row to go", lambda: not driver.find_elements(By.CSS_SELECTOR, row), 10)
        assert find(By.ID, "empty").is_displayed() and not find(By.ID, "detail").is_displayed()
        wait_until("the data to be deleted", lambda: not (daemon.downloads / "film" / "clip.webm").exists(), 15)
        assert daemon.json("ls") == {"torrents": []}

        # A .torrent file chosen in the page is uploaded (no peers are known for it: it just waits).
        find(By.ID, "file-input").send_keys(str(torrent))
        wait_until("the uploaded torrent in the list", lambda: driver.find_elements(By.CSS_SELECTOR, row), 10)
        wait_until("its name", lambda: find(By.CSS_SELECTOR, f"{row} .name").text == "film", 10)
        assert [t["id"] for t in daemon.json("ls")["torrents"]] == [tid]
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "web-ui-failure.png"))
        (ARTIFACTS / "web-ui-failure.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()
    print(f"browser test: {time.monotonic() - t0:.1f}s in all; setup {t_ready - t0:.1f}s, "
          f"download {t_done - t_added:.1f}s, total with browser {time.monotonic() - t_ready:.1f}s")


def named_torrent(tmp_path, name, files, v1=False):
    """A torrent of a folder called `name` holding {file: size} (peer create; hybrid, or v1 only), and its
    `peer info`."""
    folder = tmp_path / "src" / name
    folder.mkdir(parents=True)
    for file, size in files.items():
        (folder / file).write_bytes(det_bytes(size, name + file))
    torrent = tmp_path / (re.sub(r"[^A-Za-z0-9.]+", "_", name) + ".torrent")
    run_peer("create", folder, "-o", torrent, "--piece-length", "32K", "--no-date", "--quiet", *(["--v1"] if v1 else []))
    return torrent, json.loads(run_peer("info", torrent, "--json").stdout)


def test_web_ui_search_and_add(tmp_path, procs):
    """The search box against the daemon's keyword index: a torrent it knows is found by words of its name and
    listed as verified; a name is shown as text, never as HTML; a query without hits and one without words say
    so; after the torrent is removed (it stays in the index), its Add button adds the magnet link in one click."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    t0 = time.monotonic()
    sintel, sintel_info = named_torrent(tmp_path, "Sintel.2010.1080p", {"sintel.mkv": 1_500_000, "sintel.srt": 2_000})
    hostile = "Other.Thing <img src=x onerror=document.title='pwned'> & <b>bold &amp;"  # no /: a file name
    other, other_info = named_torrent(tmp_path, hostile, {"thing.bin": 50_000})
    assert other_info["name"] == hostile
    sid = sintel_info["id"]
    daemon = Daemon(procs, tmp_path, "127.0.0.207")
    # Paused and without their data: the daemon indexes every torrent whose metadata it holds.
    for t in (sintel, other):
        daemon.cli("add", t, "--paused")
    wait_until("both torrents in the index", lambda: daemon.json("index")["rows"] == 2, 10)
    code_link = wait_until("the login link on stderr",
                           lambda: re.search(r"http://\S+/login\?code=[^\s\"']+", daemon.log()), 10).group(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t_ready = time.monotonic()

    driver = chromium()
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        find = driver.find_element
        js = driver.execute_script

        driver.get(code_link)
        wait_until("the torrent page", lambda: driver.find_elements(By.ID, "search-form"), 10)
        wait_until("the live events", lambda: find(By.ID, "live").text == "live", 10)
        wait_until("the index statistics", lambda: find(By.ID, "index-stats").text == "index: 2 torrents", 10)
        assert find(By.CSS_SELECTOR, 'label[for="search-input"]').text == "Search"
        assert not find(By.ID, "search-results").is_displayed()

        def search(words, click=False):
            """Types the words and submits (Enter, or the button); waits for this search's answer."""
            before = int(find(By.ID, "search").get_attribute("data-answered") or 0)
            box = find(By.ID, "search-input")
            box.clear()
            box.send_keys(words)
            if click:
                find(By.ID, "search-button").click()
            else:
                box.send_keys(Keys.ENTER)
            wait_until(f"the answer to {words!r}",
                       lambda: int(find(By.ID, "search").get_attribute("data-answered") or 0) > before, 10)
            assert not find(By.ID, "error").is_displayed(), find(By.ID, "error").text
            return driver.find_elements(By.CSS_SELECTOR, "#search-hits tr.hit")

        def cells(row):
            return {c: row.find_element(By.CSS_SELECTOR, f"td.{c}").text
                    for c in ("name", "size", "seeders", "sources", "verification")}

        # Found by words of its name, with what the index knows; it is in the list, so it shows as added.
        hits = search("sintel 2010")
        assert [h.get_attribute("data-info-hash") for h in hits] == [sid]
        assert cells(hits[0]) == {"name": "Sintel.2010.1080p · 2 files", "size": "1.43 MiB", "seeders": "?",
                                  "sources": "added", "verification": "verified"}, cells(hits[0])
        button = hits[0].find_element(By.CSS_SELECTOR, "button.hit-add")
        assert button.text == "Added" and not button.is_enabled()
        assert find(By.ID, "search-status").text.startswith("1 result for sintel 2010")
        assert not find(By.ID, "search-error").is_displayed()

        # A name from the network is text: no element comes out of it, no handler runs.
        hits = search("other thing", click=True)
        assert [h.get_attribute("data-info-hash") for h in hits] == [other_info["id"]]
        assert hits[0].find_element(By.CSS_SELECTOR, ".hit-name").text == hostile
        assert driver.find_elements(By.CSS_SELECTOR, "#search-hits img, #search-hits b") == []
        assert driver.title == "Peer"
        driver.save_screenshot(str(ARTIFACTS / "web-ui-search.png"))

        # Words nothing has: no rows, and it says so.
        assert search("zyzzyva quuxplex") == []
        assert not find(By.ID, "search-results").is_displayed()
        assert find(By.ID, "search-status").text == "Nothing found for zyzzyva quuxplex."

        # No words at all: the API's 400 message, in the search section.
        assert search("*** !!! ...") == []
        message = find(By.ID, "search-error")
        assert message.is_displayed() and "no words to search for" in message.text, message.text
        assert not find(By.ID, "search-results").is_displayed()

        # Removed, the torrent stays in the index (no longer pinned): search, then add it back with one click.
        daemon.cli("rm", sid)
        row = f'.torrent[data-id="{sid}"]'
        wait_until("the row to go", lambda: not driver.find_elements(By.CSS_SELECTOR, row), 10)
        hits = search("1080p sintel")
        assert not find(By.ID, "search-error").is_displayed()
        assert [h.get_attribute("data-info-hash") for h in hits] == [sid]
        assert cells(hits[0])["verification"] == "verified"
        button = hits[0].find_element(By.CSS_SELECTOR, "button.hit-add")
        assert button.text == "Add" and button.is_enabled()
        assert button.accessible_name == "Add Sintel.2010.1080p"  # what a screen reader says
        button.click()
        wait_until("the button to say Added",
                   lambda: find(By.CSS_SELECTOR, f'#search-hits button[data-info-hash="{sid}"]').text == "Added", 10)
        assert not find(By.CSS_SELECTOR, f'#search-hits button[data-info-hash="{sid}"]').is_enabled()
        wait_until("the torrent in the list", lambda: driver.find_elements(By.CSS_SELECTOR, row), 10)
        assert not find(By.ID, "error").is_displayed(), find(By.ID, "error").text
        listed = daemon.json("ls")["torrents"]
        assert sorted(t["id"] for t in listed) == sorted([sid, other_info["id"]]), listed
        assert daemon.json("show", sid)["magnet"].startswith(f"magnet:?xt=urn:btih:{sid}&dn=Sintel.2010.1080p")

        # A phone-sized window: the results fit; Clear hides them.
        driver.set_window_size(390, 844)
        time.sleep(0.5)
        assert js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        driver.save_screenshot(str(ARTIFACTS / "web-ui-search-phone.png"))
        driver.set_window_size(1280, 900)
        find(By.ID, "search-clear").click()
        assert not find(By.ID, "search-results").is_displayed()
        assert driver.find_elements(By.CSS_SELECTOR, "#search-hits tr") == []
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "web-ui-search-failure.png"))
        (ARTIFACTS / "web-ui-search-failure.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()
    print(f"search test: {time.monotonic() - t0:.1f}s in all; setup {t_ready - t0:.1f}s, "
          f"browser {time.monotonic() - t_ready:.1f}s")


def test_web_ui_channels(tmp_path, procs, monkeypatch):
    """Issue 15's channels page between daemons on a private DHT (A, 127.0.4.1, its hub; B, 127.0.4.2; all check
    their subscriptions every 3 s). C (127.0.4.3) is only a third DHT node: with two, A's pointer is stored at B
    alone, where B's own lookups never look, and B never finds it. In A's page: make a channel, post to it, add a torrent A seeds. In B's:
    a bad link's error; subscribe by pasting A's link; then A posts a reply and adds a second torrent (API), and
    B's open page shows them, threaded and with their licences, without a reload; one click downloads the
    torrent from A. Back on B's list, a new post of A's shows as unread, live, and opening the channel reads it."""
    import base64

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from test_channels import daemons

    t0 = time.monotonic()
    monkeypatch.delenv("PEER_NO_DHT")
    (a, b, _), _ = daemons(procs, tmp_path, ["127.0.4.1", "127.0.4.2", "127.0.4.3"], poll=3)

    def seeded(name, size):
        """A torrent of a folder in A's download folder, added to A (which finds it complete and seeds it)."""
        folder = a.downloads / name
        folder.mkdir(parents=True)
        (folder / "part.bin").write_bytes(det_bytes(size, name))
        (folder / "about.txt").write_text(f"{name}, for the channels test\n")
        torrent = tmp_path / f"{name}.torrent"
        run_peer("create", folder, "-o", torrent, "--piece-length", "32K", "--no-date", "--quiet")
        t = a.ok("POST", "/api/torrents", {"torrent": base64.b64encode(torrent.read_bytes()).decode(),
                                           "save_path": str(a.downloads)}, expect=201)
        return a.wait(t["id"], lambda x: x["progress"] == 1, timeout=30, what=f"A's check of {name}")["id"]
    trailer = seeded("Open.Film.Trailer", 60_000)
    film = seeded("Open.Film.2024", 300_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t_ready = time.monotonic()

    driver = chromium()
    try:
        driver.set_page_load_timeout(20)
        driver.set_script_timeout(10)
        find = driver.find_element
        js = driver.execute_script

        def items():
            """The open channel's items as the page shows them, read in one go (a refresh replaces them)."""
            return js("""return [...document.querySelectorAll('#channel-items li.item')].map((li) => ({
                id: li.dataset.id, kind: li.dataset.kind, depth: Number(li.dataset.depth),
                title: li.querySelector('.item-title').textContent, license: li.querySelector('.license').textContent,
                body: li.querySelector('.item-body')?.textContent ?? null, fresh: li.classList.contains('fresh'),
                indent: parseFloat(getComputedStyle(li).marginLeft),
                button: li.querySelector('.item-download')?.textContent ?? null}))""")

        def item(title):
            return next((i for i in items() if i["title"] == title), None)

        def no_error():
            assert not find(By.ID, "error").is_displayed(), find(By.ID, "error").text

        def log_in(d):
            driver.get(f"http://{d.addr}:{d.port}/login?code={d.code}")
            wait_until("the torrent page", lambda: driver.find_elements(By.ID, "add-form"), 10)
            wait_until("the live events", lambda: find(By.ID, "live").text == "live", 10)
            find(By.ID, "nav-channels").click()
            wait_until("the channels page", lambda: find(By.ID, "subscribe-form").is_displayed(), 10)
            assert not find(By.ID, "add-form").is_displayed()

        # A's page: make a channel, post to it, add a torrent A holds.
        log_in(a)
        assert find(By.ID, "mine-empty").is_displayed() and find(By.ID, "subscriptions-empty").is_displayed()
        find(By.CSS_SELECTOR, "#create summary").click()
        find(By.ID, "create-name").send_keys("films")
        find(By.ID, "create-title").send_keys("Open films")
        find(By.ID, "create-description").send_keys("Films anyone may share.")
        find(By.ID, "create-button").click()
        wait_until("the new channel", lambda: find(By.ID, "channel").is_displayed()
                   and find(By.ID, "channel-title").text == "Open films", 10)
        no_error()
        (mine,) = a.ok("GET", "/api/channels")
        assert mine["mine"] and find(By.ID, "channel").get_attribute("data-id") == mine["id"]
        link = find(By.ID, "channel-link").get_attribute("value")
        assert link == mine["link"] and link.startswith("magnet:?xs=urn:btpk:")
        # The head comes from the create answer, the write form with the detail fetched after it.
        wait_until("the write form of one's own channel", lambda: find(By.ID, "channel-write").is_displayed(), 10)
        assert find(By.ID, "channel-remove").text == "Delete"

        find(By.ID, "post-title").send_keys("Welcome")
        find(By.ID, "post-body").send_keys("First post, from the page.\nTwo lines.")
        find(By.ID, "post-license").send_keys("CC0-1.0")
        find(By.ID, "post-button").click()
        # The first revision is published once A has joined its DHT: A's bootstrap address (:1) never answers, so
        # that takes some 20 s after A starts; the button says "Posting…" meanwhile.
        wait_until("the post in A's page", lambda: item("Welcome"), 45)
        no_error()
        assert find(By.ID, "post-title").get_attribute("value") == ""
        unstale(lambda: Select(find(By.ID, "item-torrent")).select_by_value(trailer))
        find(By.ID, "item-license").send_keys("CC-BY-4.0")
        find(By.ID, "item-button").click()
        wait_until("the torrent item in A's page", lambda: item("Open.Film.Trailer"), 10)
        no_error()
        assert item("Open.Film.Trailer")["license"] == "Licence: CC-BY-4.0"
        wait_until("A's options to mark it as in the channel", lambda: js(
            "return document.querySelector('#item-torrent option[value=\"' + arguments[0] + '\"]').disabled", trailer),
            10)
        driver.save_screenshot(str(ARTIFACTS / "web-ui-channels-mine.png"))
        got = a.ok("GET", f"/api/channels/{mine['id']}")
        assert got["channel"]["seq"] == 2 and [i["title"] for i in got["items"]] == ["Welcome", "Open.Film.Trailer"]
        welcome = got["items"][0]
        assert welcome["license"] == "CC0-1.0" and welcome["body"] == "First post, from the page.\nTwo lines."
        t_a = time.monotonic()

        # B's page: a link that is not one is refused with the API's message; A's link subscribes.
        log_in(b)
        find(By.ID, "subscribe-input").send_keys("magnet:?xt=urn:btih:nonsense")
        find(By.ID, "subscribe-button").click()
        wait_until("the error", lambda: find(By.ID, "error").is_displayed(), 10)
        assert "HTTP 400" in find(By.ID, "error-text").text, find(By.ID, "error-text").text
        find(By.ID, "error-close").click()
        box = find(By.ID, "subscribe-input")
        box.clear()
        box.send_keys(link)
        find(By.ID, "subscribe-button").click()
        t_sub = time.monotonic()
        wait_until("B's view of the channel", lambda: find(By.ID, "channel").is_displayed()
                   and find(By.ID, "channel").get_attribute("data-id") == mine["id"], 10)
        no_error()
        assert find(By.ID, "channel-remove").text == "Unsubscribe" and not find(By.ID, "channel-write").is_displayed()
        js("window.peerTestMark = 'no reload'")  # gone if the page is ever loaded again
        wait_until("the first revision in B's page", lambda: item("Welcome") and item("Open.Film.Trailer"), 60)
        t_first = time.monotonic()
        assert find(By.ID, "channel-title").text == "Open films"
        shown = item("Welcome")
        assert shown["license"] == "Licence: CC0-1.0" and shown["body"] == "First post, from the page.\nTwo lines."
        assert shown["depth"] == 0 and shown["kind"] == "post"
        assert item("Open.Film.Trailer")["button"] == "Download"

        # A posts a reply (with markup in it, which must stay text), then adds a torrent; B's page shows each.
        # (One at a time: a revision published while B fetches the one before leaves B stuck on that fetch.)
        reply_title = "Re: Welcome <b>bold?</b>"
        a.ok("POST", f"/api/channels/{mine['id']}/posts",
             {"title": reply_title, "body": "A reply <img src=x onerror=document.title='pwned'>",
              "reply_to": [welcome["id"]], "license": "CC-BY-SA-4.0"}, expect=201)
        t_post = time.monotonic()
        wait_until("the reply in B's open page", lambda: item(reply_title), 60, interval=0.1)
        t_reply = time.monotonic()
        a.ok("POST", f"/api/channels/{mine['id']}/items", {"id": film, "license": "CC-BY-4.0"}, expect=201)
        t_item = time.monotonic()
        wait_until("the new torrent in B's open page", lambda: item("Open.Film.2024"), 60, interval=0.1)
        t_torrent = time.monotonic()
        assert js("return window.peerTestMark") == "no reload"
        no_error()
        shown = items()
        titles = [i["title"] for i in shown]
        assert titles.index(reply_title) == titles.index("Welcome") + 1, titles  # the reply under its post
        reply, root = item(reply_title), item("Welcome")
        assert reply["depth"] == 1 and reply["indent"] > root["indent"], (reply, root)
        assert reply["license"] == "Licence: CC-BY-SA-4.0" and reply["fresh"]
        assert driver.find_elements(By.CSS_SELECTOR, "#channel-items b, #channel-items img") == []
        assert driver.title == "Peer"
        assert item("Open.Film.2024")["license"] == "Licence: CC-BY-4.0"
        driver.save_screenshot(str(ARTIFACTS / "web-ui-channels.png"))

        # One click downloads the torrent (from A, found through the DHT); the button follows it.
        button = f'#channel-items .item-download[data-id="{film}"]'
        unstale(lambda: find(By.CSS_SELECTOR, button).click())
        done = b.wait(film, lambda x: x["progress"] == 1, timeout=120, what="B's download of the channel's torrent")
        t_done = time.monotonic()
        assert done["name"] == "Open.Film.2024"
        assert tree_digest(b.downloads / "Open.Film.2024") == tree_digest(a.downloads / "Open.Film.2024")
        wait_until("the button to say Downloaded", lambda: item("Open.Film.2024")["button"] == "Downloaded", 10)
        assert item("Open.Film.Trailer")["button"] == "Download"
        no_error()

        # Seen is read: B's daemon has nothing unread; then, on the list, A's next post shows as unread, live.
        wait_until("B's items marked read", lambda: b.ok("GET", "/api/channels")[0]["unread"] == 0, 10)
        find(By.ID, "channel-back").click()
        row = f'.channel-row[data-id="{mine["id"]}"]'
        wait_until("the subscription in the list", lambda: driver.find_elements(By.CSS_SELECTOR, f"#subscriptions {row}"),
                   10)
        assert not find(By.CSS_SELECTOR, f"{row} .unread").is_displayed()
        a.ok("POST", f"/api/channels/{mine['id']}/posts", {"title": "Third", "body": "Unread until opened."}, expect=201)
        wait_until("the unread count", lambda: unstale(
            lambda: find(By.CSS_SELECTOR, f"{row} .unread").get_attribute("data-count")) == "1", 60)
        assert find(By.ID, "nav-unread").text == "1"
        unstale(lambda: find(By.CSS_SELECTOR, f"{row} .channel-name").click())
        wait_until("the new post, marked new", lambda: (item("Third") or {}).get("fresh"), 10)
        wait_until("the count to drop", lambda: not find(By.ID, "nav-unread").is_displayed(), 10)
        assert b.ok("GET", "/api/channels")[0]["unread"] == 0
        assert js("return window.peerTestMark") == "no reload"

        # A phone-sized window: nothing wider than the screen.
        driver.set_window_size(390, 844)
        time.sleep(0.5)
        assert js("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        driver.save_screenshot(str(ARTIFACTS / "web-ui-channels-phone.png"))
        no_error()
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "web-ui-channels-failure.png"))
        (ARTIFACTS / "web-ui-channels-failure.html").write_text(driver.page_source)
        raise
    finally:
        driver.quit()
    print(f"channels UI test: {time.monotonic() - t0:.1f}s in all; setup {t_ready - t0:.1f}s, A's page "
          f"{t_a - t_ready:.1f}s, subscribe to first items {t_first - t_sub:.1f}s, A's post to B's page "
          f"{t_reply - t_post:.1f}s (torrent item {t_torrent - t_item:.1f}s), download {t_done - t_torrent:.1f}s")


def test_web_ui_categories_and_tags(tmp_path, procs):
    """Torrents under categories and tags in the web UI: the list filters by either; a torrent added from the page
    gets the category and tags typed beside the link; the detail view files a torrent under another category with
    other tags; the rows show both."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    music, music_info = named_torrent(tmp_path, "Album", {"01.flac": 40_000})
    doc, doc_info = named_torrent(tmp_path, "Notes", {"notes.txt": 3_000})
    daemon = Daemon(procs, tmp_path, "127.0.0.216")
    daemon.cli("add", music, "--paused", "--category", "music", "--tag", "flac")
    daemon.cli("add", doc, "--paused")
    link, film_info = magnet_of(named_torrent(tmp_path, "Film", {"film.webm": 10_000})[0])

    def summary(id):
        return next(t for t in daemon.json("ls")["torrents"] if t["id"] == id)

    driver = chromium()
    try:
        driver.set_page_load_timeout(20)
        find = driver.find_element
        driver.get(wait_until("the login link on stderr", lambda: re.search(r"http://\S+/login\?code=[^\s\"']+",
                                                                            daemon.log()), 10).group(0))
        wait_until("the live events", lambda: find(By.ID, "live").text == "live", 10)

        def listed():
            return sorted(r.find_element(By.CSS_SELECTOR, ".name").text
                          for r in driver.find_elements(By.CSS_SELECTOR, "#torrents li.torrent"))
        wait_until("both rows and the filters", lambda: listed() == ["Album", "Notes"] and find(By.ID, "filters")
                   .is_displayed(), 10)
        row = find(By.CSS_SELECTOR, f'li.torrent[data-id="{music_info["id"]}"]')
        assert [b.text for b in row.find_elements(By.CSS_SELECTOR, ".badge")] == ["music", "#flac"]

        category, tag = Select(find(By.ID, "filter-category")), Select(find(By.ID, "filter-tag"))
        category.select_by_visible_text("music")
        wait_until("only the music row", lambda: listed() == ["Album"], 5)
        assert find(By.ID, "filter-count").text == "1 of 2"
        category.select_by_visible_text("none")
        wait_until("only the row without a category", lambda: listed() == ["Notes"], 5)
        category.select_by_visible_text("all")
        tag.select_by_visible_text("flac")
        wait_until("only the flac row", lambda: listed() == ["Album"], 5)
        tag.select_by_visible_text("all")
        wait_until("both rows again", lambda: listed() == ["Album", "Notes"], 5)

        # Added from the page with a category and tags.
        find(By.ID, "add-paused").click()
        find(By.ID, "add-category").send_keys("films")
        find(By.ID, "add-tags").send_keys("new, hd")
        find(By.ID, "magnet-input").send_keys(link)
        find(By.ID, "add-button").click()
        film = wait_until("the film added", lambda: next((t for t in daemon.json("ls")["torrents"]
                                                          if t["id"] == film_info["info_hash_v1"]), None), 10)
        assert (film["category"], film["tags"], film["paused"]) == ("films", ["new", "hd"], True)
        wait_until("films among the category filter's choices",
                   lambda: "films" in [o.text for o in Select(find(By.ID, "filter-category")).options], 5)

        # Filed again from the detail view.
        find(By.CSS_SELECTOR, f'li.torrent[data-id="{doc_info["id"]}"]').click()
        wait_until("the label form", lambda: driver.find_elements(By.ID, "label-form"), 10)
        unstale(lambda: find(By.ID, "label-category").clear())
        unstale(lambda: find(By.ID, "label-category").send_keys("docs"))
        unstale(lambda: find(By.ID, "label-tags").send_keys("work, 2026"))
        unstale(lambda: find(By.ID, "label-save").click())
        wait_until("the notes filed under docs", lambda: (summary(doc_info["id"])["category"],
                                                          summary(doc_info["id"])["tags"]) == ("docs", ["work", "2026"]),
                   10)
        wait_until("the row's badges", lambda: [b.text for b in find(
            By.CSS_SELECTOR, f'li.torrent[data-id="{doc_info["id"]}"]').find_elements(By.CSS_SELECTOR, ".badge")]
            == ["docs", "#work", "#2026"], 10)
        assert not find(By.ID, "error").is_displayed(), find(By.ID, "error").text
    finally:
        driver.quit()
