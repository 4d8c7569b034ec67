#!/usr/bin/env python3
"""Side-by-side benchmark of `rampart replay` and CrowdSec 1.4.6 (issue 4).

Runs both engines, in one go, on the same generated corpora (sshd auth.log as `syslog`, nginx
access.log as `nginx`) with the same hub items (the collections crowdsecurity/sshd, nginx, linux,
base-http-scenarios and their dependencies, as linked from /usr/share/crowdsec/hub by the shared
anchor harness), then prints one markdown table per corpus size: lines/s, CPU seconds, lines per
CPU-second, peak RSS, alerts, distinct IPs flagged, precision/recall against the ground truth, each
with the Rampart/CrowdSec ratio, followed by the differences between the flagged-IP sets.

All measuring of CrowdSec is done by ../shared/bench/run_anchors.py (subcommand `crowdsec`), all
measuring of Rampart by the same harness (subcommand `candidate`) around a `/usr/bin/time -v` of the
bare `rampart replay`; this script only prepares inputs, reads the results and compares them.
Python 3 standard library only. See bench/README.md.
"""
import argparse
import collections
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared", "bench"))
HARNESS = os.path.join(SHARED, "run_anchors.py")
GEN = os.path.join(SHARED, "gen_corpus.py")
# (file, acquisition type, label); the harness replays exactly these two.
LOGS = [("auth.log", "syslog", "sshd"), ("access.log", "nginx", "nginx")]
# Rates (lines per wall second) CrowdSec reaches here, used to plan a cap before a first measure.
PRIOR_CS_RATE = {"syslog": 2500.0, "nginx": 230.0}
TIME_RE = {
    "user_s": r"User time \(seconds\): ([\d.]+)",
    "sys_s": r"System time \(seconds\): ([\d.]+)",
    "maxrss_kb": r"Maximum resident set size \(kbytes\): (\d+)",
    "exit": r"Exit status: (\d+)",
}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ prerequisites

def ensure_crowdsec():
    """CrowdSec 1.4.6 from Debian, installed offline-safe as ../shared/bench/README.md explains."""
    if shutil.which("crowdsec") and shutil.which("cscli") and os.access("/usr/bin/time", os.X_OK):
        return
    if os.geteuid() != 0:
        sys.exit("crowdsec (and /usr/bin/time) missing and not root: apt-get install -y crowdsec time")
    cred = "/etc/crowdsec/online_api_credentials.yaml"
    if not (os.path.exists(cred) and os.path.getsize(cred) > 0):
        os.makedirs(os.path.dirname(cred), exist_ok=True)
        with open(cred, "w") as f:  # keeps the postinst from registering with the central API
            f.write("# offline benchmark: no central API\n")
    log("installing crowdsec and time with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.call(["apt-get", "install", "-y", "crowdsec", "time"], env=env) != 0:
        subprocess.call(["dpkg", "--configure", "-a"], env=env)
        subprocess.check_call(["apt-get", "update", "-qq"], env=env)
        subprocess.check_call(["apt-get", "install", "-y", "crowdsec", "time"], env=env)


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
    return path


def rampart_version(binpath):
    try:
        rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except OSError:
        rev = "?"
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(binpath)).strftime("%Y-%m-%d %H:%M")
    return "%s (binary built %s)" % (rev or "?", mtime)


def ensure_corpus(work, n, seed):
    d = os.path.join(work, "corpus-%d-seed%d" % (n, seed))
    if not os.path.isfile(os.path.join(d, "ground_truth.json")):
        log("generating corpus of %d lines in %s" % (n, d))
        subprocess.check_call([sys.executable, GEN, "--lines", str(n), "--seed", str(seed), "--out", d],
                              stdout=subprocess.DEVNULL)
    return d


def count_lines(path):
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def prefix_corpus(corpus, logname, cap):
    """A corpus whose `logname` is the first `cap` lines of the original; the other log is linked, and
    the ground truth keeps only the IPs of that log which appear in the prefix (so recall stays fair)."""
    d = "%s-%s-first%d" % (corpus, logname.split(".")[0], cap)
    if os.path.isfile(os.path.join(d, "ground_truth.json")):
        return d
    os.makedirs(d, exist_ok=True)
    seen = set()
    with open(os.path.join(corpus, logname), "rb") as src, open(os.path.join(d, logname), "wb") as dst:
        for i, line in enumerate(src):
            if i >= cap:
                break
            dst.write(line)
            seen.update(ip_tokens(line.decode("utf-8", "replace")))
    for other, _, _ in LOGS:
        if other != logname:
            os.symlink(os.path.join(corpus, other), os.path.join(d, other))
    truth = json.load(open(os.path.join(corpus, "ground_truth.json")))
    truth["ips"] = {ip: v for ip, v in truth["ips"].items() if v["log"] != logname or ip in seen}
    truth["prefix_of"] = {"corpus": corpus, "log": logname, "lines": cap}
    tmp = os.path.join(d, "ground_truth.json.tmp")
    json.dump(truth, open(tmp, "w"))
    os.rename(tmp, os.path.join(d, "ground_truth.json"))
    return d


IP_TOKEN = re.compile(r"(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7})(?![\w:.])")


def ip_tokens(line):
    return IP_TOKEN.findall(line)


# ------------------------------------------------------------------------------------ harness calls

def harness(args, results):
    """Runs run_anchors.py; returns (records it appended to `results`, its stdout)."""
    before = count_lines(results) if os.path.exists(results) else 0
    cmd = [sys.executable, HARNESS] + args + ["--results", results]
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stderr.write(p.stdout)
    if p.returncode != 0:
        sys.exit("harness failed (exit %d): %s" % (p.returncode, " ".join(cmd)))
    with open(results) as f:
        recs = [json.loads(l) for l in f.readlines()[before:] if l.strip()]
    return recs, p.stdout


def crowdsec_alerts(kept_dir):
    """Alerts stored by the harness's private LAPI (SQLite), as plain dicts."""
    db = os.path.join(kept_dir, "data", "crowdsec.db")
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    rows = con.execute("select scenario, source_scope, source_value, events_count, started_at, stopped_at, "
                       "simulated from alerts order by id").fetchall()
    con.close()
    return [{"scenario": r[0], "scope": r[1], "value": r[2], "events_count": r[3], "start_at": r[4],
             "stop_at": r[5], "simulated": bool(r[6])} for r in rows]


def run_crowdsec(corpus, logname, reps, results, keep):
    recs, out = harness(["crowdsec", "--corpus", corpus, "--logs", logname, "--reps", str(reps), "--keep"], results)
    kept = re.findall(r"^kept (\S+)$", out, re.M)
    if not kept:
        sys.exit("the harness did not keep its CrowdSec directory")
    replay = [r for r in recs if r["bench"] == "crowdsec-replay"]
    detect = [r for r in recs if r["bench"] == "crowdsec-detect"][-1]
    reps_alerts = [crowdsec_alerts(k) for k in kept]
    return {"replay": replay, "detect": detect, "alerts": reps_alerts[-1], "alerts_reps": reps_alerts, "kept": kept}


def self_diff(runs):
    """How much an engine differs from itself over repeated runs of the same input."""
    if len(runs) < 2:
        return None
    a, b = runs[0], runs[1]
    pa, pb = collections.Counter(), collections.Counter()
    for alerts, pairs in ((a, pa), (b, pb)):
        for x in alerts:
            pairs[(x["scenario"], x["value"], norm_ts(x["stop_at"]))] += 1
    keys = {(k[0], k[1]) for k in set(pa) ^ set(pb)}
    return {"alerts": [len(r) for r in runs], "same_ips": len({frozenset(ip_set(r)) for r in runs}) == 1,
            "pairs_differing": len(keys), "pairs": len({(k[0], k[1]) for k in pa} | {(k[0], k[1]) for k in pb})}


# ------------------------------------------------------------------------------------ rampart content

def tree_items(kept):
    """(kind, stage, author, file) -> real path for every hub item CrowdSec ran with, from its config tree."""
    etc = os.path.join(kept, "etc")
    items = {}
    for kind in ("parsers", "postoverflows"):
        base = os.path.join(etc, kind)
        for stage in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            for f in sorted(os.listdir(os.path.join(base, stage))):
                real = os.path.realpath(os.path.join(base, stage, f))
                items[(kind, stage, os.path.basename(os.path.dirname(real)), f)] = real
    base = os.path.join(etc, "scenarios")
    for f in sorted(os.listdir(base)):
        real = os.path.realpath(os.path.join(base, f))
        items[("scenarios", "", os.path.basename(os.path.dirname(real)), f)] = real
    return items


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def manifest(kept):
    m = {"/".join(x for x in k if x): sha(p) for k, p in tree_items(kept).items()}
    for sub, folder in (("patterns", os.path.join(kept, "etc", "patterns")), ("data", os.path.join(kept, "data"))):
        for f in sorted(os.listdir(folder)):
            if not f.startswith("crowdsec.db"):
                m["%s/%s" % (sub, f)] = sha(os.path.join(folder, f))
    return m


def build_content(kept, dest):
    """Rampart content dir with the very files the CrowdSec run used: parsers/sXX-*/author/x.yaml,
    scenarios/author/x.yaml, postoverflows/sXX-*/author/x.yaml, patterns/ and data/ (dest_file names)."""
    if os.path.exists(dest):
        shutil.rmtree(dest)
    for (kind, stage, author, f), real in tree_items(kept).items():
        d = os.path.join(dest, kind, stage, author) if stage else os.path.join(dest, kind, author)
        os.makedirs(d, exist_ok=True)
        shutil.copy(real, os.path.join(d, f))
    shutil.copytree(os.path.join(kept, "etc", "patterns"), os.path.join(dest, "patterns"))
    os.makedirs(os.path.join(dest, "data"))
    for f in os.listdir(os.path.join(kept, "data")):
        if not f.startswith("crowdsec.db"):
            shutil.copy(os.path.join(kept, "data", f), os.path.join(dest, "data", f))
    json.dump(manifest(kept), open(os.path.join(dest, "MANIFEST.json"), "w"), indent=1, sort_keys=True)


def check_content_loads(rampart, content, work):
    """`rampart replay` on a one-line file per log type: any load error stops the bench, verbatim."""
    for logname, typ, _ in LOGS:
        one = os.path.join(work, "one-line-%s.log" % typ)
        with open(one, "w") as f:
            f.write({"syslog": "Mar 10 00:00:01 web01 sshd[1]: Connection closed by 10.0.0.1 port 22\n",
                     "nginx": '10.0.0.1 - - [10/Mar/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8"\n'}[typ])
        p = subprocess.run([rampart, "replay", "--file", one, "--type", typ, "--hub", content],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("rampart cannot load the content dir %s:\n%s%s" % (content, p.stdout, p.stderr))
        if p.stderr.strip():
            log("rampart stderr on a one-line %s replay: %s" % (typ, p.stderr.strip()))


def count_files(content):
    return {k: len([f for _, _, fs in os.walk(os.path.join(content, k)) for f in fs if f.endswith(".yaml")])
            for k in ("parsers", "scenarios", "postoverflows")}


# ------------------------------------------------------------------------------------ rampart runs

def parse_time(path):
    txt = open(path, errors="replace").read()
    d = {}
    for k, rx in TIME_RE.items():
        m = re.search(rx, txt)
        d[k] = float(m.group(1)) if m else None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", txt)
    d["wall_s"] = (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else None
    return d


def run_rampart(rampart, content, corpus, reps, results, outdir):
    """The harness's `candidate` subcommand around a bare, separately timed `rampart replay -o json`."""
    tag = os.path.basename(corpus)
    base = os.path.join(outdir, "rampart-%s-{type}" % tag.replace("{", "").replace("}", ""))
    inner = ("/usr/bin/time -v -o {b}.time {bin} replay --file {{file}} --type {{type}} --hub {hub} -o json "
             "> {b}.json 2> {b}.err && {py} {me} --extract-bans {b}.json > {{out}}").format(
        b=shlex.quote(base),
        bin=shlex.quote(rampart), hub=shlex.quote(content), py=shlex.quote(sys.executable),
        me=shlex.quote(os.path.abspath(__file__)))
    runs = {typ: [] for _, typ, _ in LOGS}
    recs_all = []
    for _ in range(reps):
        recs, _ = harness(["candidate", "--corpus", corpus, "--reps", "1", "--name", "rampart", "--cmd", inner],
                          results)
        recs_all += recs
        for _, typ, _ in LOGS:
            t = parse_time(base.format(type=typ) + ".time")
            if t.get("exit"):
                sys.exit("rampart replay failed on %s (%s):\n%s" % (corpus, typ, open(base.format(type=typ) + ".err").read()))
            if reps > 1:
                t["alerts"] = [flat_rampart(x) for x in json.load(open(base.format(type=typ) + ".json"))]
            runs[typ].append(t)
    out = {}
    for logname, typ, _ in LOGS:
        alerts = json.load(open(base.format(type=typ) + ".json"))
        rec = [r for r in recs_all if r.get("log") == logname][-1]
        err = open(base.format(type=typ) + ".err", errors="replace").read().strip()
        out[logname] = {"runs": runs[typ], "alerts_reps": [t.pop("alerts") for t in runs[typ] if "alerts" in t],
                        "harness": [r for r in recs_all if r.get("log") == logname],
                        "score": rec.get("score"), "alerts": [flat_rampart(a) for a in alerts], "stderr": err}
    return out


def flat_rampart(a):
    src = a.get("source") or {}
    return {"scenario": a.get("scenario"), "scope": src.get("scope"), "value": src.get("value"),
            "events_count": a.get("events_count"), "start_at": a.get("start_at"), "stop_at": a.get("stop_at"),
            "simulated": bool(a.get("simulated")), "remediation": a.get("remediation", True)}


def extract_bans(path):
    """IPs Rampart would ban (Ip-scoped alerts with remediation), one a line (the harness's {out})."""
    ips = sorted({a["source"]["value"] for a in json.load(open(path))
                  if (a.get("source") or {}).get("scope", "").lower() == "ip" and a.get("remediation", True)
                  and not a.get("simulated")})
    sys.stdout.write("".join(ip + "\n" for ip in ips))


# ------------------------------------------------------------------------------------ comparison

def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def ip_set(alerts):
    return {a["value"] for a in alerts if (a.get("scope") or "").lower() == "ip" and a.get("value")}


def measures_cs(cs, lines, logname):
    rp = cs["replay"]
    wall = median([r["wall_s"] for r in rp])
    cpu = median([(r["user_s"] or 0) + (r["sys_s"] or 0) for r in rp])
    return {"lines": lines, "wall_s": wall, "cpu_s": cpu, "rss_mb": median([r["maxrss_mb"] for r in rp]),
            "lines_per_s": lines / wall, "lines_per_cpu_s": lines / cpu if cpu else None,
            "alerts": len(cs["alerts"]), "ips": len(ip_set(cs["alerts"])),
            "score": cs["detect"]["score"][logname], "baseline_wall_s": median([r.get("baseline_wall_s") for r in rp]),
            "lapi_rss_mb": cs["detect"].get("lapi_rss_mb"), "banned": cs["detect"].get("banned_ips"),
            "exit": [r.get("exit") for r in rp], "self": self_diff(cs["alerts_reps"]),
            "duplicates": duplicates(cs["alerts"])}


def duplicates(alerts):
    """Alerts identical to an earlier one (scenario, source, start, stop, events): CrowdSec's agent
    sometimes pushes an alert batch to its LAPI twice."""
    seen = collections.Counter((a["scenario"], a["value"], norm_ts(a["start_at"]), norm_ts(a["stop_at"]),
                                a["events_count"]) for a in alerts)
    return sum(n - 1 for n in seen.values())


def measures_r(r, lines):
    wall = median([x["wall_s"] for x in r["runs"]])
    cpu = median([(x["user_s"] or 0) + (x["sys_s"] or 0) for x in r["runs"]])
    return {"lines": lines, "wall_s": wall, "cpu_s": cpu, "rss_mb": median([x["maxrss_kb"] for x in r["runs"]]) / 1024,
            "lines_per_s": lines / wall if wall else None, "lines_per_cpu_s": lines / cpu if cpu else None,
            "alerts": len(r["alerts"]), "ips": len(ip_set(r["alerts"])), "score": r["score"],
            "self": self_diff(r.get("alerts_reps") or [])}


def ip_line_counts(path, ips):
    c = collections.Counter()
    if not ips:
        return c
    with open(path, errors="replace") as f:
        for line in f:
            for t in ip_tokens(line):
                if t in ips:
                    c[t] += 1
    return c


def diff_report(logpath, truth, r_alerts, cs_alerts, max_examples=3):
    """Flagged-IP set differences, grouped by (who, ground-truth kind, scenarios that fired), with examples."""
    r_ips, cs_ips = ip_set(r_alerts), ip_set(cs_alerts)
    only_r, only_cs = r_ips - cs_ips, cs_ips - r_ips
    by_ip = {"rampart": collections.defaultdict(collections.Counter), "crowdsec": collections.defaultdict(collections.Counter)}
    for who, alerts in (("rampart", r_alerts), ("crowdsec", cs_alerts)):
        for a in alerts:
            by_ip[who][a["value"]][a["scenario"]] += 1
    counts = ip_line_counts(logpath, only_r | only_cs)
    groups = collections.OrderedDict()
    for who, other, ips in (("rampart", "crowdsec", only_r), ("crowdsec", "rampart", only_cs)):
        for ip in sorted(ips):
            kind = truth["ips"].get(ip, {}).get("kind", "not in ground truth")
            scen = ",".join(s.split("/")[-1] for s in sorted(by_ip[who][ip]))
            g = groups.setdefault((who, kind, scen), [])
            g.append(ip)
    lines = []
    for (who, kind, scen), ips in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        ex = []
        for ip in ips[:max_examples]:
            evs = "+".join(str(a["events_count"]) for a in (r_alerts if who == "rampart" else cs_alerts) if a["value"] == ip)
            ex.append("%s (%d log lines, events %s)" % (ip, counts.get(ip, 0), evs))
        lines.append("| only %s | %d | %s | %s | %s |" % (who, len(ips), kind, scen, "; ".join(ex)))
    # per-scenario alert counts
    sc = collections.defaultdict(lambda: [0, 0, set(), set()])
    for i, alerts in enumerate((r_alerts, cs_alerts)):
        for a in alerts:
            sc[a["scenario"]][i] += 1
            sc[a["scenario"]][2 + i].add(a["value"])
    scen_rows = ["| %s | %d | %d | %d | %d |" % (s, v[0], v[1], len(v[2]), len(v[3])) for s, v in sorted(sc.items())]
    # alert-level differences: (scenario, IP) pairs whose alerts differ, with their overflow times
    pairs = collections.defaultdict(lambda: ([], []))
    for i, alerts in enumerate((r_alerts, cs_alerts)):
        for a in alerts:
            pairs[(a["scenario"], a["value"])][i].append(norm_ts(a["stop_at"]))
    differing = collections.defaultdict(list)
    for (scen, ip), (rs, cs) in sorted(pairs.items()):
        if sorted(rs) != sorted(cs):
            differing[scen].append((ip, sorted(rs), sorted(cs)))
    alert_rows = []
    for scen, items in sorted(differing.items(), key=lambda kv: -len(kv[1])):
        ex = []
        for ip, rs, cs in items[:2]:
            only_r_t = sorted(set(rs) - set(cs))
            only_cs_t = sorted(set(cs) - set(rs))
            ex.append("%s: R %d alerts, CS %d; overflow times only R %s, only CS %s" % (
                ip, len(rs), len(cs), short(only_r_t), short(only_cs_t)))
        alert_rows.append("| %s | %d | %s |" % (scen, len(items), "; ".join(ex)))
    return {"only_rampart": sorted(only_r), "only_crowdsec": sorted(only_cs), "both": len(r_ips & cs_ips),
            "group_rows": lines, "scenario_rows": scen_rows, "alert_rows": alert_rows}


def norm_ts(t):
    """'2026-03-10 00:34:58+00:00' (SQLite) and '2026-03-10T00:34:58Z' (JSON) -> '03-10T00:34:58'."""
    t = (t or "").replace(" ", "T").replace("+00:00", "").rstrip("Z")
    return t.split(".")[0][5:]


def short(ts, n=3):
    return "[" + ", ".join(ts[:n]) + (", …+%d" % (len(ts) - n) if len(ts) > n else "") + "]"


def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, float):
        if nd == 0 or abs(x) >= 1000:
            return "{:,.0f}".format(x)
        return ("%%.%df" % nd) % x
    if isinstance(x, int):
        return "{:,}".format(x)
    return str(x)


def ratio(a, b, nd=2):
    if a is None or b in (None, 0):
        return "-"
    r = a / b
    return ("%.*f×" % (nd, r)) if r < 100 else ("%.0f×" % r)


def render(size, cols, cs_ver, r_ver, content_counts):
    """cols: list of dicts {title, r, cs, cap_note, diff}"""
    out = []
    out.append("### Corpus %s lines (seed 1): Rampart %s vs CrowdSec %s" % ("{:,}".format(size), r_ver, cs_ver))
    out.append("")
    hdr = "| metric |"
    sep = "|---|"
    for c in cols:
        hdr += " %s Rampart | %s CrowdSec | R/CS |" % (c["title"], c["title"])
        sep += "---:|---:|---:|"
    out += [hdr, sep]

    def row(name, key, nd=1, better=None, fn=None):
        s = "| %s |" % name
        for c in cols:
            a = fn(c["r"]) if fn else c["r"].get(key)
            b = fn(c["cs"]) if fn else c["cs"].get(key)
            s += " %s | %s | %s |" % (fmt(a, nd), fmt(b, nd), ratio(a, b))
        out.append(s)

    row("lines replayed", "lines", 0)
    row("wall s", "wall_s", 2)
    row("lines/s (wall)", "lines_per_s", 0)
    row("CPU s (user+sys)", "cpu_s", 2)
    row("**lines per CPU-s**", "lines_per_cpu_s", 0)
    row("**peak RSS MB**", "rss_mb", 0)
    row("alerts", "alerts", 0)
    row("distinct IPs flagged", "ips", 0)
    row("precision", None, 3, fn=lambda m: (m.get("score") or {}).get("precision"))
    row("recall", None, 3, fn=lambda m: (m.get("score") or {}).get("recall"))
    kinds = sorted({k for c in cols for m in (c["r"], c["cs"]) for k in ((m.get("score") or {}).get("per_kind") or {})})
    s = "| flagged/IPs per ground-truth kind |"
    for c in cols:
        for m in (c["r"], c["cs"]):
            pk = (m.get("score") or {}).get("per_kind") or {}
            s += " %s |" % ", ".join("%s %d/%d" % (k, pk[k]["flagged"], pk[k]["ips"]) for k in kinds if k in pk)
        s += " |"
    out.append(s)
    s = "| flagged IPs: both / only R / only CS |"
    for c in cols:
        d = c["diff"]
        s += " %d / %d / %d | | |" % (d["both"], len(d["only_rampart"]), len(d["only_crowdsec"]))
    out.append(s)
    out.append("")
    verdict = []
    for c in cols:
        cpu = (c["r"]["lines_per_cpu_s"] or 0) / (c["cs"]["lines_per_cpu_s"] or 1)
        rss = c["r"]["rss_mb"] / c["cs"]["rss_mb"]
        same = not c["diff"]["only_rampart"] and not c["diff"]["only_crowdsec"]
        verdict.append("%s: lines/CPU-s %.1f× (target ≥ 10×: %s), peak RSS %.2f× (target ≤ 0.25×: %s), same flagged IPs: %s"
                       % (c["title"], cpu, "PASS" if cpu >= 10 else "FAIL", rss, "PASS" if rss <= 0.25 else "FAIL",
                          "yes" if same else "no"))
    out += ["Targets — " + "; ".join(verdict) + ".", ""]
    notes = []
    for c in cols:
        if c.get("cap_note"):
            notes.append(c["cap_note"])
        cs = c["cs"]
        notes.append("%s: CrowdSec timings are the agent process only (`crowdsec -no-api`, incl. a fixed start+stop of "
                     "%ss measured on a one-line file); its separate LAPI peaked at %s MB RSS. CrowdSec flagged %d IPs, "
                     "banned %s." % (c["title"], fmt(cs.get("baseline_wall_s"), 1), fmt(cs.get("lapi_rss_mb"), 0),
                                     cs["ips"], cs.get("banned")))
        if cs.get("duplicates"):
            notes.append("%s: CrowdSec's database holds %d exact duplicate alerts (same scenario, IP, start, stop and "
                         "events count), counted in its alerts above." % (c["title"], cs["duplicates"]))
        for who, m in (("CrowdSec", cs), ("Rampart", c["r"])):
            sd = m.get("self")
            if sd:
                notes.append("%s: %s run-to-run on the same input (%d runs): alerts %s, same flagged IPs: %s, "
                             "(scenario, IP) pairs with different overflow times: %d of %d." % (
                                 c["title"], who, len(sd["alerts"]), "/".join(map(str, sd["alerts"])),
                                 "yes" if sd["same_ips"] else "NO", sd["pairs_differing"], sd["pairs"]))
        if c["r"].get("extra"):
            notes.append(c["r"]["extra"])
    out += ["- " + n for n in notes]
    out.append("- Content (same files for both): %s parser, %s scenario, %s postoverflow files." % (
        content_counts["parsers"], content_counts["scenarios"], content_counts["postoverflows"]))
    out.append("")
    for c in cols:
        d = c["diff"]
        out.append("#### %s: alerts per scenario" % c["title"])
        out += ["", "| scenario | alerts Rampart | alerts CrowdSec | IPs Rampart | IPs CrowdSec |", "|---|---:|---:|---:|---:|"]
        out += d["scenario_rows"]
        out.append("")
        if d["alert_rows"]:
            out.append("#### %s: (scenario, IP) pairs whose alerts differ" % c["title"])
            out += ["", "| scenario | pairs | examples (overflow times, UTC) |", "|---|---:|---|"]
            out += d["alert_rows"]
            out.append("")
        if d["group_rows"]:
            out.append("#### %s: IPs flagged by one engine only" % c["title"])
            out += ["", "| who | IPs | ground-truth kind | scenarios that fired | examples |", "|---|---:|---|---|---|"]
            out += d["group_rows"]
            out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------------ main

def parse_caps(spec):
    """'300000' (every log) or 'nginx=300000,syslog=0' (per acquisition type) -> {type or '*': lines}."""
    caps = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.rpartition("=")
        caps[k or "*"] = int(v)
    return caps


def plan_cap(lines, typ, rates, budget_min, caps):
    forced = caps.get(typ, caps.get("*", 0))
    if forced and lines > forced:
        return forced
    if budget_min <= 0:
        return None
    rate = rates.get(typ) or PRIOR_CS_RATE[typ]
    if lines / rate <= budget_min * 60:
        return None
    cap = max(10000, int(budget_min * 60 * rate) // 10000 * 10000)
    return cap if cap < 0.9 * lines else None  # a cap that saves under 10% is not worth a prefix


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=os.environ.get("SIZES", "100000,1000000"),
                    help="comma list of corpus sizes (total lines over both logs); default 100000,1000000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", os.path.join(os.environ.get("TMPDIR", "/tmp"), "rampart-bench")),
                    help="corpora, results and reports go here (default $TMPDIR/rampart-bench)")
    ap.add_argument("--rampart", default=os.environ.get("RAMPART_BIN", os.path.join(REPO, "target", "release", "rampart")))
    ap.add_argument("--build", action="store_true", help="run cargo build --release -p rampart first")
    ap.add_argument("--reps", type=int, default=1, help="runs per engine and log, at least (medians are reported)")
    ap.add_argument("--cs-sshd-reps", type=int, default=2,
                    help="CrowdSec runs on auth.log (cheap); 2 or more also shows how much CrowdSec's alerts vary "
                         "between two runs of the same input (default 2)")
    ap.add_argument("--rampart-reps", type=int, default=2,
                    help="Rampart runs per corpus (medians; 2 or more also checks its output is stable); default 2")
    ap.add_argument("--cs-budget-min", type=float, default=float(os.environ.get("CS_BUDGET_MIN", "40")),
                    help="cap CrowdSec's input to the prefix it replays in about this many minutes, estimated "
                         "from its rate on the previous size (0: never cap); default 40")
    ap.add_argument("--cs-max-lines", default=os.environ.get("CS_MAX_LINES", ""),
                    help="always cap CrowdSec's input to this many lines: N for every log, or per type, "
                         "e.g. nginx=300000 (default: no fixed cap)")
    ap.add_argument("--keep", action="store_true", help="keep CrowdSec's temp dirs")
    ap.add_argument("--extract-bans", metavar="JSON", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.extract_bans:
        extract_bans(a.extract_bans)
        return 0
    if not (os.path.isfile(HARNESS) and os.path.isfile(GEN)):
        print("skipped: ../shared/bench not found")
        return 0
    ensure_crowdsec()
    rampart = ensure_rampart(os.path.abspath(a.rampart), a.build)
    cs_ver, r_ver = crowdsec_version(), rampart_version(rampart)
    work = os.path.abspath(a.work)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(work, "run-" + stamp)
    os.makedirs(outdir, exist_ok=True)
    # a private copy, so a rebuild during the (long) run cannot mix two binaries in one table
    shutil.copy2(rampart, os.path.join(outdir, "rampart"))
    rampart = os.path.join(outdir, "rampart")
    results = os.path.join(outdir, "results.jsonl")
    content = os.path.join(outdir, "content")
    sizes = [int(x) for x in a.sizes.split(",") if x]
    log("work dir %s; rampart %s; crowdsec %s" % (outdir, r_ver, cs_ver))
    rates, reports, kept_dirs, ref_manifest = {}, [], [], None
    t_start = time.time()
    if not a.keep:
        import atexit
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in kept_dirs])
    for size in sizes:
        corpus = ensure_corpus(work, size, a.seed)
        truth = json.load(open(os.path.join(corpus, "ground_truth.json")))
        cs_runs = {}
        for logname, typ, label in LOGS:
            n = count_lines(os.path.join(corpus, logname))
            cap = plan_cap(n, typ, rates, a.cs_budget_min, parse_caps(a.cs_max_lines))
            src = prefix_corpus(corpus, logname, cap) if cap else corpus
            log("crowdsec on %s %s: %s lines%s" % (os.path.basename(corpus), logname, n,
                                                  " (capped to the first %d)" % cap if cap else ""))
            cs = run_crowdsec(src, logname, max(a.reps, a.cs_sshd_reps) if typ == "syslog" else a.reps,
                              results, a.keep)
            kept_dirs += cs["kept"]
            m = manifest(cs["kept"][-1])
            if ref_manifest is None:
                ref_manifest = m
                build_content(cs["kept"][-1], content)
                check_content_loads(rampart, content, outdir)
                log("rampart content dir %s: %s" % (content, count_files(content)))
            elif m != ref_manifest:
                sys.exit("CrowdSec's hub items changed between runs: %s" % sorted(set(m.items()) ^ set(ref_manifest.items())))
            cs["corpus"], cs["cap"], cs["lines"] = src, cap, (cap or n)
            cs_runs[logname] = cs
            r = cs["replay"][-1]
            rates[typ] = (cap or n) / r["wall_s"]
            json.dump(cs["alerts"], open(os.path.join(outdir, "crowdsec-%s-%s.alerts.json" % (size, typ)), "w"))
        # Rampart on the full corpus, plus on any prefix CrowdSec was capped to (for the comparison)
        r_full = run_rampart(rampart, content, corpus, max(a.reps, a.rampart_reps), results, outdir)
        r_prefix = {}
        for logname, typ, label in LOGS:
            cs = cs_runs[logname]
            if cs["cap"]:
                r_prefix[logname] = run_rampart(rampart, content, cs["corpus"], max(a.reps, a.rampart_reps), results,
                                                outdir)[logname]
        cols = []
        for logname, typ, label in LOGS:
            cs = cs_runs[logname]
            rr = r_prefix.get(logname) or r_full[logname]
            n_full = count_lines(os.path.join(corpus, logname))
            ctruth = json.load(open(os.path.join(cs["corpus"], "ground_truth.json"))) if cs["cap"] else truth
            col = {"title": label + (" (first %s lines)" % "{:,}".format(cs["cap"]) if cs["cap"] else ""),
                   "r": measures_r(rr, cs["lines"]), "cs": measures_cs(cs, cs["lines"], logname),
                   "diff": diff_report(os.path.join(cs["corpus"], logname), ctruth, rr["alerts"], cs["alerts"])}
            if rr["stderr"]:
                col["r"]["extra"] = "%s: rampart stderr: %s" % (label, rr["stderr"][:300])
            if cs["cap"]:
                full = measures_r(r_full[logname], n_full)
                why = ("--cs-max-lines" if parse_caps(a.cs_max_lines).get(typ, parse_caps(a.cs_max_lines).get("*"))
                       else "its estimated time for the whole log exceeded --cs-budget-min %s" % fmt(a.cs_budget_min, 0))
                col["cap_note"] = ("%s: CrowdSec was capped to the first %s of %s lines (%s); both engines ran on that prefix for this column. Rampart on the whole log: "
                                   "%s lines/s, %s lines per CPU-s, %s MB peak RSS, %s alerts, %s IPs, recall %s."
                                   % (label, "{:,}".format(cs["cap"]), "{:,}".format(n_full), why,
                                      fmt(full["lines_per_s"], 0), fmt(full["lines_per_cpu_s"], 0), fmt(full["rss_mb"], 0),
                                      full["alerts"], full["ips"], fmt((full["score"] or {}).get("recall"), 3)))
            cols.append(col)
        rep = render(size, cols, cs_ver, r_ver, count_files(content))
        reports.append(rep)
        open(os.path.join(outdir, "table-%d.md" % size), "w").write(rep + "\n")
        print(rep, flush=True)
        print(flush=True)
    open(os.path.join(outdir, "report.md"), "w").write("\n\n".join(reports) + "\n")
    log("done in %.0f s; tables and raw results in %s" % (time.time() - t_start, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
