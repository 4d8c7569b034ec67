#!/usr/bin/env python3
"""Side-by-side benchmark of Rampart's LAPI and Debian's CrowdSec 1.4.6 LAPI.

Both LAPIs run on this machine in one run, each on a fresh SQLite database, and get the very same
decision set (random public IPv4 addresses, ~1% /24 ranges, ~0.1% IPv6 addresses; all `ban`, 24h).
Measured for each size N:

1. load time of N decisions through the same API path for both: a watcher logs in
   (`POST /v1/watchers/login`) and pushes `POST /v1/alerts` with alerts carrying many decisions each
   (origin `cscli`, shaped like the alerts `cscli decisions add` sends); plus, for CrowdSec only,
   `cscli decisions import` of the same set into another fresh database;
2. `GET /v1/decisions?ip=X` (50% hits, 50% misses) under concurrent keep-alive load with `wrk`:
   requests/s, p50/p99 latency, server CPU per request, client CPU share;
3. `GET /v1/decisions/stream?startup=true` with a fresh bouncer key: wall time to the full body, body
   size, and a check that it parses with N entries in `new`;
4. peak RSS (VmHWM) of each LAPI process after load and queries;
5. push latency: Rampart's long-poll `GET /v1/decisions/stream?wait=30s` against a `POST /v1/alerts`
   of one decision, repeated; CrowdSec has no push, so its figure is the delay of a bouncer polling
   every 10 s (the firewall bouncer's default update_frequency) plus the measured cost of a poll.

Python 3 standard library plus `wrk` and `curl` (installed with apt-get if missing, like CrowdSec).
CrowdSec's private LAPI config comes from ../shared/bench/run_anchors.py (imported, not copied). See
bench/README.md, section "LAPI benchmark against CrowdSec".
"""
import argparse
import atexit
import concurrent.futures
import datetime
import http.client
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
USER_AGENT = "lapi-bench/v1.0"  # CrowdSec refuses a login whose User-Agent is not name/version
PER_ALERT = 10000               # decisions per pushed alert (default of --per-alert)
POLL_EVERY_S = 10.0             # crowdsec-firewall-bouncer's default update_frequency
CLK_TCK = os.sysconf("SC_CLK_TCK")

PROCS = []     # every process we started (Popen), killed by PID at exit
TEMPDIRS = []  # removed at exit unless --keep


def log(msg):
    print("[lapi-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def cleanup():
    for p in reversed(PROCS):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    PROCS.clear()
    for d in TEMPDIRS:
        shutil.rmtree(d, ignore_errors=True)
    TEMPDIRS.clear()


def on_signal(sig, frame):
    cleanup()
    sys.exit(128 + sig)


# ------------------------------------------------------------------------------------ prerequisites

def ensure_tools():
    """CrowdSec 1.4.6 (offline-safe install, see ../shared/bench/README.md) and wrk."""
    missing = [p for p, b in (("crowdsec", "crowdsec"), ("crowdsec", "cscli"), ("wrk", "wrk"), ("curl", "curl"))
               if not shutil.which(b)]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit("missing %s and not root: apt-get install -y %s" % (", ".join(missing), " ".join(sorted(set(missing)))))
    cred = "/etc/crowdsec/online_api_credentials.yaml"
    if "crowdsec" in missing and not (os.path.exists(cred) and os.path.getsize(cred) > 0):
        os.makedirs(os.path.dirname(cred), exist_ok=True)
        with open(cred, "w") as f:  # keeps the postinst from registering with the central API
            f.write("# offline benchmark: no central API\n")
    pkgs = sorted(set(missing))
    log("installing %s with apt-get" % " ".join(pkgs))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.call(["apt-get", "install", "-y"] + pkgs, env=env) != 0:
        subprocess.call(["dpkg", "--configure", "-a"], env=env)
        subprocess.check_call(["apt-get", "update", "-qq"], env=env)
        subprocess.check_call(["apt-get", "install", "-y"] + pkgs, env=env)


def crowdsec_version():
    try:
        out = subprocess.run(["crowdsec", "-version"], capture_output=True, text=True, timeout=30)
        m = re.search(r"version:\s*v?(\S+)", out.stdout + out.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def ensure_rampart(path, build):
    if build or not os.path.isfile(path):
        log("building rampart (cargo build --release -p rampart)")
        subprocess.check_call(["cargo", "build", "--release", "-p", "rampart"], cwd=REPO)
    if not os.access(path, os.X_OK):
        sys.exit("no rampart binary at %s" % path)
    out = subprocess.run([path, "lapi", "--help"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("%s has no `lapi` subcommand (rebuild with --build?): %s" % (path, (out.stderr or out.stdout)[:300]))
    return path


def rampart_version(binpath):
    try:
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except OSError:
        rev = "?"
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(binpath)).strftime("%Y-%m-%d %H:%M")
    return "%s (binary built %s)" % (rev or "?", mtime)


# ------------------------------------------------------------------------------------ decision set

# First octets whose whole /8 is ordinary public unicast space (no private, loopback, link-local,
# CGNAT, documentation, benchmarking or multicast block inside), so any address drawn is public.
EXCLUDED_FIRST = {0, 10, 100, 127, 169, 172, 192, 198, 203}
PUBLIC_FIRST = [o for o in range(1, 224) if o not in EXCLUDED_FIRST]


class DecisionSet:
    """N unique decisions (scope, value) and a query mix of hits and misses, all from one seed."""

    def __init__(self, n, seed):
        rng = random.Random(seed * 1000003 + n)
        n6 = max(1, n // 1000)
        nr = max(1, n // 100)
        n4 = n - n6 - nr

        def v4():
            return (rng.choice(PUBLIC_FIRST) << 24) | rng.getrandbits(24)

        ranges = set()
        while len(ranges) < nr:
            ranges.add(v4() >> 8)
        singles = set()
        while len(singles) < n4:
            a = v4()
            if a >> 8 not in ranges:
                singles.add(a)
        v6 = set()
        while len(v6) < n6:  # inside 2a00::/12 (RIPE), public
            v6.add((0x2a0 << 116) | rng.getrandbits(116))
        self.decisions = ([("Ip", str(ipaddress.IPv4Address(a))) for a in singles]
                          + [("Range", "%s/24" % ipaddress.IPv4Address(p << 8)) for p in ranges]
                          + [("Ip", str(ipaddress.IPv6Address(a))) for a in v6])
        rng.shuffle(self.decisions)
        self.n = len(self.decisions)
        # queries: half hits (an address with a decision: the single itself, one inside a range), half misses
        nq = min(20000, max(2000, n // 5))
        single4 = [v for s, v in self.decisions if s == "Ip" and ":" not in v]
        single6 = [v for s, v in self.decisions if s == "Ip" and ":" in v]
        rng_list = [v for s, v in self.decisions if s == "Range"]
        hits = []
        for _ in range(nq // 2):
            x = rng.random()
            if x < nr / n:
                net = rng.choice(rng_list).split("/")[0].rsplit(".", 1)[0]
                hits.append("%s.%d" % (net, rng.randrange(1, 255)))
            elif x < (nr + n6) / n:
                hits.append(rng.choice(single6))
            else:
                hits.append(rng.choice(single4))
        misses = set()
        taken = set(v for s, v in self.decisions)
        while len(misses) < nq // 2 + 1000:
            if rng.random() < n6 / n:
                ip = str(ipaddress.IPv6Address((0x2a0 << 116) | rng.getrandbits(116)))
            else:
                a = v4()
                if a >> 8 in ranges:
                    continue
                ip = str(ipaddress.IPv4Address(a))
            if ip not in taken:
                misses.add(ip)
        misses = sorted(misses)
        rng.shuffle(misses)
        self.spare = misses[nq // 2:]  # never queried, never loaded: used for the push test
        self.hits, self.misses = hits, misses[:nq // 2]
        self.queries = [(ip, True) for ip in hits] + [(ip, False) for ip in self.misses]
        rng.shuffle(self.queries)

    def counts(self):
        c = {"ip4": 0, "range4": 0, "ip6": 0}
        for s, v in self.decisions:
            c["range4" if s == "Range" else ("ip6" if ":" in v else "ip4")] += 1
        return c


def rfc3339(t=None):
    return datetime.datetime.fromtimestamp(t or time.time(), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cscli_alert(decisions, machine, duration="24h"):
    """An alert shaped like the one `cscli decisions add` posts (1.4.6), carrying `decisions`."""
    reason = "manual 'ban' from '%s'" % machine
    now = rfc3339()
    scope, value = decisions[0]
    src = {"scope": scope, "value": value}
    if scope == "Ip":
        src["ip"] = value
    else:
        src["range"] = value
    return {
        "capacity": 0, "decisions": [{"duration": duration, "origin": "cscli", "scenario": reason, "scope": s,
                                      "type": "ban", "value": v} for s, v in decisions],
        "events": [], "events_count": 1, "leakspeed": "0", "message": reason, "scenario": reason,
        "scenario_hash": "", "scenario_version": "", "simulated": False, "source": src,
        "start_at": now, "stop_at": now,
    }


# ------------------------------------------------------------------------------------ HTTP

def request(port, method, path, body=None, headers=None, timeout=900):
    """One request on a fresh connection; returns (status, body bytes, seconds to the full body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"User-Agent": USER_AGENT}
        h.update(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, data, time.perf_counter() - t0
    finally:
        c.close()


def wait_health(port, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            st, body, _ = request(port, "GET", "/health", timeout=2)
            if st == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Watcher:
    def __init__(self, port, machine, password):
        self.port, self.machine, self.password = port, machine, password
        self.token, self.t_login = None, 0

    def auth(self):
        if self.token is None or time.time() - self.t_login > 1800:  # JWTs last 1 h
            st, body, _ = request(self.port, "POST", "/v1/watchers/login",
                                  {"machine_id": self.machine, "password": self.password, "scenarios": []})
            if st != 200:
                raise RuntimeError("login %s failed: %s %s" % (self.machine, st, body[:300]))
            self.token, self.t_login = json.loads(body)["token"], time.time()
        return {"Authorization": "Bearer " + self.token}

    def post_alerts(self, body, retries=None):
        """body: bytes (a JSON array of alerts); returns seconds of the POST (all tries).

        With `retries` (a list), a 500 is retried up to 3 times after 1 s, each failure appended to it:
        CrowdSec 1.4.6 sometimes answers `database is locked` when its minute flush job writes during
        a big insert."""
        total = 0.0
        for attempt in range(4):
            h = self.auth()
            h["Content-Type"] = "application/json"
            st, resp, dt = request(self.port, "POST", "/v1/alerts", body, h)
            total += dt
            if st in (200, 201):
                return total
            if retries is None or st != 500 or attempt == 3:
                raise RuntimeError("POST /v1/alerts: %s %s" % (st, resp[:300]))
            retries.append("%s %s" % (st, resp[:200].decode(errors="replace")))
            log("  POST /v1/alerts answered %s %s; retrying in 1 s" % (st, resp[:120]))
            time.sleep(1)
            total += 1
            # fresh start_at/stop_at: a decision row left behind by the failed try then ends earlier
            # than its retry, so CrowdSec's stream de-duplication still yields each value once
            now = json.dumps(rfc3339()).encode()
            body = re.sub(rb'"(start_at|stop_at)": "[^"]*"', lambda m: b'"' + m.group(1) + b'": ' + now, body)


# ------------------------------------------------------------------------------------ process stats

def proc_status(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
    except OSError:
        return None


def cpu_s(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / CLK_TCK  # utime + stime
    except (OSError, IndexError):
        return None


def busy_s():
    """CPU seconds all processes spent (non-idle) since boot, from /proc/stat."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / CLK_TCK  # minus idle and iowait; guest is inside user


def wait_idle(pid, max_s=300, quiet=0.1):
    """Wait until the process uses less than `quiet` of a core for a second (e.g. drains queued queries)."""
    t0 = time.time()
    prev = cpu_s(pid)
    while time.time() - t0 < max_s:
        time.sleep(1)
        cur = cpu_s(pid)
        if cur is None or prev is None or cur - prev < quiet:
            return time.time() - t0
        prev = cur
    return time.time() - t0


# ------------------------------------------------------------------------------------ the two LAPIs

class CrowdSec:
    name = "crowdsec"

    def __init__(self, ra, tmp):
        self.ra, self.tmp = ra, tmp
        self.lapi = ra.Lapi(tmp)  # private config: own SQLite db, free 127.0.0.1 port, no online_client
        self.port = self.lapi.port
        self.cscli = [ra.CSCLI, "-c", self.lapi.cfg, "--error"]

    def add_machine(self, machine, password):
        subprocess.check_call(self.cscli + ["machines", "add", machine, "--password", password, "--force",
                                            "-f", os.path.join(self.tmp, "creds-%s.yaml" % machine)],
                              stdout=subprocess.DEVNULL)

    def add_bouncer(self, name):
        key = secrets.token_hex(16)
        subprocess.check_call(self.cscli + ["bouncers", "add", name, "-k", key], stdout=subprocess.DEVNULL)
        return key

    def start(self):
        self.lapi.start()
        PROCS.append(self.lapi.proc)
        self.pid = self.lapi.proc.pid
        if not wait_health(self.port, self.lapi.proc):
            raise RuntimeError("CrowdSec LAPI not healthy, see %s/lapi.out and %s/log" % (self.tmp, self.tmp))

    def stop(self):
        self.lapi.stop()

    def import_file(self, ds):
        """`cscli decisions import` of the decision set (JSON); returns seconds."""
        path = os.path.join(self.tmp, "import.json")
        with open(path, "w") as f:
            json.dump([{"duration": "24h", "scope": s, "type": "ban", "value": v, "reason": "bench/import",
                        "origin": "cscli-import"} for s, v in ds.decisions], f)
        t0 = time.perf_counter()
        out = subprocess.run(self.cscli + ["decisions", "import", "-i", path], capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError("cscli decisions import: %s" % (out.stderr or out.stdout)[-500:])
        return dt


class Rampart:
    name = "rampart"

    def __init__(self, binpath, tmp):
        self.bin, self.tmp = binpath, tmp
        self.db = "sqlite://" + os.path.join(tmp, "rampart.db")
        self.port = free_port()

    def add_machine(self, machine, password):
        out = subprocess.run([self.bin, "machines", "add", machine, "--password", password, "--db", self.db],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("rampart machines add: %s" % (out.stderr or out.stdout)[-300:])

    def add_bouncer(self, name):
        key = secrets.token_hex(16)
        out = subprocess.run([self.bin, "bouncers", "add", name, "--key", key, "--db", self.db],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("rampart bouncers add: %s" % out.stderr[-300:])
        lines = [x.strip() for x in out.stdout.splitlines() if x.strip()]
        if not lines or lines[-1] != key:
            log("warning: `rampart bouncers add --key K` printed %r, expected the key alone" % out.stdout[:200])
        return key

    def start(self):
        self.out = open(os.path.join(self.tmp, "lapi.out"), "w")
        self.proc = subprocess.Popen([self.bin, "lapi", "--listen", "127.0.0.1:%d" % self.port, "--db", self.db],
                                     stdout=self.out, stderr=subprocess.STDOUT)
        PROCS.append(self.proc)
        self.pid = self.proc.pid
        if not wait_health(self.port, self.proc):
            raise RuntimeError("rampart lapi not healthy: %s" % open(os.path.join(self.tmp, "lapi.out")).read()[-1000:])

    def stop(self):
        p = self.proc
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ------------------------------------------------------------------------------------ measures

def load(lapi, watcher, bodies, n):
    """Push the prepared alert bodies one after the other; returns the load record."""
    c0, t0 = cpu_s(lapi.pid), time.perf_counter()
    retries = []
    posts = [watcher.post_alerts(b, retries) for b in bodies]
    wall = time.perf_counter() - t0
    cpu = cpu_s(lapi.pid) - c0
    log("  POST times (s): first %.2f, median %.2f, last %.2f" % (posts[0], statistics.median(posts), posts[-1]))
    return {"wall_s": wall, "decisions_per_s": n / wall, "server_cpu_s": cpu, "posts": len(posts),
            "post_s_median": statistics.median(posts), "post_s_max": max(posts), "post_s": posts,
            "retries": retries}


def check_answers(lapi, key, ds, k=100):
    """A sample of hits must return decisions, misses must return null (or [])."""
    sample = [(ip, True) for ip in ds.hits[:k]] + [(ip, False) for ip in ds.misses[:k]]

    def one(q):
        ip, expected = q
        st, body, _ = request(lapi.port, "GET", "/v1/decisions?ip=" + ip, headers={"X-Api-Key": key})
        got = json.loads(body) if st == 200 else None
        if st != 200 or bool(got) != expected:
            return {"ip": ip, "status": st, "expected_hit": expected, "body": body[:200].decode(errors="replace")}
        return None

    with concurrent.futures.ThreadPoolExecutor(4) as ex:  # CrowdSec needs ~0.5 s per query at 1M decisions
        bad = [x for x in ex.map(one, sample) if x]
    return {"checked": len(sample), "wrong": len(bad), "examples": bad[:5]}


WRK_LUA = r"""-- written by bench/lapi_compare.py: cycles through the query file, each thread from its own offset
local reqs, n, i = {}, 0, 0
local tid = 0
function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
end
function init(args)
  for line in io.lines(args[1]) do
    n = n + 1
    reqs[n] = wrk.format(nil, "/v1/decisions?ip=" .. line)
  end
  i = ((tid or 1) * 7919) % n
end
function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
"""


def parse_wrk(txt):
    d = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    d["req_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", txt)
    d["requests"] = int(m.group(1)) if m else None
    unit = {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}
    for q in ("50", "75", "90", "99"):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s|m)\b" % q, txt)
        d["p%s_ms" % q] = float(m.group(1)) * unit[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    d["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    d["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    return d


def run_wrk(lapi, key, tmp, queries, conns, threads, duration, timeout_s):
    qf = os.path.join(tmp, "queries.txt")
    with open(qf, "w") as f:
        f.write("\n".join(ip for ip, _ in queries) + "\n")
    lua = os.path.join(tmp, "queries.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", "%ds" % duration, "--timeout", "%ds" % timeout_s,
           "--latency", "-s", lua, "-H", "X-Api-Key: " + key, "http://127.0.0.1:%d" % lapi.port, "--", qf]
    c0, b0 = cpu_s(lapi.pid), busy_s()
    r0 = os.times()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = os.times()
    server_cpu, busy = cpu_s(lapi.pid) - c0, busy_s() - b0
    client_cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    d = parse_wrk(out.stdout)
    if d["req_per_s"] is None:
        raise RuntimeError("wrk failed: %s %s" % (out.stdout[-500:], out.stderr[-500:]))
    d.update({"conns": conns, "threads": threads, "duration_s": duration, "wall_s": wall,
              "server_cpu_s": server_cpu, "client_cpu_s": client_cpu,
              "others_cpu_s": max(0.0, busy - server_cpu - client_cpu), "loadavg": open("/proc/loadavg").read().split()[:3],
              "server_cpu_ms_per_req": 1000 * server_cpu / d["requests"] if d["requests"] else None,
              "drain_s": wait_idle(lapi.pid), "raw": out.stdout})
    return d


def stream_startup(lapi, key, n_expected, tmp):
    """Timed with curl (Python's chunked reader would add ~30% at 1M); the body is parsed afterwards."""
    path = os.path.join(tmp, "stream.json")
    c0 = cpu_s(lapi.pid)
    out = subprocess.run(["curl", "-sS", "-o", path, "-A", USER_AGENT, "-H", "X-Api-Key: " + key, "--max-time", "900",
                          "-w", "%{http_code} %{size_download} %{time_total} %{time_starttransfer}",
                          "http://127.0.0.1:%d/v1/decisions/stream?startup=true" % lapi.port],
                         capture_output=True, text=True)
    code, size, total, ttfb = (out.stdout.split() + ["0"] * 4)[:4]
    rec = {"status": int(code), "wall_s": float(total), "ttfb_s": float(ttfb), "bytes": int(size),
           "server_cpu_s": cpu_s(lapi.pid) - c0}
    if out.returncode != 0:
        rec["error"] = out.stderr[-300:]
    try:
        with open(path, "rb") as f:
            j = json.load(f)
        rec["json_ok"] = isinstance(j, dict)
        rec["new"] = len(j.get("new") or [])
        rec["deleted"] = len(j.get("deleted") or [])
    except ValueError as e:
        rec["json_ok"], rec["error"] = False, str(e)[:200]
    rec["new_ok"] = rec.get("new") == n_expected
    os.unlink(path)
    return rec


def push_latency(lapi, watcher, key, spare, reps):
    """Rampart: a long-polling bouncer (stream?wait=30s) vs one-decision POSTs; seconds per rep."""
    st, body, _ = request(lapi.port, "GET", "/v1/decisions/stream?startup=true", headers={"X-Api-Key": key})
    if st != 200:
        raise RuntimeError("stream startup for the push bouncer: %s %s" % (st, body[:200]))
    seen = {}  # value -> perf_counter at arrival
    cv = threading.Condition()
    stop = threading.Event()
    errors, polls = [], []

    def poller():
        c = http.client.HTTPConnection("127.0.0.1", lapi.port, timeout=60)
        while not stop.is_set():
            try:
                t0 = time.perf_counter()
                c.request("GET", "/v1/decisions/stream?wait=30s", headers={"X-Api-Key": key, "User-Agent": USER_AGENT})
                r = c.getresponse()
                data = r.read()
                t = time.perf_counter()
                polls.append(t - t0)
                if r.status != 200:
                    errors.append("status %s %s" % (r.status, data[:200]))
                    time.sleep(0.5)
                    continue
                j = json.loads(data)
                with cv:
                    for d in j.get("new") or []:
                        seen.setdefault(d.get("value"), t)
                    cv.notify_all()
            except (OSError, ValueError, http.client.HTTPException) as e:
                errors.append(repr(e)[:200])
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", lapi.port, timeout=60)
                time.sleep(0.2)
        c.close()

    th = threading.Thread(target=poller, daemon=True)
    th.start()
    time.sleep(0.3)
    lat, post_s, missed = [], [], 0
    rng = random.Random(7)
    for i in range(reps):
        ip = spare[i]
        body = json.dumps([cscli_alert([("Ip", ip)], watcher.machine)]).encode()
        watcher.auth()
        time.sleep(rng.uniform(0.02, 0.08))  # let the poller park its next long-poll
        t0 = time.perf_counter()
        post_s.append(watcher.post_alerts(body))
        with cv:
            ok = cv.wait_for(lambda: ip in seen, timeout=35)
        if ok:
            lat.append(seen[ip] - t0)
        else:
            missed += 1
    stop.set()
    # the poller may sit in a 30 s long-poll: it is a daemon thread, left to end with the process
    return {"reps": reps, "latency_s": lat, "missed": missed, "post_s_median": statistics.median(post_s),
            "poller_errors": errors[:5], "polls": len(polls)}


def poll_cost(lapi, watcher, key, spare, reps):
    """CrowdSec: what a polling bouncer's pull costs right after one decision was added."""
    st, body, _ = request(lapi.port, "GET", "/v1/decisions/stream?startup=true", headers={"X-Api-Key": key})
    if st != 200:
        raise RuntimeError("stream startup for the poll bouncer: %s %s" % (st, body[:200]))
    secs, missed = [], 0
    for i in range(reps):
        ip = spare[i]
        watcher.post_alerts(json.dumps([cscli_alert([("Ip", ip)], watcher.machine)]).encode())
        st, body, dt = request(lapi.port, "GET", "/v1/decisions/stream", headers={"X-Api-Key": key})
        got = {d.get("value") for d in (json.loads(body).get("new") or [])} if st == 200 else set()
        if ip in got:
            secs.append(dt)
        else:
            missed += 1
        time.sleep(1.1)  # CrowdSec's last_pull has second granularity in places: keep pulls apart
    return {"reps": reps, "poll_s": secs, "missed": missed}


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# ------------------------------------------------------------------------------------ one system, one size

def bench_system(kind, ra, rampart_bin, ds, bodies, a, cs_import):
    tmp = tempfile.mkdtemp(prefix="lapibench-%s-" % kind)
    if not a.keep:
        TEMPDIRS.append(tmp)
    lapi = CrowdSec(ra, tmp) if kind == "crowdsec" else Rampart(rampart_bin, tmp)
    machine, password = "bench-watcher", "benchpassword-" + secrets.token_hex(8)
    rec = {"system": kind, "n": ds.n}
    lapi.add_machine(machine, password)
    keys = {name: lapi.add_bouncer(name) for name in
            ["bench-query", "bench-push"] + ["bench-stream-%d" % i for i in range(a.stream_reps)]}
    lapi.start()
    try:
        rec["rss_idle_mb"] = proc_status(lapi.pid, "VmRSS")
        w = Watcher(lapi.port, machine, password)
        log("%s: loading %d decisions (%d POST /v1/alerts)" % (kind, ds.n, len(bodies)))
        rec["load"] = load(lapi, w, bodies, ds.n)
        log("%s: loaded in %.1f s" % (kind, rec["load"]["wall_s"]))
        rec["rss_after_load_mb"] = proc_status(lapi.pid, "VmHWM")
        rec["answers"] = check_answers(lapi, keys["bench-query"], ds)
        if rec["answers"]["wrong"]:
            log("%s: WRONG answers to GET /v1/decisions?ip=: %s" % (kind, rec["answers"]["examples"][:2]))
        log("%s: wrk %d connections, %d s" % (kind, a.conns, a.duration))
        rec["wrk"] = run_wrk(lapi, keys["bench-query"], tmp, ds.queries, a.conns, a.threads, a.duration, a.wrk_timeout)
        log("%s: %.0f req/s, p50 %.1f ms, p99 %.1f ms" % (kind, rec["wrk"]["req_per_s"], rec["wrk"]["p50_ms"] or -1,
                                                       rec["wrk"]["p99_ms"] or -1))
        # the same wrk against GET /health (no auth, no lookup): what client + server reach on this box
        hc = ["wrk", "-t", str(a.threads), "-c", str(a.conns), "-d", "%ds" % a.health_duration, "--latency",
              "http://127.0.0.1:%d/health" % lapi.port]
        rec["health_wrk"] = parse_wrk(subprocess.run(hc, capture_output=True, text=True).stdout)
        rec["stream"] = []
        for i in range(a.stream_reps):
            s = stream_startup(lapi, keys["bench-stream-%d" % i], ds.n, tmp)
            rec["stream"].append(s)
            log("%s: stream startup %.2f s, %d bytes, %s new" % (kind, s["wall_s"], s["bytes"], s.get("new")))
            if s["wall_s"] > a.stream_budget:
                break
        if kind == "rampart":
            log("rampart: push latency, %d reps" % a.push_reps)
            rec["push"] = push_latency(lapi, w, keys["bench-push"], ds.spare, a.push_reps)
        else:
            rec["poll"] = poll_cost(lapi, w, keys["bench-push"], ds.spare, a.poll_reps)
        rec["rss_peak_mb"] = proc_status(lapi.pid, "VmHWM")
        rec["server_cpu_total_s"] = cpu_s(lapi.pid)
    finally:
        lapi.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("%s: kept %s" % (kind, tmp))
    if kind == "crowdsec" and cs_import:
        tmp2 = tempfile.mkdtemp(prefix="lapibench-import-")
        if not a.keep:
            TEMPDIRS.append(tmp2)
        cs = CrowdSec(ra, tmp2)
        cs.add_machine("bench-import", "benchpassword-" + secrets.token_hex(8))
        key = cs.add_bouncer("bench-import-check")
        cs.start()
        try:
            log("crowdsec: cscli decisions import of %d decisions" % ds.n)
            try:
                rec["import_s"] = cs.import_file(ds)
            except RuntimeError as e:  # one try only: cscli itself does not retry
                rec["import_error"] = str(e)[-300:]
                log("crowdsec: %s" % rec["import_error"])
            else:
                s = stream_startup(cs, key, ds.n, tmp2)
                rec["import_check"] = {k: s.get(k) for k in ("new", "new_ok", "json_ok")}
                log("crowdsec: import %.1f s (stream has %s new)" % (rec["import_s"], s.get("new")))
        finally:
            cs.stop()
            if not a.keep:
                shutil.rmtree(tmp2, ignore_errors=True)
            else:
                log("crowdsec: kept %s" % tmp2)
    return rec


# ------------------------------------------------------------------------------------ report

def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if abs(x) >= 1000:
        nd = 0
    elif abs(x) >= 100:
        nd = min(nd, 1)
    return ("{:,.%df}" % nd).format(x)


def ratio(r, c, higher_better):
    if r is None or c is None or r == 0 or c == 0:
        return "–"
    x = r / c
    adv = x if higher_better else 1 / x
    return "%s (%s× %s)" % ("{:.3g}".format(x) if x < 1000 else fmt(x, 0), fmt(adv, 1 if adv >= 10 else 2),
                             "better" if adv >= 1 else "worse")


def median_stream(rec, key):
    xs = [s[key] for s in rec.get("stream") or [] if s.get(key) is not None]
    return statistics.median(xs) if xs else None


def render(n, cs, r, meta):
    lines = ["### LAPI, %s decisions" % "{:,}".format(n), "",
             "CrowdSec %s vs Rampart %s; %s. Ratio = Rampart / CrowdSec." % (meta["cs_version"], meta["rampart_version"],
                                                                          meta["set"]), "",
             "| measure | CrowdSec | Rampart | ratio |", "|---|---:|---:|---|"]

    def row(label, fn, nd=1, higher=False):
        cv, rv = (fn(cs) if cs else None), (fn(r) if r else None)
        lines.append("| %s | %s | %s | %s |" % (label, fmt(cv, nd), fmt(rv, nd),
                                                "" if higher is None else ratio(rv, cv, higher)))

    g = lambda *ks: (lambda rec: _dig(rec, ks))
    row("load via POST /v1/alerts (%s decisions per alert), s" % fmt(meta["per_alert"], 0), g("load", "wall_s"), 2)
    row("load, decisions/s", g("load", "decisions_per_s"), 0, True)
    row("load, server CPU s", g("load", "server_cpu_s"), 2)
    if cs and cs.get("import_s") is not None:
        lines.append("| CrowdSec `cscli decisions import`, s | %s | | |" % fmt(cs["import_s"], 2))
    row("GET /v1/decisions?ip= (%d conns, %d s), req/s" % (meta["conns"], meta["duration"]), g("wrk", "req_per_s"), 0, True)
    row("  latency p50, ms", g("wrk", "p50_ms"), 2)
    row("  latency p99, ms", g("wrk", "p99_ms"), 2)
    row("  server CPU ms per request", g("wrk", "server_cpu_ms_per_req"), 3)
    row("  client (wrk) CPU, % of the 2 cores", lambda x: _share(x, "client_cpu_s"), 0, None)
    row("  other processes' CPU, % of the 2 cores", lambda x: _share(x, "others_cpu_s"), 0, None)
    row("  for scale: GET /health with the same wrk, req/s", g("health_wrk", "req_per_s"), 0, True)
    row("  errors (non-2xx + socket), wrong answers in the 200-IP check", lambda x: _errs(x), 0, None)
    row("stream?startup=true, s to full body", lambda x: median_stream(x, "wall_s"), 3)
    row("  time to first byte, s", lambda x: median_stream(x, "ttfb_s"), 3)
    row("  server CPU s", lambda x: median_stream(x, "server_cpu_s"), 2)
    row("  body, MB", lambda x: (median_stream(x, "bytes") or 0) / 1e6 or None, 2)
    row("  entries in `new` (expected %s)" % "{:,}".format(n), lambda x: median_stream(x, "new"), 0, None)
    row("peak RSS (VmHWM) after load + queries, MB", g("rss_peak_mb"), 0)
    row("  peak RSS after load only, MB", g("rss_after_load_mb"), 0)
    if r and r.get("push"):
        p = r["push"]
        lat = [x * 1000 for x in p["latency_s"]]
        poll = (cs or {}).get("poll") or {}
        pc = [x * 1000 for x in poll.get("poll_s") or []]
        pcm = statistics.median(pc) if pc else 0
        cs_model = {"p50": POLL_EVERY_S * 500 + pcm, "p99": POLL_EVERY_S * 990 + pcm, "max": POLL_EVERY_S * 1000 + pcm}
        for q, v in (("p50", pct(lat, 50)), ("p99", pct(lat, 99)), ("max", max(lat) if lat else None)):
            lines.append("| new decision → bouncer, %s, ms | %s | %s | %s |" % (
                q, "~" + fmt(cs_model[q], 0) if cs else "–", fmt(v, 2), ratio(v, cs_model[q], False) if cs else "–"))
    lines.append("")
    notes = []
    if r and r.get("push"):
        p = r["push"]
        notes.append("Push (Rampart): %d one-decision `POST /v1/alerts` while a bouncer long-polls "
                     "`/v1/decisions/stream?wait=30s`; time from just before the POST to the arrival of the long-poll "
                     "response carrying the decision; %d missed; POST itself median %s ms. Target p99 < 50 ms: %s."
                     % (p["reps"], p["missed"], fmt(p["post_s_median"] * 1000, 2),
                        "PASS" if p["latency_s"] and pct([x * 1000 for x in p["latency_s"]], 99) < 50 and not p["missed"] else "FAIL"))
    if cs and cs.get("poll"):
        pc = [x * 1000 for x in cs["poll"]["poll_s"]]
        notes.append("CrowdSec has no push: a bouncer sees a new decision at its next poll (firewall bouncer "
                     "`update_frequency` %gs), so the delay is uniform over 0–%gs plus the poll itself; the poll "
                     "(`GET /v1/decisions/stream` right after one new decision) took median %s ms over %d pulls "
                     "(%d missed the decision). The CrowdSec push figures are this model, not a measure."
                     % (POLL_EVERY_S, POLL_EVERY_S, fmt(statistics.median(pc) if pc else None, 1), len(pc),
                        cs["poll"]["missed"]))
    if r and cs and r.get("wrk") and cs.get("wrk"):
        rq = r["wrk"]["req_per_s"] / cs["wrk"]["req_per_s"]
        notes.append("Target ≥ 20× CrowdSec's req/s: %s (%.1f×)." % ("PASS" if rq >= 20 else "FAIL", rq))
    for rec in (cs, r):
        if rec and (rec.get("load") or {}).get("retries"):
            rt = rec["load"]["retries"]
            notes.append("%s answered %d of its %d load POSTs with an error, each retried after 1 s (included in the "
                         "load time): %s" % (rec["system"], len(rt), rec["load"]["posts"], rt[0]))
        if rec and rec.get("answers", {}).get("wrong"):
            notes.append("%s answered %d of %d check queries wrongly, e.g. %s" % (
                rec["system"], rec["answers"]["wrong"], rec["answers"]["checked"], rec["answers"]["examples"][:2]))
        for s in (rec or {}).get("stream") or []:
            if not s.get("new_ok") or not s.get("json_ok") or s.get("status") != 200:
                notes.append("%s stream startup: status %s, json %s, %s new instead of %d." % (
                    rec["system"], s.get("status"), s.get("json_ok"), s.get("new"), n))
                break
    if cs and cs.get("import_error"):
        notes.append("CrowdSec's `cscli decisions import` failed: %s" % cs["import_error"])
    if cs and cs.get("import_check") and not cs["import_check"].get("new_ok"):
        notes.append("CrowdSec after `cscli decisions import`: %s entries in the stream, %d expected."
                     % (cs["import_check"].get("new"), n))
    if meta.get("extra"):
        notes.extend(meta["extra"])
    lines += ["- " + x for x in notes]
    return "\n".join(lines)


def _dig(rec, ks):
    for k in ks:
        if not isinstance(rec, dict):
            return None
        rec = rec.get(k)
    return rec


def _share(rec, key):
    w = rec.get("wrk")
    return 100 * w[key] / (os.cpu_count() * w["wall_s"]) if w and w.get(key) is not None else None


def _errs(rec):
    w = rec.get("wrk")
    if not w:
        return None
    return w["non2xx"] + sum(w["socket_errors"].values()) + rec.get("answers", {}).get("wrong", 0)


# ------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="comma list of decision counts (default 100000,1000000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 10k decisions, 5 s of wrk, 1 stream, 50 push reps (other flags still apply)")
    ap.add_argument("--systems", default="crowdsec,rampart", help="comma list: crowdsec, rampart")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-alert", type=int, default=PER_ALERT, help="decisions per POST /v1/alerts alert (default 10000)")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: on 2 cores, 2 threads cost more CPU for no more req/s)")
    ap.add_argument("--duration", type=int, default=None, help="wrk seconds (default 25, --quick 5)")
    ap.add_argument("--health-duration", type=int, default=None, help="wrk seconds on GET /health (default 5, --quick 2)")
    ap.add_argument("--wrk-timeout", type=int, default=60, help="wrk per-request timeout, s (default 60)")
    ap.add_argument("--stream-reps", type=int, default=None, help="fresh bouncers pulling stream?startup=true (default 3)")
    ap.add_argument("--stream-budget", type=float, default=60,
                    help="no further stream pulls once one took longer than this many seconds (default 60)")
    ap.add_argument("--push-reps", type=int, default=None, help="Rampart push-latency reps (default 250)")
    ap.add_argument("--poll-reps", type=int, default=None, help="CrowdSec poll-cost reps (default 10)")
    ap.add_argument("--import-max", type=int, default=1000000,
                    help="run CrowdSec's `cscli decisions import` only for sizes up to this (default 1000000)")
    ap.add_argument("--rampart", default=os.environ.get("RAMPART_BIN", os.path.join(REPO, "target", "release", "rampart")))
    ap.add_argument("--build", action="store_true", help="cargo build --release -p rampart first")
    ap.add_argument("--out", default=None, help="results dir (default $TMPDIR/rampart-bench/lapi-YYYYmmdd-HHMMSS)")
    ap.add_argument("--keep", action="store_true", help="keep the LAPIs' temp dirs (databases, logs)")
    a = ap.parse_args()
    q = a.quick
    sizes = [10000] if q and a.sizes == ap.get_default("sizes") else [int(x) for x in a.sizes.split(",") if x]
    a.duration = a.duration or (5 if q else 25)
    a.health_duration = a.health_duration or (2 if q else 5)
    a.stream_reps = a.stream_reps or (1 if q else 3)
    a.push_reps = a.push_reps or (50 if q else 250)
    a.poll_reps = a.poll_reps or (3 if q else 10)
    systems = [s for s in a.systems.split(",") if s]

    if not os.path.isfile(os.path.join(SHARED, "run_anchors.py")):
        print("skipped: ../shared/bench not found")
        return 0
    sys.path.insert(0, SHARED)
    sys.dont_write_bytecode = True  # no __pycache__ in ../shared
    import run_anchors as ra  # noqa: E402  (CrowdSec's private LAPI config)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ensure_tools()
    rampart = ensure_rampart(os.path.abspath(a.rampart), a.build) if "rampart" in systems else None
    out = os.path.abspath(a.out or os.path.join(os.environ.get("TMPDIR", "/tmp"), "rampart-bench",
                                                "lapi-" + time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    if rampart:  # a private copy: a rebuild during the run cannot mix two binaries
        shutil.copy2(rampart, os.path.join(out, "rampart"))
        meta_r = rampart_version(rampart)
        rampart = os.path.join(out, "rampart")
    else:
        meta_r = "–"
    meta = {"cs_version": crowdsec_version(), "rampart_version": meta_r, "per_alert": a.per_alert,
            "conns": a.conns, "threads": a.threads, "duration": a.duration, "cores": os.cpu_count(),
            "argv": sys.argv[1:]}
    log("results in %s; rampart %s; crowdsec %s" % (out, meta["rampart_version"], meta["cs_version"]))
    results = {"meta": meta, "sizes": {}}
    reports = []
    t_start = time.time()
    for n in sizes:
        t0 = time.time()
        ds = DecisionSet(n, a.seed)
        c = ds.counts()
        meta_n = dict(meta, set="%s IPv4 addresses, %s IPv4 /24 ranges, %s IPv6 addresses, type ban, 24h; "
                                "queries: %s distinct IPs, half hits; wrk -t%d -c%d -d%ds on %s cores shared "
                                "with the server" % ("{:,}".format(c["ip4"]), "{:,}".format(c["range4"]),
                                                     "{:,}".format(c["ip6"]), "{:,}".format(len(ds.queries)),
                                                     a.threads, a.conns, a.duration, os.cpu_count()))
        chunks = [ds.decisions[i:i + a.per_alert] for i in range(0, n, a.per_alert)]
        bodies = [json.dumps([cscli_alert(ch, "bench-watcher")]).encode() for ch in chunks]
        log("N=%d: decision set and %d alert bodies (%.1f MB) ready in %.1f s"
            % (n, len(bodies), sum(map(len, bodies)) / 1e6, time.time() - t0))
        recs = {}
        for kind in systems:
            try:
                recs[kind] = bench_system(kind, ra, rampart, ds, bodies, a, cs_import=(n <= a.import_max))
            except Exception as e:  # noqa: BLE001  report and go on with the other system
                log("%s failed at N=%d: %r" % (kind, n, e))
                recs[kind] = {"system": kind, "n": n, "error": repr(e)}
        results["sizes"][str(n)] = recs
        extra = ["%s FAILED: %s" % (k, v["error"]) for k, v in recs.items() if v.get("error")]
        rep = render(n, recs.get("crowdsec") if not recs.get("crowdsec", {}).get("error") else None,
                     recs.get("rampart") if not recs.get("rampart", {}).get("error") else None, dict(meta_n, extra=extra))
        reports.append(rep)
        print(rep + "\n", flush=True)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(out, "report.md"), "w") as f:
            f.write("\n\n".join(reports) + "\n")
    log("done in %.0f s; report.md and results.json in %s" % (time.time() - t_start, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
