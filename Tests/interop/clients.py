"""Drivers for the other clients and services in the interop tests: Transmission 3.00 (transmission-daemon
driven by transmission-remote), aria2c, Debian's opentracker, and pairs of network namespaces.

Transmission 3.00 connects to no 127.x peer, so its tests put each side in a network namespace of its own,
joined by a veth pair (`NetnsPair`); every process of those tests runs under `ip netns exec` (which execs the
command, so the Popen's pid is the command's own and signals reach it). aria2 and opentracker also run on
127.0.0.x directly (`ns=None`).
"""
import itertools
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import time

_pair_counter = itertools.count(1)


def in_ns(ns, args):
    """args, run inside network namespace ns (None: here)."""
    args = [str(a) for a in args]
    return ["ip", "netns", "exec", ns, *args] if ns else args


def add_namespaces(names, created):
    """Adds each network namespace with its loopback up, appending it to `created` (for the caller's close())."""
    for ns in names:
        NetnsPair._ip("netns", "add", ns)
        created.append(ns)
        NetnsPair._ip("-n", ns, "link", "set", "lo", "up")


def veth(a, dev_a, b, dev_b):
    """A veth pair from namespace a (device dev_a) to namespace b (dev_b)."""
    NetnsPair._ip("link", "add", dev_a, "netns", a, "type", "veth", "peer", "name", dev_b, "netns", b)


def address(ns, dev, cidr):
    NetnsPair._ip("-n", ns, "addr", "add", cidr, "dev", dev)
    NetnsPair._ip("-n", ns, "link", "set", dev, "up")


class Namespaces:
    """Network namespaces a test made (`created`); `close()` deletes them (and the veth pairs in them). Safe to
    call twice and after a failed `__init__`. Commands in namespaces get a minute: while the kernel tears down
    the namespaces of a test just ended, `ip netns exec` and `nft` once took more than 15 s to start."""
    created = ()

    def close(self):
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)
        self.created = []


class NetnsPair(Namespaces):
    """Two network namespaces joined by a veth pair: side a is 10.99.K.1, side b is 10.99.K.2 (/24), each with
    its own loopback up. Names hold this process's pid and a counter, so that tests (and concurrent runs) never
    share one. `close()` deletes both namespaces (which removes the veth pair with them); it is safe to call
    twice and after a failed `__init__`."""

    def __init__(self):
        k = next(_pair_counter)
        tag = f"{os.getpid()}x{k}"
        self.a, self.b = f"peertest-{tag}-a", f"peertest-{tag}-b"
        self.veth_a, self.veth_b = f"pv{tag}a"[:15], f"pv{tag}b"[:15]
        net = 10 + k % 240
        self.addr_a, self.addr_b = f"10.99.{net}.1", f"10.99.{net}.2"
        self.created = []
        try:
            add_namespaces((self.a, self.b), self.created)
            veth(self.a, self.veth_a, self.b, self.veth_b)
            for ns, dev, addr in ((self.a, self.veth_a, self.addr_a), (self.b, self.veth_b, self.addr_b)):
                address(ns, dev, f"{addr}/24")
            self._wait_reachable()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _ip(*args):
        p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"ip {' '.join(args)}: {p.stderr.strip()}")

    def _wait_reachable(self, timeout=10):
        """Until both ends of the veth pair report LOWER_UP (carrier)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [subprocess.run(["ip", "-n", ns, "link", "show", "dev", dev], capture_output=True, text=True,
                                     timeout=5).stdout for ns, dev in ((self.a, self.veth_a), (self.b, self.veth_b))]
            if all("LOWER_UP" in s for s in states):
                return
            time.sleep(0.05)
        raise AssertionError(f"the veth pair {self.veth_a}/{self.veth_b} never came up")



class RoutedPair(Namespaces):
    """Three network namespaces in a row, a - r - b, joined by two veth pairs, r forwarding between them: side a is
    10.98.K.1 (r 10.98.K.254), side b 10.97.K.2 (r 10.97.K.254). Shaping r's device towards b (`r_to_b`) makes a
    bottleneck in the middle of the path, as a home router's uplink is: a qdisc on the sender's own device would
    hold TCP back with its small-queue limit (TSQ) and not UDP. `close()` deletes the namespaces."""

    def __init__(self):
        k = next(_pair_counter)
        tag = f"{os.getpid()}x{k}"
        self.a, self.r, self.b = (f"peertest-{tag}-{x}" for x in "arb")
        self.a_dev, self.r_to_a = f"ra{tag}"[:15], f"rr{tag}a"[:15]
        self.b_dev, self.r_to_b = f"rb{tag}"[:15], f"rr{tag}b"[:15]
        net = 10 + k % 240
        self.addr_a, self.addr_b = f"10.98.{net}.1", f"10.97.{net}.2"
        self.created = []
        ip = NetnsPair._ip
        try:
            add_namespaces((self.a, self.r, self.b), self.created)
            veth(self.a, self.a_dev, self.r, self.r_to_a)
            veth(self.b, self.b_dev, self.r, self.r_to_b)
            for ns, dev, addr in ((self.a, self.a_dev, f"{self.addr_a}/24"), (self.r, self.r_to_a, f"10.98.{net}.254/24"),
                                  (self.b, self.b_dev, f"{self.addr_b}/24"), (self.r, self.r_to_b, f"10.97.{net}.254/24")):
                address(ns, dev, addr)
            ip("-n", self.a, "route", "add", "default", "via", f"10.98.{net}.254")
            ip("-n", self.b, "route", "add", "default", "via", f"10.97.{net}.254")
            subprocess.run(in_ns(self.r, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]), check=True, timeout=60)
            deadline = time.monotonic() + 10
            while subprocess.run(in_ns(self.a, ["ping", "-c", "1", "-W", "1", self.addr_b]),
                                 capture_output=True, timeout=60).returncode != 0:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.addr_a} never reached {self.addr_b} through the router namespace")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise



def listening(ns, host, port, proto="t"):
    """Whether something listens on host:port (TCP, or UDP with proto="u") in namespace ns."""
    p = subprocess.run(in_ns(ns, ["ss", "-Hln" + proto, "src", f"{host}:{port}"]), capture_output=True, text=True,
                       timeout=10)
    return bool(p.stdout.strip())


def wait_listening(ns, host, port, proc=None, timeout=30, proto="t"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(ns, host, port, proto):
            return
        if proc is not None and proc.p.poll() is not None:
            break
        time.sleep(0.1)
    log = ""
    if proc is not None:
        proc.log.seek(0)
        log = proc.log.read()
    raise AssertionError(f"nothing listens on {host}:{port}; output:\n{log}")


class Opentracker:
    """Debian's opentracker (HTTP and UDP on one port) on host:port, in namespace ns, serving only the
    whitelisted info-hashes (40 hex digits: v1, or the truncated v2). It refuses to stay root and chroots to
    its folder, so the folder must be readable by `nobody`."""

    def __init__(self, procs, log, hashes, host, port=6969, ns=None):
        self.host, self.port, self.ns = host, port, ns
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="peer-ot-", dir="/tmp"))
        try:
            self.folder.chmod(0o755)
            (self.folder / "wl.txt").write_text("".join(h + "\n" for h in hashes))
            (self.folder / "wl.txt").chmod(0o644)
            self.proc = procs(in_ns(ns, ["opentracker", "-i", host, "-p", port, "-P", port, "-d", self.folder,
                                         "-u", "nobody", "-w", "wl.txt"]), log)
            wait_listening(ns, host, port, self.proc, timeout=10)
            wait_listening(ns, host, port, self.proc, timeout=10, proto="u")
        except BaseException:
            self.close()
            raise

    def url(self, scheme):
        return (f"udp://{self.host}:{self.port}" if scheme == "udp"
                else f"http://{self.host}:{self.port}/announce")

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)


class Transmission:
    """transmission-daemon 3.00 with one torrent, in namespace ns, its peer socket on addr:port, its RPC on the
    namespace's own 127.0.0.1 (reached with `ip netns exec … transmission-remote`). DHT, LPD, PEX, uTP,
    port forwarding and speed limits are off; encryption is 'prefer plain'."""

    STATE = re.compile(r"^\s*State:\s*(.+)$", re.M)
    PERCENT = re.compile(r"^\s*Percent Done:\s*([\d.]+|nan)%", re.M)

    def __init__(self, procs, workdir, ns, addr, port=51413, rpc=9091):
        self.ns, self.addr, self.port, self.rpc = ns, addr, port, rpc
        self.cfg = pathlib.Path(workdir) / "transmission"
        self.cfg.mkdir(parents=True)
        import json
        (self.cfg / "settings.json").write_text(json.dumps({
            "alt-speed-enabled": False, "speed-limit-down-enabled": False, "speed-limit-up-enabled": False,
            "bind-address-ipv4": addr, "bind-address-ipv6": "::1",
            "blocklist-enabled": False, "cache-size-mb": 4,
            "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
            "port-forwarding-enabled": False, "encryption": 0,
            "incomplete-dir-enabled": False, "rename-partial-files": False,
            "peer-port": port, "peer-port-random-on-start": False,
            "peer-limit-global": 200, "peer-limit-per-torrent": 50,
            "ratio-limit-enabled": False, "idle-seeding-limit-enabled": False,
            "rpc-enabled": True, "rpc-bind-address": "127.0.0.1", "rpc-port": rpc,
            "rpc-authentication-required": False, "rpc-whitelist-enabled": True, "rpc-whitelist": "127.0.0.1",
            "rpc-host-whitelist-enabled": False,
            "start-added-torrents": True, "watch-dir-enabled": False, "message-level": 2,
            "preallocation": 1, "queue-stalled-enabled": False, "download-queue-enabled": False,
            "seed-queue-enabled": False, "scrape-paused-torrents-enabled": False,
            "download-dir": str(pathlib.Path(workdir) / "tr-default"),
        }, indent=1))
        self.proc = procs(in_ns(ns, ["transmission-daemon", "-f", "-g", self.cfg]), pathlib.Path(workdir) / "tr.log")
        deadline = time.monotonic() + 20
        while self.remote("-l", check=False).returncode != 0:
            if time.monotonic() > deadline or self.proc.p.poll() is not None:
                raise AssertionError(f"transmission-daemon never answered RPC:\n{self.log()}")
            time.sleep(0.2)

    def log(self):
        self.proc.log.seek(0)
        return self.proc.log.read()

    def remote(self, *args, check=True):
        p = subprocess.run(in_ns(self.ns, ["transmission-remote", f"127.0.0.1:{self.rpc}", *args]),
                           capture_output=True, text=True, timeout=20)
        if check and p.returncode != 0:
            raise AssertionError(f"transmission-remote {' '.join(map(str, args))}: {p.stdout}{p.stderr}")
        return p

    def add(self, torrent, folder):
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        out = self.remote("-a", torrent, "-w", folder).stdout
        assert "success" in out, out

    def info(self):
        return self.remote("-t", "1", "-i").stdout

    def status(self):
        text = self.info()
        state = self.STATE.search(text)
        pct = self.PERCENT.search(text)
        return (state.group(1).strip() if state else "?"), (pct.group(1) if pct else "?"), text

    def wait_complete(self, timeout, other=None, stall=25):
        """Until 100% verified and seeding (or idle/finished). Fails early when nothing moves for stall seconds,
        or when other (a Proc: the Peer side) exits."""
        last = {}

        def done():
            state, pct, text = self.status()
            last["text"] = text
            if self.proc.p.poll() is not None:
                raise AssertionError(f"transmission-daemon exited:\n{self.log()[-3000:]}")
            if other is not None and other.p.poll() is not None:
                other.log.seek(0)
                raise AssertionError(f"the Peer side exited early:\n{other.log.read()[-3000:]}\n{text}")
            return pct == "100" and state in ("Seeding", "Idle", "Finished")

        def progress():
            return re.findall(r"^\s*(?:State|Have|Uploaded):.*$", last.get("text", ""), re.M)

        wait_done(done, progress, "Transmission", timeout, stall,
                  details=lambda: f"{last.get('text', '')}\n--- daemon log:\n{self.log()[-3000:]}")
        return last["text"]

    def wait_announced(self, timeout=20):
        """Until the tracker has answered Transmission's first announce."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.remote("-t", "1", "-it").stdout
            if "Got a list of" in text:
                return
            time.sleep(0.2)
        raise AssertionError(f"Transmission never got an answer from the tracker:\n{text}")

    def wait_known(self, timeout=20):
        """Until the torrent is added and neither queued for nor in a data check."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state, _, text = self.status()
            if state not in ("?", "Will Verify", "Verifying", "Queued"):
                return text
            time.sleep(0.1)
        raise AssertionError(f"Transmission never started the torrent:\n{self.info()}")

    def stop(self):
        """RPC --exit (so it announces 'stopped' and closes its files), then the Proc's SIGTERM/SIGKILL."""
        if self.proc.p.poll() is None:
            self.remote("--exit", check=False)
            try:
                self.proc.p.wait(10)
            except subprocess.TimeoutExpired:
                pass


ARIA2_COMMON = ["--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--disable-ipv6=true",
                "--summary-interval=0", "--show-console-readout=false", "--console-log-level=notice",
                "--file-allocation=none", "--bt-save-metadata=false", "--auto-save-interval=0"]


def aria2_cmd(role, source, folder, addr, port, timeout, dht_port=None, dht_file=None):
    """aria2c as a seeder (serves folder until SIGTERM, without checking it first) or a leecher (exits 0 once
    complete, without seeding), every socket bound to addr (--interface), peers accepted on port. source is a
    .torrent or a magnet link.

    aria2 1.36 announces to udp:// trackers only through its DHT socket ("udp is not supported yet" otherwise):
    with dht_port, the DHT is on (on addr:dht_port, with a routing table file of the test's own and no
    bootstrap node, so it talks to nobody), else off."""
    args = ["aria2c", f"--dir={folder}", f"--interface={addr}", f"--listen-port={port}", f"--stop={int(timeout)}",
            *ARIA2_COMMON]
    if dht_port:
        args += ["--enable-dht=true", f"--dht-listen-port={dht_port}", f"--dht-file-path={dht_file}"]
    else:
        args += ["--enable-dht=false"]
    if role == "seed":
        args += ["--bt-seed-unverified=true", "--seed-ratio=0.0"]
    else:
        args += ["--seed-time=0"]
    return args + [str(source)]


def folder_bytes(folder):
    """Bytes allocated on disk below folder (sparse files count what was written): a measure of progress."""
    total = 0
    for p in pathlib.Path(folder).rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if p.is_file():
            total += st.st_blocks * 512
    return total


def wait_done(done, progress, what, timeout, stall=25, details=lambda: ""):
    """Polls done() until it returns True, failing after timeout seconds, or as soon as progress() has not grown
    for stall seconds (so that a transfer that stopped fails in seconds, not minutes)."""
    start = last_change = time.monotonic()
    last = None
    while True:
        if done():
            return
        now = time.monotonic()
        value = progress()
        if value != last:
            last, last_change = value, now
        if now - start > timeout:
            raise AssertionError(f"{what}: not done after {timeout} s (progress {last})\n{details()}")
        if now - last_change > stall:
            raise AssertionError(f"{what}: no progress for {stall} s (stuck at {last})\n{details()}")
        time.sleep(0.2)


# --- a tiny bencoder, for torrents the tests build by hand and for looking into others ----------------------

def bencode(x):
    if isinstance(x, bool):
        raise TypeError("bool")
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, (bytes, bytearray)):
        return b"%d:%s" % (len(x), bytes(x))
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(x))


def bdecode(data, text_keys=False):
    """Decodes one bencoded value; ValueError on anything malformed, short or trailing. With `text_keys`,
    dictionary keys come back as str (latin-1), as the KRPC probes read them."""
    def parse(i):
        c = data[i:i + 1]
        if c == b"i":
            j = data.index(b"e", i)
            return int(data[i + 1:j]), j + 1
        if c == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                v, i = parse(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            out, i = {}, i + 1
            while data[i:i + 1] != b"e":
                k, i = parse(i)
                out[k.decode("latin-1") if text_keys else k], i = parse(i)
            return out, i + 1
        if c.isdigit():
            j = data.index(b":", i)
            n = int(data[i:j])
            if j + 1 + n > len(data):
                raise ValueError("short string")
            return data[j + 1:j + 1 + n], j + 1 + n
        raise ValueError(f"bad byte at {i}")
    try:
        value, end = parse(0)
    except (IndexError, TypeError) as e:
        raise ValueError(str(e))
    if end != len(data):
        raise ValueError("trailing bytes")
    return value


def free_port(host, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Rtorrent:
    """rtorrent 0.9.8 (Debian's, libtorrent-rakshasa) with one torrent, headless: `system.daemon.set` runs it
    without a terminal (it does not fork, so the Proc's pid is rtorrent's own and SIGTERM stops it), and its
    XML-RPC is on a Unix socket (SCGI) in its own folder. Its peer socket is on addr:port; DHT and PEX are off,
    encryption is allowed but not required. Everything it logs (`debug` level) goes to rtorrent.log.

    folder is where the torrent's data is, or goes: a seeder finds the payload there and checks it first.

    The settings go in an rc file (`-o import=`) because `-o` splits its value at commas: `-o
    encryption=allow_incoming,try_outgoing` and `-o log.open_file=main,FILE` are refused, and 0.9.8 has no
    `peer_exchange` (it is `protocol.pex.set`). Under `script -qfc` (its curses UI on a pseudo-terminal) it works
    too, but then only its files tell how far it got."""

    def __init__(self, procs, workdir, addr, port, torrent, folder, extra=()):
        self.addr, self.port = addr, port
        self.dir = pathlib.Path(workdir) / f"rtorrent-{addr}"
        (self.dir / "session").mkdir(parents=True)
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "rpc.sock"
        self.logfile = self.dir / "rtorrent.log"
        rc = [f"session.path.set = {self.dir / 'session'}",
              f"directory.default.set = {folder}",
              f"network.bind_address.set = {addr}",
              f"network.port_range.set = {port}-{port}",
              "network.port_random.set = no",
              "dht.mode.set = disable",
              "protocol.pex.set = no",
              "trackers.use_udp.set = yes",
              "protocol.encryption.set = allow_incoming,try_outgoing,enable_retry",
              f"network.scgi.open_local = {self.sock}",
              f"log.open_file = main, {self.logfile}",
              "log.add_output = debug, main",
              "system.daemon.set = true",
              *extra,
              f"load.start = {torrent}"]
        (self.dir / "rtorrent.rc").write_text("".join(line + "\n" for line in rc))
        self.proc = procs(["rtorrent", "-n", "-o", f"import={self.dir / 'rtorrent.rc'}"], self.dir / "stdout.log")
        deadline = time.monotonic() + 20
        while True:
            try:
                hashes = self.call("download_list", "")
                if hashes:
                    self.hash = hashes[0]
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or self.proc.p.poll() is not None:
                raise AssertionError(f"rtorrent never answered XML-RPC:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def call(self, method, *params):
        """One XML-RPC call over SCGI (what rtorrent speaks on network.scgi.open_local)."""
        import xmlrpc.client
        body = xmlrpc.client.dumps(tuple(params), method).encode()
        headers = b"CONTENT_LENGTH\0%d\0SCGI\x001\0REQUEST_METHOD\0POST\0REQUEST_URI\0/RPC2\0" % len(body)
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(b"%d:%s," % (len(headers), headers) + body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, sep, xml = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"no SCGI answer: {data[:200]!r}")
        return xmlrpc.client.loads(xml)[0][0]

    def d(self, method):
        """A d.* command on the torrent (d.complete, d.completed_bytes, d.up.total, d.message, …)."""
        return self.call(f"d.{method}", self.hash)

    def status(self):
        return {m: self.d(m) for m in ("complete", "completed_bytes", "size_bytes", "up.total", "peers_connected",
                                         "hashing", "message")}

    def wait_complete(self, timeout, other=None, stall=25):
        """Until the torrent is complete and checked. Fails early when its completed bytes do not move for
        stall seconds, or when other (a Proc: the Peer side) exits."""
        last = {}

        def done():
            if self.proc.p.poll() is not None:
                raise AssertionError(f"rtorrent exited:\n{self.log()[-3000:]}")
            if other is not None and other.p.poll() is not None:
                other.log.seek(0)
                raise AssertionError(f"the Peer side exited early:\n{other.log.read()[-3000:]}")
            last.update(self.status())
            return last["complete"] == 1 and last["hashing"] == 0

        wait_done(done, lambda: last.get("completed_bytes"), "rtorrent", timeout, stall,
                  details=lambda: f"{last}\n--- rtorrent log (tail):\n{self.log()[-4000:]}")
        return last

    def wait_announced(self, timeout=20):
        """Until the tracker has answered rtorrent's first announce (its tracker's success counter moved)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("t.success_counter", f"{self.hash}:t0") > 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"rtorrent never got an answer from the tracker: {self.d('message')}")
