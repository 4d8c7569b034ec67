#!/usr/bin/env python3
"""`rampart decisions import` next to `cscli decisions import` (CrowdSec 1.4.6), in one run.

Each system gets a fresh LAPI on SQLite and the same N decisions (public IPv4 addresses, ~1% /24
ranges, ~0.1% IPv6, `ban` 24h) written to one JSON file in cscli's import format; the figure is the
wall time of the import command until it returns (both commands wait for the LAPI to store
everything), and the number of decisions the LAPI then holds. Rampart also imports the same set
as a plain list (one value per line) and as CSV.

Python 3 standard library; reuses bench/lapi_compare.py (decision set, LAPI starters) and CrowdSec's
private config from ../shared/bench/run_anchors.py. Usage:

    python3 bench/decisions_import.py                 # 100k decisions
    python3 bench/decisions_import.py --sizes 10000   # smoke run
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lapi_compare as lc  # noqa: E402


def count_active(lapi, key):
    """Active decisions as a bouncer sees them (startup stream)."""
    status, body, _ = lc.request(lapi.port, "GET", "/v1/decisions/stream?startup=true",
                              headers={"X-Api-Key": key})
    if status != 200:
        raise RuntimeError("stream: HTTP %s" % status)
    return len((json.loads(body) or {}).get("new") or [])


def rampart_import(r, path, fmt, tmp):
    creds = os.path.join(tmp, "creds-admin.yaml")
    with open(creds, "w") as f:
        f.write("url: http://127.0.0.1:%d/\nlogin: admin\npassword: %s\n" % (r.port, "benchpass-0123456789"))
    t0 = time.perf_counter()
    out = subprocess.run([r.bin, "decisions", "import", "-i", path, "--format", fmt, "--credentials", creds],
                         capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError("rampart decisions import: %s" % (out.stderr or out.stdout)[-500:])
    return dt


def one_size(n, a, rampart_bin, ra):
    ds = lc.DecisionSet(n, a.seed)
    rows = []
    # CrowdSec: its own import command against its own LAPI.
    tmp = tempfile.mkdtemp(prefix="import-cs-")
    lc.TEMPDIRS.append(tmp)
    cs = lc.CrowdSec(ra, tmp)
    cs.add_machine("admin", "benchpass-0123456789")
    key = cs.add_bouncer("count")
    cs.start()
    try:
        secs = cs.import_file(ds)
        held = count_active(cs, key)
    finally:
        cs.stop()
    rows.append(("CrowdSec %s `cscli decisions import` (JSON)" % lc.crowdsec_version(), secs, held))
    # Rampart: the same JSON, then the same set as values and as CSV, each on a fresh LAPI.
    for fmt in ("json", "values", "csv"):
        tmp = tempfile.mkdtemp(prefix="import-rampart-")
        lc.TEMPDIRS.append(tmp)
        r = lc.Rampart(rampart_bin, tmp)
        r.add_machine("admin", "benchpass-0123456789")
        key = r.add_bouncer("count")
        path = os.path.join(tmp, "import." + ("txt" if fmt == "values" else fmt))
        with open(path, "w") as f:
            if fmt == "json":
                json.dump([{"duration": "24h", "scope": s, "type": "ban", "value": v, "reason": "bench/import",
                            "origin": "cscli-import"} for s, v in ds.decisions], f)
            elif fmt == "values":
                f.write("".join(v + "\n" for _, v in ds.decisions))
            else:
                f.write("duration,origin,reason,scope,type,value\n")
                f.write("".join("24h,cscli-import,bench/import,%s,ban,%s\n" % (s, v) for s, v in ds.decisions))
        r.start()
        try:
            secs = rampart_import(r, path, fmt, tmp)
            held = count_active(r, key)
        finally:
            r.stop()
        rows.append(("Rampart `rampart decisions import` (%s)" % fmt, secs, held))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000", help="comma list of decision counts (default 100000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rampart", default=os.path.join(lc.REPO, "target", "release", "rampart"))
    ap.add_argument("--build", action="store_true", help="cargo build --release -p rampart first")
    ap.add_argument("--out", help="also write the markdown report here")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(lc.SHARED, "run_anchors.py")):
        print("skipped: %s not found (CrowdSec's private LAPI config lives there)" % lc.SHARED)
        return 0
    lc.ensure_tools()
    sys.path.insert(0, lc.SHARED)
    import run_anchors as ra  # noqa: E402
    binpath = lc.ensure_rampart(a.rampart, a.build)
    tmpbin = tempfile.mkdtemp(prefix="import-bin-")
    lc.TEMPDIRS.append(tmpbin)
    rampart_bin = os.path.join(tmpbin, "rampart")
    subprocess.check_call(["cp", binpath, rampart_bin])
    report = ["# Decision import: Rampart vs CrowdSec", "",
              "Rampart %s; 2 shared cores; SQLite for both; wall time of the import command." %
              lc.rampart_version(binpath), ""]
    for n in [int(x) for x in a.sizes.split(",") if x.strip()]:
        rows = one_size(n, a, rampart_bin, ra)
        cs_secs = rows[0][1]
        report += ["## %d decisions" % n, "",
                   "| command | seconds | decisions/s | active afterwards | vs CrowdSec |",
                   "|---|---:|---:|---:|---:|"]
        for name, secs, held in rows:
            report.append("| %s | %.2f | %.0f | %d | %s |" % (
                name, secs, n / secs, held, "1×" if secs == cs_secs else "%.1f× faster" % (cs_secs / secs)))
        report.append("")
    text = "\n".join(report)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        lc.cleanup()
