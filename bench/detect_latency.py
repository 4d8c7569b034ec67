#!/usr/bin/env python3
"""Detection latency, side by side: a log line appended to a watched file -> the decision it causes
visible to a subscriber of the LAPI, for Rampart (`rampart run`) and Debian's CrowdSec 1.4.6.

Each attack is an sshd brute force from a fresh address (198.18.0.0/15, the benchmarking range, which
no whitelist of either system covers): five "Failed password" lines, a short pause, then the sixth
line, the one that overflows the ssh brute-force bucket (capacity 5, leak 10 s). t0 is taken just
after the write(2) of that sixth line returns; the latency is the arrival of that address's decision
at the subscriber minus t0.

- Rampart: `rampart run --acquis ACQUIS --data-dir DIR --listen 127.0.0.1:PORT --hub REPO/hub`
  (agent + LAPI in one process, its bundled content, SQLite). Subscriber: a bouncer that pulls
  `GET /v1/decisions/stream?startup=true`, then loops on `GET /v1/decisions/stream?wait=30s`
  (Rampart's long-poll push).
- CrowdSec: `crowdsec -c CONFIG`, agent + LAPI in one process like Debian's service, with a private
  copy of Debian's default configuration and of the hub items Debian enables (/etc/crowdsec), only the
  paths changed (temp dir, own SQLite file, free 127.0.0.1 ports, no central API) and an acquisition
  of the bench's log file (tail mode). CrowdSec has no push: the subscriber polls
  `GET /v1/decisions/stream` every --poll-ms (default 20 ms), so the figure measures CrowdSec itself;
  a default bouncer polling every 10 s (update_frequency) adds U(0, 10 s), given as a model.

The two systems run one after the other (not sharing the two cores), each on its own file, with the
same attack schedule (same addresses, same pauses; seeded). Each run begins with warm-up attacks
(not counted) that also prove the system is reading the file. A breakdown splits each latency at the
moment the agent logs the overflow (Rampart: `rampart: alert ...` on stderr; CrowdSec: `Ip X performed
'...'` in its log file, tailed every 2 ms).

Python 3 standard library only. Installs crowdsec with apt-get if missing (as root, after writing a
non-empty /etc/crowdsec/online_api_credentials.yaml). Results: report.md and results.json in
$TMPDIR/rampart-bench/detect-YYYYmmdd-HHMMSS/ (--out). See bench/README.md, "Detection latency".
"""
import argparse
import atexit
import datetime
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Shared with the LAPI benchmark: CrowdSec's version, free ports, process CPU, machine load,
# percentiles and number formatting.
from lapi_compare import busy_s, cpu_s, crowdsec_version, fmt, free_port, pct  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
USER_AGENT = "detect-bench/v1.0"   # CrowdSec wants name/version user agents
BOUNCER_POLL_S = 10.0              # crowdsec-firewall-bouncer's default update_frequency
CS_ETC = "/etc/crowdsec"

PROCS = []     # every process we started (Popen), stopped by PID
TEMPDIRS = []  # removed at exit unless --keep


def log(msg):
    print("[detect-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def stop_proc(p, wait=10):
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cleanup():
    for p in reversed(PROCS):
        stop_proc(p)
    PROCS.clear()
    for d in TEMPDIRS:
        shutil.rmtree(d, ignore_errors=True)
    TEMPDIRS.clear()


def on_signal(sig, frame):
    cleanup()
    sys.exit(128 + sig)


# ------------------------------------------------------------------------------------ prerequisites

def ensure_crowdsec():
    """Debian's crowdsec (offline-safe install, see ../shared/bench/README.md)."""
    if shutil.which("crowdsec") and shutil.which("cscli"):
        return
    if os.geteuid() != 0:
        sys.exit("crowdsec is not installed and this is not root: apt-get install -y crowdsec")
    cred = os.path.join(CS_ETC, "online_api_credentials.yaml")
    if not (os.path.exists(cred) and os.path.getsize(cred) > 0):
        os.makedirs(CS_ETC, exist_ok=True)
        with open(cred, "w") as f:  # keeps the postinst from registering with the central API
            f.write("# offline benchmark: no central API\n")
    log("installing crowdsec with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.call(["apt-get", "install", "-y", "crowdsec"], env=env) != 0:
        subprocess.call(["dpkg", "--configure", "-a"], env=env)
        subprocess.check_call(["apt-get", "update", "-qq"], env=env)
        subprocess.check_call(["apt-get", "install", "-y", "crowdsec"], env=env)


def ensure_rampart(path, build):
    if build or not os.path.isfile(path):
        log("building rampart (cargo build --release -p rampart)")
        subprocess.check_call(["cargo", "build", "--release", "-p", "rampart"], cwd=REPO)
    if not os.access(path, os.X_OK):
        sys.exit("no rampart binary at %s" % path)
    out = subprocess.run([path, "run", "--help"], capture_output=True, text=True)
    if out.returncode != 0 or "--acquis" not in out.stdout:
        sys.exit("%s has no usable `run` subcommand (rebuild with --build?): %s"
                 % (path, (out.stderr or out.stdout)[:300]))
    return path


def rampart_version(binpath, rev=None):
    """`git describe` of this checkout for a binary built in it, else the binary's path (or --rampart-rev)."""
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(binpath)).strftime("%Y-%m-%d %H:%M")
    if rev:
        return "%s (binary built %s)" % (rev, mtime)
    if not os.path.realpath(binpath).startswith(os.path.realpath(REPO) + os.sep):
        return "binary %s (built %s)" % (binpath, mtime)
    try:
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except OSError:
        rev = "?"
    return "%s (binary built %s)" % (rev or "?", mtime)


# ------------------------------------------------------------------------------------ helpers

def request(port, method, path, headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"User-Agent": USER_AGENT}
        h.update(headers or {})
        c.request(method, path, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_http(port, proc, path="/health", timeout=60, ok=(200,)):
    """Until the port answers `path` (any listed status), or the process died."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            st, _ = request(port, "GET", path, timeout=2)
            if st in ok:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def psi():
    """Pressure-stall totals (µs): time some task waited for a CPU / for I/O (None without PSI)."""
    out = {}
    for res in ("cpu", "io"):
        for line in read("/proc/pressure/" + res).splitlines():
            kind, _, rest = line.partition(" ")
            m = re.search(r"total=(\d+)", rest)
            if m:
                out["%s_%s" % (res, kind)] = int(m.group(1))
    return out


def rss_mb(pid, key="VmHWM"):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None


def summary(xs):
    """ms figures of a list of seconds."""
    ms = [x * 1000 for x in xs]
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99),
            "max": max(ms) if ms else None, "min": min(ms) if ms else None,
            "mean": statistics.fmean(ms) if ms else None}


def with_polling_bouncer(lat_s, every_s, seed, draws=200):
    """Latencies a bouncer polling every `every_s` would see: measured + U(0, every_s) (Monte Carlo)."""
    rng = random.Random(seed)
    return [x + rng.uniform(0, every_s) for x in lat_s for _ in range(draws)]


# ------------------------------------------------------------------------------------ attacks

class Schedule:
    """Addresses and pauses of the attacks, identical for both systems (seeded)."""

    def __init__(self, n, warmups, seed, gap_ms, pre_ms):
        rng = random.Random(seed)
        # 198.18.0.0/15 (RFC 2544 benchmarking): neither CrowdSec's nor Rampart's whitelist covers it.
        # Measured attacks in 198.18.0.0/16, warm-ups and readiness probes in 198.19.0.0/16.
        pool = ["198.18.%d.%d" % (i // 250, 1 + i % 250) for i in range(min(max(n, 1) * 4, 256 * 250))]
        rng.shuffle(pool)
        self.ips = pool[:n]
        self.warm = ["198.19.%d.%d" % (i // 250, 1 + i % 250) for i in range(64)]
        self.warmups = warmups
        self.gaps = [rng.uniform(gap_ms[0], gap_ms[1]) / 1000 for _ in range(n)]
        self.pre_s = pre_ms / 1000
        self.user = "root"  # one account name: only the ssh brute-force bucket (not user-enum) overflows

    def rate(self):
        per = self.pre_s + statistics.fmean(self.gaps) if self.gaps else 0
        return (1 / per if per else 0), self.pre_s * 1000, min(self.gaps) * 1000, max(self.gaps) * 1000


def sshd_line(ip, i, user):
    now = time.strftime("%b %e %H:%M:%S")  # local time, C locale month names (syslog, no year)
    return "%s web1 sshd[%d]: Failed password for %s from %s port %d ssh2\n" % (
        now, 20000 + i, user, ip, 40000 + i)


class LogWriter:
    """The watched file, appended with unbuffered write(2) calls (O_APPEND)."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, text):
        os.write(self.fd, text.encode())

    def attack(self, ip, user, pre_s):
        """Five failures, a pause, the sixth (overflowing) one; returns t0 (after the sixth write)."""
        self.write("".join(sshd_line(ip, i, user) for i in range(5)))
        if pre_s > 0:
            time.sleep(pre_s)
        self.write(sshd_line(ip, 5, user))
        return time.perf_counter()

    def close(self):
        os.close(self.fd)


# ------------------------------------------------------------------------------------ observers

class Arrivals:
    """First arrival time (perf_counter) per value, with a condition to wait on."""

    def __init__(self):
        self.seen = {}
        self.cv = threading.Condition()
        self.dupes = 0

    def add(self, values, t):
        with self.cv:
            for v in values:
                if v in self.seen:
                    self.dupes += 1
                else:
                    self.seen[v] = t
            self.cv.notify_all()

    def wait(self, values, timeout):
        deadline = time.time() + timeout
        with self.cv:
            while True:
                if all(v in self.seen for v in values):
                    return True
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cv.wait(left)

    def get(self, v):
        with self.cv:
            return self.seen.get(v)


class LineTap(threading.Thread):
    """Timestamps lines matching `pattern` (group 'ip') read from a pipe or a growing file."""

    def __init__(self, pattern, pipe=None, path=None, copy_to=None, every_s=0.002, ready=None):
        super().__init__(daemon=True)
        self.rx = re.compile(pattern)
        self.ready_rx = re.compile(ready) if ready else None
        self.ready = threading.Event()  # set when a line matches `ready` (the agent reads its files)
        self.pipe, self.path, self.copy_to, self.every_s = pipe, path, copy_to, every_s
        self.hits = Arrivals()
        self.stop_ev = threading.Event()
        self.lines = 0

    def feed(self, line, t):
        self.lines += 1
        if self.ready_rx and self.ready_rx.search(line):
            self.ready.set()
        m = self.rx.search(line)
        if m:
            self.hits.add([m.group("ip")], t)

    def run(self):
        if self.pipe is not None:
            out = open(self.copy_to, "w") if self.copy_to else None
            for raw in iter(self.pipe.readline, b""):
                t = time.perf_counter()
                line = raw.decode(errors="replace")
                self.feed(line, t)
                if out:
                    out.write(line)
                    out.flush()
            if out:
                out.close()
            return
        f, buf = None, b""
        while not self.stop_ev.is_set():
            if f is None:
                try:
                    f = open(self.path, "rb")
                except OSError:
                    time.sleep(0.05)
                    continue
            chunk = f.read()
            t = time.perf_counter()
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self.feed(line.decode(errors="replace"), t)
            else:
                time.sleep(self.every_s)
        if f:
            f.close()

    def stop(self):
        self.stop_ev.set()


class Subscriber(threading.Thread):
    """A bouncer on the LAPI stream: `wait` (Rampart's long-poll) or a poll every `poll_s`."""

    def __init__(self, port, key, wait=None, poll_s=None):
        super().__init__(daemon=True)
        self.port, self.key, self.wait_q, self.poll_s = port, key, wait, poll_s
        self.arrivals = Arrivals()
        self.stop_ev = threading.Event()
        self.errors, self.polls, self.req_s = [], 0, []

    def start_stream(self):
        st, body = request(self.port, "GET", "/v1/decisions/stream?startup=true", headers={"X-Api-Key": self.key})
        if st != 200:
            raise RuntimeError("stream startup: %s %s" % (st, body[:300]))
        j = json.loads(body) or {}
        self.arrivals.add([d.get("value") for d in j.get("new") or []], time.perf_counter())
        self.start()

    def run(self):
        path = "/v1/decisions/stream" + ("?wait=%s" % self.wait_q if self.wait_q else "")
        hdr = {"X-Api-Key": self.key, "User-Agent": USER_AGENT}
        c = self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        nxt = time.perf_counter()
        while not self.stop_ev.is_set():
            if self.poll_s:
                nxt += self.poll_s
            try:
                t0 = time.perf_counter()
                c.request("GET", path, headers=hdr)
                r = c.getresponse()
                data = r.read()
                t = time.perf_counter()
                self.polls += 1
                self.req_s.append(t - t0)
                if r.status != 200:
                    self.errors.append("status %s %s" % (r.status, data[:200]))
                    time.sleep(0.2)
                    continue
                j = json.loads(data) or {}
                new = [d.get("value") for d in j.get("new") or []]
                if new:
                    self.arrivals.add(new, t)
            except (OSError, ValueError, http.client.HTTPException) as e:
                if self.stop_ev.is_set():
                    break
                self.errors.append(repr(e)[:200])
                c.close()
                c = self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
                time.sleep(0.2)
                continue
            if self.poll_s:
                d = nxt - time.perf_counter()
                if d > 0:
                    time.sleep(d)
                else:
                    nxt = time.perf_counter()
        c.close()

    def stop(self):
        """Also closes a parked long-poll: Rampart's graceful shutdown waits for open requests."""
        self.stop_ev.set()
        sock = getattr(getattr(self, "conn", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.join(5)


# ------------------------------------------------------------------------------------ the systems

class RampartSys:
    name = "rampart"
    label = "Rampart (`rampart run`, long-poll push)"
    overflow_rx = r"rampart: alert \S+ from Ip (?P<ip>[0-9a-fA-F.:]+)"

    def __init__(self, binpath, hub, tmp, logfile, a):
        self.bin, self.hub, self.tmp, self.logfile = binpath, hub, tmp, logfile
        self.data = os.path.join(tmp, "data")
        os.makedirs(self.data, exist_ok=True)
        self.db = "sqlite://" + os.path.join(self.data, "rampart.db")
        self.port = free_port()
        self.wait = "%ds" % a.wait_s
        self.poll_s = None
        self.proc = None

    def bouncer(self, name):
        key = secrets.token_hex(16)
        out = subprocess.run([self.bin, "bouncers", "add", name, "--key", key, "--db", self.db],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("rampart bouncers add: %s" % (out.stderr or out.stdout)[-300:])
        return key

    def describe(self):
        return ("`rampart run --acquis acquis.yaml --data-dir DIR --listen 127.0.0.1:%d --hub %s` "
                "(bundled content, SQLite `DIR/rampart.db`); subscriber: `stream?startup=true`, then "
                "`stream?wait=%s` in a loop" % (self.port, os.path.relpath(self.hub, REPO), self.wait))

    def start(self):
        acq = os.path.join(self.tmp, "acquis.yaml")
        with open(acq, "w") as f:
            f.write("source: file\nfilenames:\n  - %s\nlabels:\n  type: syslog\n" % self.logfile)
        self.keys = {"sub": self.bouncer("bench-subscriber"), "check": self.bouncer("bench-check")}
        cmd = [self.bin, "run", "--acquis", acq, "--data-dir", self.data, "--listen", "127.0.0.1:%d" % self.port,
               "--hub", self.hub]
        env = dict(os.environ)
        env.pop("RAMPART_DB", None)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        PROCS.append(self.proc)
        self.pid = self.proc.pid
        self.tap = LineTap(self.overflow_rx, pipe=self.proc.stderr, copy_to=os.path.join(self.tmp, "rampart.err"),
                           ready=r"^rampart agent: ")
        self.tap.start()
        if not wait_http(self.port, self.proc):
            time.sleep(0.2)
            raise RuntimeError("rampart run not healthy: %s" % self.tail_log())

    def stored_at(self):
        """value -> epoch seconds of the decision's created_at (milliseconds in Rampart's schema)."""
        return db_times(os.path.join(self.data, "rampart.db"), lambda v: int(v) / 1000)

    def tail_log(self):
        try:
            return open(os.path.join(self.tmp, "rampart.err")).read()[-1500:]
        except OSError:
            return ""

    def stop(self):
        stop_proc(self.proc)


class CrowdSecSys:
    name = "crowdsec"
    overflow_rx = r"Ip (?P<ip>[0-9a-fA-F.:]+) performed '"

    def __init__(self, tmp, logfile, a):
        self.tmp, self.logfile = tmp, logfile
        self.port, self.prom = free_port(), free_port()
        self.poll_s = a.poll_ms / 1000
        self.wait = None
        self.label = "CrowdSec %s (`crowdsec`, stream polled every %g ms)" % (crowdsec_version(), a.poll_ms)
        self.proc = None
        self.items = []

    def describe(self):
        return ("`crowdsec -c config.yaml` (agent + LAPI in one process, as Debian's service), Debian's "
                "config.yaml + config.yaml.local with only paths, ports and the central API changed; hub items "
                "as enabled in %s (%d parsers, %d scenarios, %d postoverflows); acquisition: the bench's "
                "file, type syslog, tail mode; subscriber: `stream?startup=true`, then `GET "
                "/v1/decisions/stream` every %g ms" % (CS_ETC, self.count("parsers"), self.count("scenarios"),
                                                       self.count("postoverflows"), self.poll_s * 1000))

    def count(self, kind):
        return sum(1 for k, _ in self.items if k == kind)

    def setup(self):
        """A private copy of Debian's default CrowdSec configuration (nothing under /etc is changed)."""
        etc, data, logd = (os.path.join(self.tmp, d) for d in ("etc", "data", "log"))
        for d in (etc, data, logd):
            os.makedirs(d, exist_ok=True)
        # hub items enabled by Debian: symlinks under /etc/crowdsec/{parsers,scenarios,postoverflows,collections}
        for kind in ("parsers", "scenarios", "postoverflows", "collections"):
            src = os.path.join(CS_ETC, kind)
            if not os.path.isdir(src):
                continue
            for root, _, files in os.walk(src):
                for fn in files:
                    p = os.path.join(root, fn)
                    rel = os.path.relpath(p, CS_ETC)
                    dst = os.path.join(etc, rel)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    os.symlink(os.path.realpath(p), dst)
                    self.items.append((kind, rel))
        shutil.copytree(os.path.join(CS_ETC, "patterns"), os.path.join(etc, "patterns"))
        for f in ("profiles.yaml", "simulation.yaml"):
            shutil.copy(os.path.join(CS_ETC, f), etc)
        cfg = yaml_lite(os.path.join(CS_ETC, "config.yaml"))
        cs_data = cfg.get("config_paths", {}).get("data_dir", "/var/lib/crowdsec/data/")
        for f in os.listdir(cs_data):  # data files of the scenarios (not the system's database)
            if not f.startswith("crowdsec.db"):
                p = os.path.join(cs_data, f)
                if os.path.isfile(p):
                    shutil.copy(p, data)
        # Debian ships path_traversal.txt, a scenario loads it as http_path_traversal.txt (see
        # ../shared/bench/README.md); without the copy every HTTP line logs an error. Harmless here.
        pt = os.path.join(data, "path_traversal.txt")
        if os.path.exists(pt) and not os.path.exists(os.path.join(data, "http_path_traversal.txt")):
            shutil.copy(pt, os.path.join(data, "http_path_traversal.txt"))
        with open(os.path.join(etc, "acquis.yaml"), "w") as f:
            f.write("filenames:\n  - %s\nlabels:\n  type: syslog\n" % self.logfile)
        use_wal = "true" if "use_wal: true" in read(os.path.join(CS_ETC, "config.yaml.local")) else "false"
        self.cfg = os.path.join(self.tmp, "config.yaml")
        self.creds = os.path.join(self.tmp, "local_api_credentials.yaml")
        self.db = os.path.join(data, "crowdsec.db")
        self.logpath = os.path.join(logd, "crowdsec.log")
        with open(self.cfg, "w") as f:
            f.write(CS_CONFIG.format(tmp=self.tmp, etc=etc, data=data, logd=logd, db=self.db, port=self.port,
                                     prom=self.prom, creds=self.creds, use_wal=use_wal,
                                     hub=cfg.get("config_paths", {}).get("hub_dir", "/var/lib/crowdsec/hub/"),
                                     index=cfg.get("config_paths", {}).get("index_path",
                                                                           "/var/lib/crowdsec/hub/.index.json")))
        self.cscli = ["cscli", "-c", self.cfg, "--error"]
        subprocess.check_call(self.cscli + ["machines", "add", "bench-agent", "--auto", "--force", "-f", self.creds],
                              stdout=subprocess.DEVNULL)
        self.keys = {}
        for k, name in (("sub", "bench-subscriber"), ("check", "bench-check")):
            self.keys[k] = secrets.token_hex(16)
            subprocess.check_call(self.cscli + ["bouncers", "add", name, "-k", self.keys[k]], stdout=subprocess.DEVNULL)

    def start(self):
        self.setup()
        self.out = open(os.path.join(self.tmp, "crowdsec.out"), "w")
        self.proc = subprocess.Popen(["crowdsec", "-c", self.cfg], stdout=self.out, stderr=subprocess.STDOUT)
        PROCS.append(self.proc)
        self.pid = self.proc.pid
        self.tap = LineTap(self.overflow_rx, path=self.logpath, ready=r"Starting processing data")
        self.tap.start()
        if not wait_http(self.port, self.proc, path="/v1/decisions", ok=(200, 401, 403)):
            raise RuntimeError("crowdsec LAPI not up: %s" % self.tail_log())

    def stored_at(self):
        """value -> epoch seconds of created_at ('2006-01-02 15:04:05.999999999+00:00' text in 1.4.6's SQLite)."""
        def parse(v):
            m = re.match(r"(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", str(v))
            if not m:
                return None
            tz = m.group(4) or "+00:00"
            tz = "+00:00" if tz == "Z" else tz
            base = datetime.datetime.fromisoformat("%s %s%s" % (m.group(1), m.group(2), tz)).timestamp()
            return base + (float("0." + m.group(3)) if m.group(3) else 0.0)
        return db_times(self.db, parse)

    def tail_log(self):
        return read(self.logpath)[-1500:] + read(os.path.join(self.tmp, "crowdsec.out"))[-500:]

    def stop(self):
        stop_proc(self.proc, wait=15)
        if getattr(self, "tap", None):
            self.tap.stop()


# Debian's /etc/crowdsec/config.yaml (1.4.6) with paths under the temp dir, other ports, no online_client
# (no central API offline) and no console/acquisition dir; use_wal as config.yaml.local sets it.
CS_CONFIG = """common:
  daemonize: true
  log_media: file
  log_level: info
  log_dir: {logd}/
  log_max_size: 20
  compress_logs: true
  log_max_files: 10
  working_dir: .
config_paths:
  config_dir: {etc}/
  data_dir: {data}/
  simulation_path: {etc}/simulation.yaml
  hub_dir: {hub}
  index_path: {index}
  notification_dir: {etc}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: {etc}/acquis.yaml
  parser_routines: 1
cscli:
  output: human
  color: false
db_config:
  log_level: info
  type: sqlite
  db_path: {db}
  use_wal: {use_wal}
  flush:
    max_items: 5000
    max_age: 7d
plugin_config:
  user: nobody
  group: nogroup
api:
  client:
    insecure_skip_verify: false
    credentials_path: {creds}
  server:
    log_level: info
    listen_uri: 127.0.0.1:{port}
    profiles_path: {etc}/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
prometheus:
  enabled: true
  level: full
  listen_addr: 127.0.0.1
  listen_port: {prom}
"""


def db_times(path, conv):
    """First created_at per decision value in a LAPI's SQLite database (read-only), converted by conv."""
    out = {}
    try:
        c = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            for v, t in c.execute("SELECT value, created_at FROM decisions ORDER BY id"):
                if v not in out:
                    x = conv(t)
                    if x is not None:
                        out[v] = x
        finally:
            c.close()
    except Exception as e:  # noqa: BLE001  a schema we do not know: no split, not a failure
        log("cannot read decision times from %s: %s" % (path, e))
    return out


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def yaml_lite(path):
    """The two-level `key:\\n  sub: value` part of a CrowdSec config.yaml (enough for config_paths)."""
    out, cur = {}, None
    for line in read(path).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            k = line.split(":", 1)[0].strip()
            cur = out.setdefault(k, {})
        elif cur is not None and ":" in line and line.startswith("  ") and not line.startswith("   "):
            k, v = line.split(":", 1)
            v = v.split(" #", 1)[0].strip()
            if v:
                cur[k.strip()] = v
    return out


# ------------------------------------------------------------------------------------ one system

def run_system(kind, sched, a, rampart_bin, out_dir):
    tmp = tempfile.mkdtemp(prefix="detectbench-%s-" % kind)
    if not a.keep:
        TEMPDIRS.append(tmp)
    # the watched file alone in its directory: both agents watch that directory with inotify, and the
    # daemons' own files (databases, logs, the copy of Rampart's stderr) must not wake them up
    os.makedirs(os.path.join(tmp, "watched"))
    logfile = os.path.join(tmp, "watched", "auth.log")
    open(logfile, "w").close()
    s = (RampartSys(rampart_bin, os.path.abspath(a.hub), tmp, logfile, a) if kind == "rampart"
         else CrowdSecSys(tmp, logfile, a))
    rec = {"system": kind, "tmp": tmp}
    w = LogWriter(logfile)
    sub = None
    try:
        t_start = time.time()
        s.start()
        rec["describe"] = s.describe()
        rec["label"] = s.label
        sub = Subscriber(s.port, s.keys["sub"], wait=s.wait, poll_s=s.poll_s)
        sub.start_stream()
        # Readiness: a probe attack every few seconds until one yields a decision (CrowdSec opens the
        # file at its end once its acquisition is up; lines written before that are never read).
        warm = iter(sched.warm)
        s.tap.ready.wait(30)  # the agent says it reads its files; the probes below prove it
        probes, ready = [], False
        deadline = time.time() + a.ready_s
        while time.time() < deadline:
            ip = next(warm)
            probes.append(ip)
            w.attack(ip, sched.user, sched.pre_s)
            if sub.arrivals.wait([ip], 5):
                ready = True
                break
            if s.proc.poll() is not None:
                break
        if not ready:
            raise RuntimeError("%s: no decision for a probe attack within %d s (%d probes); log tail:\n%s"
                               % (kind, a.ready_s, len(probes), s.tail_log()))
        rec["ready_s"] = time.time() - t_start
        rec["probes"] = len(probes)
        log("%s: ready after %.1f s (%d probe attack(s)); %d warm-up attacks" % (kind, rec["ready_s"], len(probes),
                                                                                  sched.warmups))
        wl = []
        for _ in range(sched.warmups):
            ip = next(warm)
            t0 = w.attack(ip, sched.user, sched.pre_s)
            if sub.arrivals.wait([ip], 30):
                wl.append(sub.arrivals.get(ip) - t0)
            time.sleep(0.05)
        rec["warmup_ms"] = [x * 1000 for x in wl]
        time.sleep(a.settle_s)  # let the warm-ups' deliveries and any periodic work settle

        log("%s: %d attacks" % (kind, len(sched.ips)))
        c0, b0, p0, t_a = cpu_s(s.pid), busy_s(), psi(), time.perf_counter()
        polls0 = sub.polls
        t0s, walls = {}, {}
        for ip, gap in zip(sched.ips, sched.gaps):
            t0s[ip] = w.attack(ip, sched.user, sched.pre_s)
            walls[ip] = time.time()
            time.sleep(gap)
        t_written = time.perf_counter()
        all_in = sub.arrivals.wait(sched.ips, a.drain_s)
        t_end = time.perf_counter()
        c1, b1, p1 = cpu_s(s.pid), busy_s(), psi()
        rec["pressure"] = {k: 100 * (p1[k] - p0[k]) / 1e6 / (t_end - t_a) for k in p1 if k in p0}
        rec["attack_phase_s"] = t_written - t_a
        rec["drain_s"] = t_end - t_written
        rec["all_received"] = all_in
        rec["server_cpu_s"] = (c1 - c0) if c0 is not None and c1 is not None else None
        rec["busy_share"] = (b1 - b0) / ((t_end - t_a) * os.cpu_count())
        rec["polls"] = sub.polls - polls0
        rec["poll_req_ms_median"] = statistics.median(sub.req_s) * 1000 if sub.req_s and s.poll_s else None
        rec["rss_mb"] = rss_mb(s.pid)
        time.sleep(0.3)  # late overflow log lines
        lat, miss, split_a, split_b = {}, [], [], []
        for ip in sched.ips:
            t = sub.arrivals.get(ip)
            if t is None:
                miss.append(ip)
                continue
            lat[ip] = t - t0s[ip]
            to = s.tap.hits.get(ip)
            if to is not None:
                split_a.append(to - t0s[ip])
                split_b.append(t - to)
        rec["latency_s"] = lat
        # When the LAPI stored each decision (its database's created_at, same system clock as t0_epoch):
        # splits "overflow logged -> at the subscriber" into "-> stored" and "stored -> at the subscriber".
        stored = s.stored_at()
        rec["split_store_s"], rec["split_push_s"] = [], []
        for ip in lat:
            to, ts = s.tap.hits.get(ip), stored.get(ip)
            if to is None or ts is None:
                continue
            rec["split_store_s"].append(ts - (walls[ip] + to - t0s[ip]))
            rec["split_push_s"].append(walls[ip] + lat[ip] - ts)
        rec["t0_epoch"] = walls  # wall clock of each t0, to line figures up with other traces
        rec["missing"] = miss
        rec["split_overflow_s"] = split_a
        rec["split_deliver_s"] = split_b
        rec["overflows_logged"] = sum(1 for ip in sched.ips if s.tap.hits.get(ip) is not None)
        rec["dupes"] = sub.arrivals.dupes
        rec["subscriber_errors"] = sub.errors[:5]
        # Decisions the LAPI holds (fresh bouncer, startup pull): tells "never decided" from "not streamed".
        st, body = request(s.port, "GET", "/v1/decisions/stream?startup=true", headers={"X-Api-Key": s.keys["check"]})
        held = {d.get("value") for d in (json.loads(body) or {}).get("new") or []} if st == 200 else set()
        rec["missing_but_held"] = sorted(ip for ip in miss if ip in held)
        rec["decisions_held"] = len(held & set(sched.ips))
        log("%s: %d/%d decisions received, p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (
            kind, len(lat), len(sched.ips), pct([x * 1000 for x in lat.values()], 50) or -1,
            pct([x * 1000 for x in lat.values()], 99) or -1, max(lat.values()) * 1000 if lat else -1))
    finally:
        if sub:
            sub.stop()
        w.close()
        s.stop()
        for f in ("rampart.err", "crowdsec.out", "log/crowdsec.log", "log/crowdsec_api.log"):
            p = os.path.join(tmp, f)
            if os.path.exists(p):
                shutil.copy(p, os.path.join(out_dir, "%s-%s" % (kind, os.path.basename(p))))
        if a.keep:
            log("%s: kept %s" % (kind, tmp))
    return rec


# ------------------------------------------------------------------------------------ report

def ratio(r, c):
    """Rampart / CrowdSec for a lower-is-better figure."""
    if r is None or c is None or r == 0 or c == 0:
        return "–"
    x = r / c
    adv = 1 / x
    return "%s (%s× %s)" % ("{:.3g}".format(x), fmt(adv, 1 if adv >= 10 else 2), "better" if adv >= 1 else "worse")


COLS = ("p50", "p90", "p99", "max", "mean")


def pressure_note(p):
    """PSI over the attack phase: share of time some task waited for a CPU, for I/O."""
    if "cpu_some" not in p:
        return ""
    return ", CPU pressure %.0f%%, I/O pressure %.0f%% (PSI `some`: share of the time some task waited)" % (
        p["cpu_some"], p.get("io_some", 0))


def render(recs, meta, sched):
    rate, pre, gmin, gmax = sched.rate()
    order = [k for k in ("crowdsec", "rampart") if k in recs]
    L = ["### Detection latency: log line → decision at a LAPI subscriber", "",
         "%d attacks (sshd brute force, a fresh 198.18.x.y address each: 5 `Failed password` lines, %.0f ms pause, "
         "the 6th line, which overflows the brute-force bucket; t0 just after its write); then %.0f–%.0f ms "
         "(uniform) to the next attack: ~%.1f attacks/s, ~%.0f lines/s. Systems run one after the other on "
         "%d shared cores, same schedule. %s vs %s. Latency = arrival of the IP's decision at the subscriber − t0, "
         "in ms. Ratio = Rampart / CrowdSec." % (len(sched.ips), pre, gmin, gmax, rate, rate * 6, meta["cores"],
                                                 meta["cs_version"], meta["rampart_version"]), "",
         "| system | attacks | decisions received | missing | p50 | p90 | p99 | max | mean |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sums = {}
    for k in order:
        r = recs[k]
        if r.get("error"):
            L.append("| %s | FAILED: %s | | | | | | | |" % (k, r["error"][:200].replace("\n", " ")))
            continue
        s = summary(list(r["latency_s"].values()))
        sums[k] = s
        L.append("| %s | %d | %d | %d | %s |" % (r["label"], len(sched.ips), s["n"], len(r["missing"]),
                                                 " | ".join(fmt(s[c], 1) for c in COLS)))
    if "rampart" in sums and "crowdsec" in sums:
        L.append("| ratio Rampart / CrowdSec | | | | %s |" % " | ".join(ratio(sums["rampart"][c], sums["crowdsec"][c])
                                                                   for c in COLS))
    for k in order:
        r = recs[k]
        if r.get("error") or not r["latency_s"]:
            continue
        m = summary(with_polling_bouncer(list(r["latency_s"].values()), BOUNCER_POLL_S, 1))
        L.append("| %s + a default bouncer polling every %gs (model: + U(0, %gs)) | | | | %s |" % (
            k, BOUNCER_POLL_S, BOUNCER_POLL_S, " | ".join("~" + fmt(m[c], 0) for c in COLS)))
    L.append("")
    L += ["| where the time goes (ms) | p50 | p99 | max | mean |", "|---|---:|---:|---:|---:|"]
    for k in order:
        r = recs[k]
        if r.get("error"):
            continue
        a_, b_ = summary(r["split_overflow_s"]), summary(r["split_deliver_s"])
        what = ("`rampart: alert` on stderr" if k == "rampart" else "`Ip X performed` in crowdsec.log")
        L.append("| %s: 6th line written → overflow logged (%s) | %s |" % (
            k, what, " | ".join(fmt(a_[c], 1) for c in ("p50", "p99", "max", "mean"))))
        L.append("| %s: overflow logged → decision at the subscriber | %s |" % (
            k, " | ".join(fmt(b_[c], 1) for c in ("p50", "p99", "max", "mean"))))
        if r.get("split_store_s"):
            c_, d_ = summary(r["split_store_s"]), summary(r["split_push_s"])
            L.append("| %s:   of which overflow logged → decision stored (LAPI database `created_at`) | %s |" % (
                k, " | ".join(fmt(c_[c], 1) for c in ("p50", "p99", "max", "mean"))))
            L.append("| %s:   of which decision stored → at the subscriber | %s |" % (
                k, " | ".join(fmt(d_[c], 1) for c in ("p50", "p99", "max", "mean"))))
    L.append("")
    notes = []
    for k in order:
        r = recs[k]
        if r.get("error"):
            continue
        n = len(sched.ips)
        notes.append("%s: %s." % (k, r["describe"]))
        notes.append("%s: ready %.1f s after start (%d probe attack(s)); warm-up latencies (not counted) %s ms; "
                     "attacks written in %.1f s; CPU of the daemon during attacks + drain %s s (%s ms per attack); "
                     "whole machine busy %.0f%% of %d cores (subscriber and writer included)%s; %d subscriber "
                     "requests%s; peak RSS %s MB; overflows seen in the log for %d of %d attacks."
                     % (k, r["ready_s"], r["probes"], ", ".join(fmt(x, 1) for x in r["warmup_ms"]),
                        r["attack_phase_s"], fmt(r["server_cpu_s"], 2),
                        fmt(1000 * r["server_cpu_s"] / n, 2) if r["server_cpu_s"] is not None else "–",
                        100 * r["busy_share"], meta["cores"], pressure_note(r.get("pressure") or {}), r["polls"],
                        (" (median %s ms each)" % fmt(r["poll_req_ms_median"], 2)) if r["poll_req_ms_median"] else "",
                        fmt(r["rss_mb"], 0), r["overflows_logged"], n))
        if r["missing"]:
            notes.append("%s: %d decision(s) never reached the subscriber within %g s after the last attack; %d of "
                         "them are held by the LAPI (a fresh bouncer's startup pull returns them), e.g. %s."
                         % (k, len(r["missing"]), meta["drain_s"], len(r["missing_but_held"]),
                            ", ".join(r["missing"][:3])))
        if r["subscriber_errors"]:
            notes.append("%s: subscriber errors: %s" % (k, "; ".join(r["subscriber_errors"])))
    if "rampart" in sums:
        p99 = sums["rampart"]["p99"]
        ok = p99 is not None and p99 < 100 and not recs["rampart"]["missing"]
        notes.append("Target: Rampart p99 < 100 ms with no decision missing: %s (p99 %s ms)." % (
            "PASS" if ok else "FAIL", fmt(p99, 1)))
    notes.append("A bouncer that does not long-poll (e.g. crowdsec-firewall-bouncer with its default "
                 "`update_frequency: 10s`) sees a decision at its next pull: the model rows add U(0, 10 s) to "
                 "each measured latency (200 draws each). Rampart's push figure needs a bouncer using "
                 "`stream?wait=`.")
    L += ["- " + x for x in notes]
    return "\n".join(L)


# ------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attacks", type=int, default=None, help="measured attacks per system (default 500, --quick 40)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 40 attacks, 1 warm-up, short settle")
    ap.add_argument("--systems", default="rampart,crowdsec", help="comma list, run in this order (default rampart,crowdsec)")
    ap.add_argument("--gap-ms", default="20,50", help="pause after each attack, uniform MIN,MAX ms (default 20,50)")
    ap.add_argument("--pre-ms", type=float, default=10, help="pause between the 5th and the 6th line, ms (default 10)")
    ap.add_argument("--poll-ms", type=float, default=20, help="CrowdSec subscriber's poll period, ms (default 20)")
    ap.add_argument("--wait-s", type=int, default=30, help="Rampart subscriber's long-poll wait, s (default 30)")
    ap.add_argument("--warmups", type=int, default=None, help="warm-up attacks after the probe, not counted (default 3)")
    ap.add_argument("--settle-s", type=float, default=None, help="pause after the warm-ups, s (default 3, --quick 1)")
    ap.add_argument("--ready-s", type=float, default=90, help="give up when a system yields no decision for this long")
    ap.add_argument("--drain-s", type=float, default=20, help="wait this long for decisions after the last attack")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hub", default=os.path.join(REPO, "hub"), help="Rampart's content dir (default: bundled hub/)")
    ap.add_argument("--rampart", default=os.environ.get("RAMPART_BIN", os.path.join(REPO, "target", "release", "rampart")))
    ap.add_argument("--build", action="store_true", help="cargo build --release -p rampart first")
    ap.add_argument("--rampart-rev", default=None, help="what the binary was built from, for the report")
    ap.add_argument("--out", default=None, help="results dir (default $TMPDIR/rampart-bench/detect-YYYYmmdd-HHMMSS)")
    ap.add_argument("--keep", action="store_true", help="keep the systems' temp dirs (databases, logs)")
    a = ap.parse_args()
    q = a.quick
    if a.attacks is not None and not 0 < a.attacks <= 256 * 250:
        sys.exit("--attacks must be between 1 and %d (one address of 198.18.0.0/16 each)" % (256 * 250))
    a.attacks = a.attacks or (40 if q else 500)
    a.warmups = a.warmups if a.warmups is not None else (1 if q else 3)
    a.settle_s = a.settle_s if a.settle_s is not None else (1 if q else 3)
    gap = [float(x) for x in a.gap_ms.split(",")]
    gap = (gap[0], gap[-1])
    systems = [x for x in a.systems.split(",") if x]
    bad = [x for x in systems if x not in ("rampart", "crowdsec")]
    if bad:
        sys.exit("unknown system(s): %s" % ", ".join(bad))

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if "crowdsec" in systems:
        ensure_crowdsec()
    rampart = ensure_rampart(os.path.abspath(a.rampart), a.build) if "rampart" in systems else None
    out = os.path.abspath(a.out or os.path.join(os.environ.get("TMPDIR", "/tmp"), "rampart-bench",
                                                "detect-" + time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    if rampart:  # a private copy: a rebuild during the run cannot change the binary under test
        meta_r = rampart_version(rampart, a.rampart_rev)
        shutil.copy2(rampart, os.path.join(out, "rampart"))
        rampart = os.path.join(out, "rampart")
    else:
        meta_r = "–"
    meta = {"cs_version": "CrowdSec " + crowdsec_version() if "crowdsec" in systems else "–",
            "rampart_version": "Rampart " + meta_r, "cores": os.cpu_count(), "argv": sys.argv[1:],
            "drain_s": a.drain_s, "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    sched = Schedule(a.attacks, a.warmups, a.seed, gap, a.pre_ms)
    log("results in %s; %s; %s; %d attacks per system" % (out, meta["rampart_version"], meta["cs_version"],
                                                          a.attacks))
    recs = {}
    t_start = time.time()
    for kind in systems:
        try:
            recs[kind] = run_system(kind, sched, a, rampart, out)
        except Exception as e:  # noqa: BLE001  report and go on with the other system
            log("%s failed: %s" % (kind, e))
            recs[kind] = {"system": kind, "error": str(e)}
    rep = render(recs, meta, sched)
    print(rep, flush=True)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(rep + "\n\nCommand: `python3 bench/detect_latency.py %s`\n" % " ".join(sys.argv[1:]))
    res = {"meta": meta, "schedule": {"ips": sched.ips, "gaps_s": sched.gaps, "pre_s": sched.pre_s},
           "systems": {k: dict(v, latency_s=v.get("latency_s")) for k, v in recs.items()}}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    log("done in %.0f s; report.md and results.json in %s" % (time.time() - t_start, out))
    return 1 if any(r.get("error") for r in recs.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
