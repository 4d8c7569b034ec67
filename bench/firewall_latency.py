#!/usr/bin/env python3
"""Firewall bouncers side by side: Rampart's `rampart-firewall-bouncer` and Debian's
`crowdsec-firewall-bouncer` (nftables mode), against the same Rampart LAPI (`rampart lapi`), in
one run.

Two network namespaces joined by a veth pair: "server" runs the LAPI (on its loopback), the
bouncer under test and a TCP listener; "attacker" owns the source addresses probes are sent from.
No packet leaves the two namespaces; both are removed at exit.

Measured:

1. push latency: a decision is added to the LAPI (`POST /v1/alerts`, timed from just before the
   request) while a prober in the attacker namespace opens TCP connections from the decision's
   address to the server, one after another; the time of the first connection attempt whose SYN
   goes unanswered is when the ban took effect. p50/p99/max over --reps decisions per bouncer
   (Rampart follows the LAPI by push; CrowdSec's bouncer polls every `update_frequency`, 10 s by
   default, so fewer reps by default).
2. load: N decisions in the LAPI (random public IPv4 addresses, ~1% /24 ranges, ~0.1% IPv6), the
   bouncer started; time until packets from 25 sampled banned addresses (20 random ones and the 5
   last inserted) are all dropped, then the kernel sets' element count (`nft list table`); peak RSS
   (VmHWM) of the bouncer process, and the peak RSS of its child processes sampled every 100 ms
   (Rampart's bouncer pipes its batches to `nft -f -`; CrowdSec's talks netlink in-process).

Needs root, python3 (stdlib only), nftables, iproute2 and Debian's crowdsec-firewall-bouncer
(installed with apt-get if missing). Builds the release binaries unless --no-build.
See bench/README.md, section "Firewall bouncer benchmark".
"""
import argparse
import atexit
import concurrent.futures
import ctypes
import datetime
import errno
import http.client
import ipaddress
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
UA = "fw-bench/v1"
PER_ALERT = 10000
CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)

SERVER_IP = "10.99.0.1"
ATTACKER_LINK_IP = "10.99.0.2"
LAT_NET = "100.64.%d.%d"   # latency probe sources (CGNAT space: never in the load sets)

PROCS = []
NETNS = []
TEMPDIRS = []


def log(msg):
    print("[fw-bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def cleanup():
    for p in reversed(PROCS):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    PROCS.clear()
    for ns in NETNS:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    NETNS.clear()
    for d in TEMPDIRS:
        shutil.rmtree(d, ignore_errors=True)
    TEMPDIRS.clear()


def on_signal(sig, frame):
    cleanup()
    sys.exit(128 + sig)


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


# ---------------------------------------------------------------- namespaces


def setns(name):
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns %s: %s" % (name, os.strerror(e)))
    finally:
        os.close(fd)


def ns_pool(name, workers=1):
    """Threads that live in network namespace `name` (sockets they open belong to it)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=workers, initializer=setns, initargs=(name,))


class Lab:
    def __init__(self):
        tag = "fwb%d" % os.getpid()
        self.server, self.attacker = tag + "s", tag + "a"
        for ns in (self.server, self.attacker):
            sh("ip", "netns", "add", ns)
            NETNS.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        s, a = self.server, self.attacker
        sh("ip", "-n", s, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", a)
        sh("ip", "-n", s, "addr", "add", SERVER_IP + "/24", "dev", "veth0")
        sh("ip", "-n", s, "addr", "add", "fd99::1/64", "dev", "veth0", "nodad")
        sh("ip", "-n", a, "addr", "add", ATTACKER_LINK_IP + "/24", "dev", "veth1")
        sh("ip", "-n", a, "addr", "add", "fd99::2/64", "dev", "veth1", "nodad")
        sh("ip", "-n", s, "link", "set", "veth0", "up")
        sh("ip", "-n", a, "link", "set", "veth1", "up")
        # Answers to the probe sources (any address) go back to the attacker namespace.
        sh("ip", "-n", s, "route", "add", "default", "via", ATTACKER_LINK_IP)
        sh("ip", "-n", s, "-6", "route", "add", "default", "via", "fd99::2")
        self.spool = ns_pool(s, 4)
        self.apool = ns_pool(a, 4)
        self.port = self.spool.submit(self._listen).result()
        self.sources = set()

    def _listen(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((SERVER_IP, 0))
        ls.listen(4096)

        def accept():
            while True:
                c, _ = ls.accept()
                c.close()
        threading.Thread(target=accept, daemon=True).start()
        return ls.getsockname()[1]

    def add_sources(self, addrs):
        """Gives the attacker namespace these addresses (batched through `ip -batch`)."""
        new = [x for x in addrs if x not in self.sources]
        if not new:
            return
        lines = "".join("addr add %s/%d dev veth1%s\n" % (x, 128 if ":" in x else 32, " nodad" if ":" in x else "")
                        for x in new)
        sh("ip", "-n", self.attacker, "-batch", "-", input=lines.encode())
        self.sources.update(new)

    def close(self):
        self.spool.shutdown(wait=False, cancel_futures=True)
        self.apool.shutdown(wait=False, cancel_futures=True)


def linger0(s):
    # Closing with RST leaves no TIME_WAIT behind: probes reuse few source ports thousands of times.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def connect_once(src, dst, port, timeout):
    s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET, socket.SOCK_STREAM)
    linger0(s)
    s.bind((src, 0))
    s.settimeout(timeout)
    try:
        s.connect((dst, port))
        return True
    except (socket.timeout, TimeoutError):
        return False
    finally:
        s.close()


def probe_many(srcs, dst, port, timeout):
    """Non-blocking connects from every source at once; returns the set of sources answered."""
    socks = {}
    for src in srcs:
        s = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET, socket.SOCK_STREAM)
        linger0(s)
        s.setblocking(False)
        s.bind((src, 0))
        err = s.connect_ex((dst if ":" not in src else "fd99::1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            continue
        socks[s] = src
    answered = set()
    end = time.monotonic() + timeout
    pending = dict(socks)
    while pending:
        left = end - time.monotonic()
        if left <= 0:
            break
        _, w, _ = select.select([], list(pending), [], left)
        for s in w:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                answered.add(pending[s])
            del pending[s]
    for s in socks:
        s.close()
    return answered


# ---------------------------------------------------------------- LAPI


class Lapi:
    def __init__(self, lab, rampart, tmp):
        self.lab, self.bin = lab, rampart
        self.db = "sqlite://%s/lapi.db" % tmp
        self.port = 8080
        sh(rampart, "machines", "add", "bench", "--password", "bench-password", "--db", self.db,
           stdout=subprocess.DEVNULL)
        out = open(os.path.join(tmp, "lapi.log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", lab.server, rampart, "lapi", "--listen",
                              "127.0.0.1:%d" % self.port, "--db", self.db, "--metrics", "off"],
                             stdout=out, stderr=subprocess.STDOUT)
        PROCS.append(p)
        self.proc = p
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.request("GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the LAPI did not come up")
        self.token = None
        self.login()

    def add_bouncer(self, name):
        return subprocess.run([self.bin, "bouncers", "add", name, "--db", self.db], check=True,
                              capture_output=True, text=True).stdout.strip()

    def request(self, method, path, body=None, headers=None, timeout=900):
        def go():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            h = {"User-Agent": UA, "Content-Type": "application/json"}
            h.update(headers or {})
            c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
            r = c.getresponse()
            data = r.read()
            c.close()
            return r.status, data
        return self.lab.spool.submit(go).result()

    def login(self):
        st, data = self.request("POST", "/v1/watchers/login",
                                {"machine_id": "bench", "password": "bench-password", "scenarios": []})
        if st != 200:
            raise RuntimeError("login: %s %s" % (st, data[:200]))
        self.token = json.loads(data)["token"]

    def post_decisions(self, decisions, duration):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        scope, value = decisions[0]
        alert = {
            "capacity": 0, "events": [], "events_count": 1, "leakspeed": "0",
            "message": "bench", "scenario": "bench", "scenario_hash": "", "scenario_version": "",
            "simulated": False, "start_at": now, "stop_at": now, "remediation": True,
            "source": {"scope": scope, "value": value},
            "decisions": [{"duration": duration, "origin": "cscli", "scenario": "bench", "scope": s,
                           "type": "ban", "value": v} for s, v in decisions],
        }
        for attempt in range(2):
            st, data = self.request("POST", "/v1/alerts", [alert],
                                    {"Authorization": "Bearer " + self.token})
            if st == 401 and attempt == 0:
                self.login()
                continue
            if st != 201:
                raise RuntimeError("POST /v1/alerts: %s %s" % (st, data[:200]))
            return


# ---------------------------------------------------------------- decisions

EXCLUDED_FIRST = {0, 10, 100, 127, 169, 172, 192, 198, 203}
PUBLIC_FIRST = [o for o in range(1, 224) if o not in EXCLUDED_FIRST]


def decision_set(n, seed, taken):
    """n new unique decisions: public IPv4 addresses, ~1% /24 ranges, ~0.1% IPv6 addresses."""
    rng = random.Random(seed)
    n6, nr = max(1, n // 1000), max(1, n // 100)
    out = []
    while len(out) < n:
        k = len(out)
        if k < nr:
            v = "%s/24" % ipaddress.IPv4Address(((rng.choice(PUBLIC_FIRST) << 24) | rng.getrandbits(24)) & ~0xff)
            s = "Range"
        elif k < nr + n6:
            v, s = str(ipaddress.IPv6Address((0x2a0 << 116) | rng.getrandbits(116))), "Ip"
        else:
            v, s = str(ipaddress.IPv4Address((rng.choice(PUBLIC_FIRST) << 24) | rng.getrandbits(24))), "Ip"
            if v.rsplit(".", 1)[0] in taken:
                continue
        if v in taken:
            continue
        taken.add(v)
        if s == "Range":
            taken.add(v.split("/")[0].rsplit(".", 1)[0])
        out.append((s, v))
    rng.shuffle(out)
    return out


def load_lapi(lapi, decisions):
    t = time.time()
    for i in range(0, len(decisions), PER_ALERT):
        lapi.post_decisions(decisions[i:i + PER_ALERT], "24h")
    return time.time() - t


# ---------------------------------------------------------------- bouncers


def proc_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


class Bouncer:
    def __init__(self, kind, binpath, lab, lapi, tmp, key):
        self.kind, self.bin, self.lab, self.lapi, self.tmp, self.key = kind, binpath, lab, lapi, tmp, key
        self.proc = None
        self.table4 = "rampart" if kind == "rampart" else "crowdsec"
        self.runs = 0

    def config(self):
        path = os.path.join(self.tmp, "%s.yaml" % self.kind)
        if self.kind == "rampart":
            text = ("mode: nftables\napi_url: http://127.0.0.1:%d/\napi_key: %s\nlog_level: info\n"
                    "prometheus:\n  enabled: false\n" % (self.lapi.port, self.key))
        else:
            # Debian's file with the LAPI and key filled in, in the foreground, without Prometheus.
            text = ("mode: nftables\npid_dir: %s\nupdate_frequency: 10s\ndaemonize: false\nlog_mode: stdout\n"
                    "log_level: info\napi_url: http://127.0.0.1:%d/\napi_key: %s\ninsecure_skip_verify: false\n"
                    "disable_ipv6: false\ndeny_action: DROP\ndeny_log: false\nsupported_decisions_types:\n  - ban\n"
                    "blacklists_ipv4: crowdsec-blacklists\nblacklists_ipv6: crowdsec6-blacklists\n"
                    "ipset_type: nethash\niptables_chains:\n  - INPUT\nnftables:\n  ipv4:\n    enabled: true\n"
                    "    set-only: false\n    table: crowdsec\n    chain: crowdsec-chain\n  ipv6:\n    enabled: true\n"
                    "    set-only: false\n    table: crowdsec6\n    chain: crowdsec6-chain\nprometheus:\n"
                    "  enabled: false\n" % (self.tmp, self.lapi.port, self.key))
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self):
        self.runs += 1
        out = open(os.path.join(self.tmp, "%s-%d.log" % (self.kind, self.runs)), "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.lab.server, self.bin, "-c", self.config()],
                                     stdout=out, stderr=subprocess.STDOUT)
        PROCS.append(self.proc)
        self.started = time.monotonic()

    def log(self):
        with open(os.path.join(self.tmp, "%s-%d.log" % (self.kind, self.runs))) as f:
            return f.read()

    def table_exists(self):
        return subprocess.run(["ip", "netns", "exec", self.lab.server, "nft", "-t", "list", "table", "ip", self.table4],
                              capture_output=True).returncode == 0

    def elements(self):
        n = 0
        for fam, table in (("ip", self.table4), ("ip6", self.table4 + "6")):
            out = subprocess.run(["ip", "netns", "exec", self.lab.server, "nft", "list", "table", fam, table],
                                 capture_output=True).stdout
            n += out.count(b" expires ")
        return n

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Whatever a bouncer left behind must not filter the next one's traffic.
        for fam, table in (("ip", self.table4), ("ip6", self.table4 + "6")):
            subprocess.run(["ip", "netns", "exec", self.lab.server, "nft", "delete", "table", fam, table],
                           stderr=subprocess.DEVNULL)


def wait_ready(b, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b.proc.poll() is not None:
            raise RuntimeError("%s exited:\n%s" % (b.kind, b.log()[-2000:]))
        if b.table_exists():
            return
        time.sleep(0.1)
    raise RuntimeError("%s did not create its table" % b.kind)


def latency(b, lapi, lab, reps, first_index, period):
    """Decision added → first dropped SYN, ms, `reps` times with fresh source addresses. Each
    decision comes after a random pause of up to `period` (a polling bouncer's update_frequency),
    so that it lands at a random point of the bouncer's polling cycle."""
    b.start()
    wait_ready(b)
    time.sleep(1.0)  # past the startup pull
    srcs = [LAT_NET % (1 + (first_index + i) // 250, 1 + (first_index + i) % 250) for i in range(reps)]
    lab.add_sources(srcs)
    out = []
    for i, src in enumerate(srcs):
        time.sleep(random.uniform(0.05, max(0.25, period)))
        ready = threading.Event()
        horizon = 60.0

        def prober():
            ready.set()
            end = time.monotonic() + horizon
            while time.monotonic() < end:
                t = time.monotonic()
                if not connect_once(src, SERVER_IP, lab.port, 0.25):
                    return t
                time.sleep(0.001)
            return None
        fut = lab.apool.submit(prober)
        ready.wait()
        time.sleep(0.02)
        t0 = time.monotonic()
        lapi.post_decisions([("Ip", src)], "1h")
        t1 = fut.result()
        if t1 is None:
            raise RuntimeError("%s: %s never dropped" % (b.kind, src))
        out.append((t1 - t0) * 1000)
        if (i + 1) % 10 == 0:
            log("  %s: %d/%d, last %.1f ms" % (b.kind, i + 1, reps, out[-1]))
    b.stop()
    return out


def load(b, lab, samples, expected, timeout):
    """Start with `expected` decisions in the LAPI; seconds until every sample is dropped."""
    lab.add_sources(samples)
    peak_child = [0]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            if b.proc and b.proc.poll() is None:
                kb = sum(proc_kb(c, "VmRSS") for c in children(b.proc.pid))
                peak_child[0] = max(peak_child[0], kb)
            time.sleep(0.1)
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    b.start()
    pending = set(samples)
    done_at = None
    while time.monotonic() - b.started < timeout:
        if b.proc.poll() is not None:
            raise RuntimeError("%s exited:\n%s" % (b.kind, b.log()[-2000:]))
        t = time.monotonic()
        answered = lab.apool.submit(probe_many, sorted(pending), SERVER_IP, lab.port, 0.3).result()
        pending &= answered
        if not pending:
            done_at = t - b.started
            break
        time.sleep(0.05)
    hwm = proc_kb(b.proc.pid, "VmHWM")
    rss = proc_kb(b.proc.pid, "VmRSS")
    # On a timeout this says how far the bouncer got.
    elements = b.elements()
    stop.set()
    th.join()
    log_text = b.log()
    b.stop()
    return {"seconds": done_at, "hwm_mb": hwm / 1024, "rss_mb": rss / 1024,
            "child_peak_mb": peak_child[0] / 1024, "elements": elements, "expected": expected,
            "log": log_text}


# ---------------------------------------------------------------- report


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


def fmt(x, nd=1):
    if x is None:
        return "timeout"
    return "{:,.{}f}".format(x, nd)


def ratio(r, c):
    """CrowdSec's figure over Rampart's."""
    if r is None or c is None or r == 0:
        return ""
    return " {:,.0f}×".format(c / r) if c / r >= 10 else " %.1f×" % (c / r)


def ensure_tools(build):
    missing = [t for t in ("nft", "ip") if shutil.which(t) is None]
    if missing:
        sys.exit("missing: %s (apt-get install nftables iproute2)" % ", ".join(missing))
    if shutil.which("crowdsec-firewall-bouncer") is None:
        log("installing Debian's crowdsec-firewall-bouncer")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "install", "-y", "-q", "crowdsec-firewall-bouncer", env=env, stdout=subprocess.DEVNULL)
    # The package's service must not filter this host while we measure.
    subprocess.run(["systemctl", "stop", "crowdsec-firewall-bouncer"], stderr=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    if build:
        log("cargo build --release -p rampart -p bouncer-firewall")
        sh("cargo", "build", "--release", "-p", "rampart", "-p", "bouncer-firewall", cwd=REPO)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="decision counts for the load test")
    ap.add_argument("--reps", type=int, default=200, help="latency samples for Rampart's bouncer")
    ap.add_argument("--cs-reps", type=int, default=40, help="latency samples for crowdsec-firewall-bouncer")
    ap.add_argument("--load-timeout", type=float, default=900, help="seconds a bouncer may take to load")
    ap.add_argument("--no-build", action="store_true", help="use the existing binaries in --bin-dir")
    ap.add_argument("--bin-dir", default=os.path.join(REPO, "target", "release"),
                    help="where `rampart` and `rampart-firewall-bouncer` are (default: target/release)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, nftables)")
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ensure_tools(not a.no_build)
    rampart = os.path.join(a.bin_dir, "rampart")
    ours = os.path.join(a.bin_dir, "rampart-firewall-bouncer")
    theirs = shutil.which("crowdsec-firewall-bouncer")
    tmp = tempfile.mkdtemp(prefix="fw-bench-")
    if not a.keep:
        TEMPDIRS.append(tmp)
    else:
        log("keeping %s" % tmp)
    nft_version = subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()
    cs_version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "crowdsec-firewall-bouncer"],
                                capture_output=True, text=True).stdout.strip()
    lab = Lab()
    lapi = Lapi(lab, rampart, tmp)
    bouncers = [Bouncer("rampart", ours, lab, lapi, tmp, lapi.add_bouncer("rampart-fw")),
                Bouncer("crowdsec", theirs, lab, lapi, tmp, lapi.add_bouncer("crowdsec-fw"))]
    started = time.time()

    lat = {}
    for b, reps, first, period in ((bouncers[0], a.reps, 0, 0), (bouncers[1], a.cs_reps, a.reps, 10.0)):
        log("latency: %s, %d decisions" % (b.kind, reps))
        lat[b.kind] = latency(b, lapi, lab, reps, first, period)

    loads = {}
    taken = set()
    in_lapi = []
    for n in [int(x) for x in a.sizes.split(",") if x]:
        more = decision_set(n - len(in_lapi), n, taken)
        log("loading %d decisions into the LAPI" % len(more))
        secs = load_lapi(lapi, more)
        log("  %.1f s" % secs)
        in_lapi += more
        singles = [v for s, v in in_lapi if s == "Ip" and ":" not in v]
        rng = random.Random(n)
        last = [v for s, v in more if s == "Ip" and ":" not in v][-5:]
        samples = sorted(set(rng.sample(singles, 20) + last))
        for b in bouncers:
            log("load %d: %s" % (n, b.kind))
            r = load(b, lab, samples, len(in_lapi) + a.reps + a.cs_reps, a.load_timeout)
            log("  %s s, %d elements, peak RSS %.0f MB (children %.0f MB)"
                % (fmt(r["seconds"]), r["elements"], r["hwm_mb"], r["child_peak_mb"]))
            loads[(n, b.kind)] = r

    # ------------------------------------------------------------ table
    rl, cl = lat["rampart"], lat["crowdsec"]
    print()
    print("Firewall bouncers, same LAPI (`rampart lapi`, SQLite), nftables, %s; crowdsec-firewall-bouncer %s; "
          "%d cores; %.1f min" % (nft_version, cs_version, os.cpu_count(), (time.time() - started) / 60))
    print()
    print("| | rampart-firewall-bouncer | crowdsec-firewall-bouncer | CrowdSec ÷ Rampart |")
    print("|---|---:|---:|---|")
    print("| decision → first dropped packet, p50 ms | %s | %s |%s |" % (fmt(pct(rl, .5)), fmt(pct(cl, .5)),
                                                                      ratio(pct(rl, .5), pct(cl, .5))))
    print("| decision → first dropped packet, p99 ms | %s | %s |%s |" % (fmt(pct(rl, .99)), fmt(pct(cl, .99)),
                                                                      ratio(pct(rl, .99), pct(cl, .99))))
    print("| decision → first dropped packet, max ms (samples) | %s (%d) | %s (%d) | |"
          % (fmt(max(rl)), len(rl), fmt(max(cl)), len(cl)))
    for n in sorted({k[0] for k in loads}):
        r, c = loads[(n, "rampart")], loads[(n, "crowdsec")]
        shown = [fmt(x["seconds"], 2) if x["seconds"] is not None else "> %s (timeout)" % fmt(a.load_timeout, 0)
                 for x in (r, c)]
        print("| %s decisions: start → all sampled sources dropped, s | %s | %s |%s |"
              % ("{:,}".format(n), shown[0], shown[1], ratio(r["seconds"], c["seconds"])))
        print("| %s decisions: elements in the kernel sets | %s | %s | (%s decisions) |"
              % ("{:,}".format(n), "{:,}".format(r["elements"]), "{:,}".format(c["elements"]),
                 "{:,}".format(r["expected"])))
        print("| %s decisions: bouncer peak RSS, MB | %s | %s |%s |"
              % ("{:,}".format(n), fmt(r["hwm_mb"], 0), fmt(c["hwm_mb"], 0), ratio(r["hwm_mb"], c["hwm_mb"])))
        print("| %s decisions: child processes' peak RSS (sampled), MB | %s | %s | |"
              % ("{:,}".format(n), fmt(r["child_peak_mb"], 0), fmt(c["child_peak_mb"], 0)))
    print()
    for n in sorted({k[0] for k in loads}):
        for line in loads[(n, "rampart")]["log"].splitlines():
            if "decision list received" in line or "loaded into the kernel" in line:
                print("    rampart %s: %s" % ("{:,}".format(n), line.split("rampart_firewall_bouncer")[-1].strip()))
    lab.close()


if __name__ == "__main__":
    main()
