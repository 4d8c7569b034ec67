#!/usr/bin/env python3
"""Generate Rampart's demo logs: auth.log (sshd via syslog), nginx-access.log and
apache-access.log (combined format).

    python3 demo/generate.py            # writes the three logs next to this script
    python3 demo/generate.py --out DIR

The output is fully determined by the seed below: running the script again gives
byte-identical files. Every address is from the documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) or private (RFC 1918), so nothing here
points at a real host. README.md describes what each file contains and which alerts
Rampart's default scenarios raise on it.
"""

import argparse
import datetime as dt
import os
import random

SEED = 20240312
HOST = "bastion"

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


class Log:
    """Collects (time, sequence, line) tuples and writes them sorted by time."""

    def __init__(self):
        self.entries = []

    def add(self, when, line):
        self.entries.append((when, len(self.entries), line))

    def lines(self):
        return [line for _, _, line in sorted(self.entries)]


def syslog_time(t):
    # "Mar 12 08:04:09", day padded with a space as syslog does ("Mar  2")
    return "%s %2d %s" % (t.strftime("%b"), t.day, t.strftime("%H:%M:%S"))


def clf_time(t):
    return t.strftime("%d/%b/%Y:%H:%M:%S +0000")


def fingerprint(rng, kind):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "%s SHA256:%s" % (kind, "".join(rng.choice(alphabet) for _ in range(43)))


# --------------------------------------------------------------------------------------
# auth.log
# --------------------------------------------------------------------------------------


def auth_log(rng):
    log = Log()
    start = dt.datetime(2024, 3, 12, 8, 0, 0)
    def pid(t):
        # process ids grow with time, as on a quiet host
        return 21800 + int((t - start).total_seconds()) // 2 + rng.randint(0, 1)

    def sys(t, prog, msg, p=None):
        tag = prog if p is None else "%s[%d]" % (prog, p)
        log.add(t, "%s %s %s: %s" % (syslog_time(t), HOST, tag, msg))

    def port():
        return rng.randint(32768, 60999)

    # --- cron: a job every five minutes, the hourly run-parts at :17 ----------------
    for minute in range(0, 60, 5):
        t = start + dt.timedelta(minutes=minute, seconds=1)
        p = pid(t)
        sys(t, "CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", p)
        sys(t, "CRON", "(root) CMD (/usr/local/sbin/backup-rotate --quiet)", p)
        sys(t + dt.timedelta(seconds=2), "CRON", "pam_unix(cron:session): session closed for user root", p)
    t = start + dt.timedelta(minutes=17, seconds=1)
    p = pid(t)
    sys(t, "CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", p)
    sys(t, "CRON", "(root) CMD (cd / && run-parts --report /etc/cron.hourly)", p)
    sys(t + dt.timedelta(seconds=1), "CRON", "pam_unix(cron:session): session closed for user root", p)

    # --- legitimate logins -----------------------------------------------------------
    def session(t, user, uid, ip, method="publickey", sudo=None, length=600, typo=False):
        p = pid(t)
        prt = port()
        if typo:
            sys(t, "sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                "ruser= rhost=%s  user=%s" % (ip, user), p)
            sys(t + dt.timedelta(seconds=2), "sshd", "Failed password for %s from %s port %d ssh2" % (user, ip, prt), p)
            t += dt.timedelta(seconds=6)
        key = ": " + fingerprint(rng, "ED25519") if method == "publickey" else ""
        sys(t, "sshd", "Accepted %s for %s from %s port %d ssh2%s" % (method, user, ip, prt, key), p)
        sys(t, "sshd", "pam_unix(sshd:session): session opened for user %s(uid=%d) by (uid=0)" % (user, uid), p)
        sid = 400 + int((t - start).total_seconds()) // 30
        sys(t, "systemd-logind", "New session %d of user %s." % (sid, user), 612)
        if sudo:
            st = t + dt.timedelta(seconds=rng.randint(20, 90))
            sp = pid(st)
            sys(st, "sudo", "%8s : TTY=pts/%d ; PWD=/home/%s ; USER=root ; COMMAND=%s"
                % (user, sid % 4, user, sudo), None)
            sys(st, "sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by %s(uid=%d)" % (user, uid), sp)
            sys(st + dt.timedelta(seconds=3), "sudo", "pam_unix(sudo:session): session closed for user root", sp)
        end = t + dt.timedelta(seconds=length)
        sys(end, "sshd", "Received disconnect from %s port %d:11: disconnected by user" % (ip, prt), p)
        sys(end, "sshd", "Disconnected from user %s %s port %d" % (user, ip, prt), p)
        sys(end, "sshd", "pam_unix(sshd:session): session closed for user %s" % user, p)
        sys(end, "systemd-logind", "Session %d logged out. Waiting for processes to exit." % sid, 612)
        sys(end + dt.timedelta(seconds=1), "systemd-logind", "Removed session %d." % sid, 612)

    session(start + dt.timedelta(minutes=2, seconds=14), "alice", 1000, "198.51.100.23",
            sudo="/usr/bin/systemctl reload nginx", length=1260)
    session(start + dt.timedelta(minutes=9, seconds=40), "deploy", 1002, "192.0.2.10", length=48)
    session(start + dt.timedelta(minutes=21, seconds=5), "bob", 1001, "10.0.4.12", method="password",
            sudo="/usr/bin/journalctl -u nginx --since -1h", length=900, typo=True)
    for minute, second in [(21, 40), (33, 51), (45, 12), (57, 30)]:
        session(start + dt.timedelta(minutes=minute, seconds=second), "deploy", 1002, "192.0.2.10",
                length=rng.randint(40, 70))
    session(start + dt.timedelta(minutes=38, seconds=12), "carol", 1003, "198.51.100.61", method="password",
            length=420, typo=True)
    session(start + dt.timedelta(minutes=51, seconds=30), "alice", 1000, "2001:db8:100::23",
            sudo="/usr/bin/apt-get upgrade -y", length=400)

    # --- attacker A, 203.0.113.45: fast password guessing on root -------------------
    # Three connections, each spending MaxAuthTries (6) passwords in about 20 s.
    t = start + dt.timedelta(minutes=6, seconds=3)
    for conn in range(3):
        p = pid(t)
        prt = port()
        for attempt in range(6):
            if attempt == 0:
                sys(t, "sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                    "ruser= rhost=203.0.113.45  user=root", p)
            sys(t, "sshd", "Failed password for root from 203.0.113.45 port %d ssh2" % prt, p)
            t += dt.timedelta(seconds=rng.randint(2, 4))
        sys(t, "sshd", "error: maximum authentication attempts exceeded for root from 203.0.113.45 "
            "port %d ssh2 [preauth]" % prt, p)
        sys(t, "sshd", "Disconnecting authenticating user root 203.0.113.45 port %d: "
            "Too many authentication failures [preauth]" % prt, p)
        sys(t, "sshd", "PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
            "rhost=203.0.113.45  user=root", p)
        t += dt.timedelta(seconds=rng.randint(3, 6))

    # --- attacker B, 198.51.100.77: dictionary of account names, one try each --------
    names = ["admin", "test", "oracle", "postgres", "ubuntu", "git", "ftpuser", "user", "guest", "support"]
    t = start + dt.timedelta(minutes=14, seconds=22)
    for name in names:
        p = pid(t)
        prt = port()
        sys(t, "sshd", "Invalid user %s from 198.51.100.77 port %d" % (name, prt), p)
        sys(t + dt.timedelta(seconds=1), "sshd", "pam_unix(sshd:auth): check pass; user unknown", p)
        sys(t + dt.timedelta(seconds=1), "sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 "
            "euid=0 tty=ssh ruser= rhost=198.51.100.77", p)
        sys(t + dt.timedelta(seconds=3), "sshd", "Failed password for invalid user %s from 198.51.100.77 "
            "port %d ssh2" % (name, prt), p)
        sys(t + dt.timedelta(seconds=3), "sshd", "Disconnected from invalid user %s 198.51.100.77 port %d "
            "[preauth]" % (name, prt), p)
        t += dt.timedelta(seconds=rng.randint(7, 12))

    # --- attacker C, 2001:db8:bad::17: slow guessing, one password every 70-80 s -----
    t = start + dt.timedelta(minutes=24, seconds=10)
    for _ in range(14):
        p = pid(t)
        prt = port()
        sys(t, "sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
            "ruser= rhost=2001:db8:bad::17  user=root", p)
        sys(t + dt.timedelta(seconds=2), "sshd", "Failed password for root from 2001:db8:bad::17 port %d ssh2" % prt, p)
        sys(t + dt.timedelta(seconds=3), "sshd", "Connection closed by authenticating user root "
            "2001:db8:bad::17 port %d [preauth]" % prt, p)
        t += dt.timedelta(seconds=rng.randint(70, 80))

    # --- attacker D, 203.0.113.150: probes which accounts exist, no password sent ----
    names = ["pi", "admin1", "ansible", "jenkins", "minecraft", "hadoop", "odoo", "nagios",
             "steam", "teamspeak", "vagrant", "elastic", "tomcat", "zabbix", "mysql"]
    t = start + dt.timedelta(minutes=40, seconds=2)
    for name in names:
        p = pid(t)
        prt = port()
        sys(t, "sshd", "Invalid user %s from 203.0.113.150 port %d" % (name, prt), p)
        sys(t + dt.timedelta(seconds=1), "sshd", "Connection closed by invalid user %s 203.0.113.150 port %d "
            "[preauth]" % (name, prt), p)
        t += dt.timedelta(seconds=rng.randint(18, 22))

    # --- background noise that must not raise alerts ---------------------------------
    # a banner grabber and an old client (other log types than failed authentication)
    for minute, msg in [(3, "Did not receive identification string from 192.0.2.33 port 51515"),
                        (19, "Unable to negotiate with 192.0.2.33 port 51602: no matching key exchange method "
                             "found. Their offer: diffie-hellman-group14-sha1,diffie-hellman-group1-sha1 [preauth]"),
                        (27, "Bad protocol version identification '\\026\\003\\001' from 192.0.2.33 port 51711"),
                        (44, "Did not receive identification string from 192.0.2.33 port 52010"),
                        (57, "banner exchange: Connection from 192.0.2.34 port 40412: invalid format")]:
        t = start + dt.timedelta(minutes=minute, seconds=rng.randint(0, 59))
        sys(t, "sshd", msg, pid(t))
    # a single failed login from a host that gives up
    t = start + dt.timedelta(minutes=47, seconds=33)
    p = pid(t)
    prt = port()
    sys(t, "sshd", "Invalid user backup from 203.0.113.200 port %d" % prt, p)
    sys(t + dt.timedelta(seconds=2), "sshd", "Failed password for invalid user backup from 203.0.113.200 "
        "port %d ssh2" % prt, p)
    sys(t + dt.timedelta(seconds=2), "sshd", "Connection closed by invalid user backup 203.0.113.200 "
        "port %d [preauth]" % prt, p)
    # the monitoring host checking that sshd answers
    for minute in range(4, 60, 10):
        t = start + dt.timedelta(minutes=minute, seconds=30)
        sys(t, "sshd", "Connection closed by 10.0.0.5 port %d [preauth]" % port(), pid(t))
    return log.lines()


# --------------------------------------------------------------------------------------
# web logs
# --------------------------------------------------------------------------------------

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.6261.105 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
]
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def combined(ip, t, verb, path, status, size, referer="-", ua="-"):
    return '%s - - [%s] "%s %s HTTP/1.1" %d %s "%s" "%s"' % (
        ip, clf_time(t), verb, path, status, size if size is not None else "-", referer, ua)


def browse(rng, log, ip, t, ua, site, pages, assets, missing=()):
    """A person reading a few pages: each page pulls its assets, then a pause."""
    referer = "-"
    for page in pages:
        log.add(t, combined(ip, t, "GET", page, 200, rng.randint(4000, 26000), referer, ua))
        for a in assets:
            if rng.random() < 0.5:
                status, size = 304, 0
            else:
                status, size = 200, rng.randint(800, 90000)
            log.add(t, combined(ip, t, "GET", a, status, size, site + page, ua))
        for m in missing:
            log.add(t, combined(ip, t, "GET", m, 404, 153, site + page, ua))
        missing = ()
        referer = site + page
        t += dt.timedelta(seconds=rng.randint(8, 60))
    return t


def nginx_log(rng):
    log = Log()
    start = dt.datetime(2024, 3, 12, 8, 0, 0)
    site = "https://shop.example.com"
    assets = ["/static/css/main.css", "/static/js/app.js", "/static/img/logo.svg"]
    catalogue = ["/", "/products/", "/products/trail-shoe-42", "/products/rain-jacket-7",
                 "/products/day-pack-20l", "/blog/", "/blog/waxing-your-jacket", "/about", "/contact",
                 "/cart", "/search?q=jacket", "/search?q=tent+2p"]

    # ordinary visitors
    visitors = ["198.51.100.14", "198.51.100.38", "192.0.2.77", "192.0.2.141", "2001:db8:2a::9",
                "198.51.100.203", "192.0.2.58", "2001:db8:7f::31", "198.51.100.119"]
    for i, ip in enumerate(visitors):
        t = start + dt.timedelta(minutes=rng.randint(0, 55), seconds=rng.randint(0, 59))
        pages = rng.sample(catalogue, rng.randint(3, 6))
        missing = ["/favicon.png"] if i % 4 == 0 else ()
        t = browse(rng, log, ip, t, rng.choice(BROWSERS), site, pages, assets, missing)
        if i % 3 == 1:
            log.add(t, combined(ip, t, "POST", "/cart/add", 302, 0, site + "/products/rain-jacket-7",
                                BROWSERS[1]))
    # a search engine, politely paced
    t = start + dt.timedelta(minutes=5)
    for page in ["/robots.txt", "/sitemap.xml", "/products/trail-shoe-42", "/blog/waxing-your-jacket",
                 "/products/old-model-3"]:
        status = 404 if page.endswith("old-model-3") else 200
        log.add(t, combined("192.0.2.200", t, "GET", page, status, 153 if status == 404 else rng.randint(300, 9000),
                            "-", GOOGLEBOT))
        t += dt.timedelta(seconds=rng.randint(40, 120))
    # the load balancer health check from the private network (whitelisted)
    for minute in range(0, 60, 2):
        t = start + dt.timedelta(minutes=minute, seconds=7)
        log.add(t, combined("10.0.0.5", t, "GET", "/healthz", 200, 2, "-", "kube-probe/1.29"))

    # scanner 1, 203.0.113.66: content discovery, then secrets
    t = start + dt.timedelta(minutes=12, seconds=40)
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.93 Safari/537.36"
    probes = ["/admin/", "/administrator/", "/wp-login.php", "/wp-admin/", "/phpmyadmin/", "/pma/",
              "/myadmin/", "/mysql/", "/manager/html", "/cgi-bin/luci", "/boaform/admin/formLogin",
              "/HNAP1/", "/solr/admin/info/system", "/actuator/env", "/console/", "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
              "/owa/auth/logon.aspx", "/remote/login", "/jenkins/login", "/user/login",
              "/.env", "/.git/config", "/config.php.bak", "/backup.zip", "/.aws/credentials"]
    for i, p in enumerate(probes):
        log.add(t, combined("203.0.113.66", t, "GET", p, 404, 153, "-", ua))
        if i % 2 == 1:
            t += dt.timedelta(seconds=1)

    # scanner 2, 198.51.100.200: sqlmap against the search page
    t = start + dt.timedelta(minutes=29, seconds=3)
    ua = "sqlmap/1.7.2#stable (https://sqlmap.org)"
    for q in ["jacket", "jacket%27", "jacket%27%20AND%201%3D1--%20-", "jacket%27%20AND%201%3D2--%20-",
              "jacket%22%20OR%20%221%22%3D%221", "jacket%27%20UNION%20ALL%20SELECT%20NULL--%20-",
              "jacket%27%20AND%20SLEEP%285%29--%20-", "jacket%29%20AND%201%3D1%20AND%20%28%271%27%3D%271"]:
        log.add(t, combined("198.51.100.200", t, "GET", "/search?q=" + q, 200, rng.randint(3000, 3600), "-", ua))
        t += dt.timedelta(seconds=rng.randint(1, 3))

    # scanner 3, 203.0.113.201: only asks for secrets, slowly
    t = start + dt.timedelta(minutes=37, seconds=16)
    for p in ["/.env", "/.git/HEAD", "/wp-config.php.bak"]:
        log.add(t, combined("203.0.113.201", t, "GET", p, 404, 153, "-", "Mozilla/5.0 (compatible)"))
        t += dt.timedelta(seconds=rng.randint(20, 50))

    # crawler, 2001:db8:c0::5: scrapes every product page, eight a second
    t = start + dt.timedelta(minutes=45, seconds=10)
    ua = "Mozilla/5.0 (compatible; PriceWatchBot/3.1)"
    for i in range(64):
        log.add(t, combined("2001:db8:c0::5", t, "GET", "/products/item-%d" % (1000 + i), 200,
                            rng.randint(9000, 16000), "-", ua))
        if i % 8 == 7:
            t += dt.timedelta(seconds=1)
    return log.lines()


def apache_log(rng):
    log = Log()
    start = dt.datetime(2024, 3, 12, 8, 0, 0)
    site = "https://wiki.example.org"
    assets = ["/skins/common/style.css", "/skins/common/wiki.js"]
    pages = ["/", "/wiki/Main_Page", "/wiki/Installation", "/wiki/Backups", "/wiki/Network_layout",
             "/wiki/On-call", "/index.php?title=Special:RecentChanges"]
    for ip in ["198.51.100.44", "192.0.2.90", "2001:db8:44::2", "198.51.100.170"]:
        t = start + dt.timedelta(minutes=rng.randint(0, 50), seconds=rng.randint(0, 59))
        browse(rng, log, ip, t, rng.choice(BROWSERS), site, rng.sample(pages, rng.randint(3, 5)), assets)
    # an intranet editor (private address: whitelisted)
    t = start + dt.timedelta(minutes=20)
    for _ in range(4):
        log.add(t, combined("192.168.20.15", t, "POST", "/index.php?title=On-call&action=submit", 302, 0,
                            site + "/wiki/On-call", BROWSERS[0]))
        t += dt.timedelta(seconds=rng.randint(60, 200))
    # Nmap's HTTP scripts: the User-Agent gives it away
    t = start + dt.timedelta(minutes=16, seconds=30)
    ua = "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"
    for verb, path, status in [("GET", "/", 200), ("OPTIONS", "/", 200), ("GET", "/nmaplowercheck1710230190", 404),
                               ("POST", "/sdk", 404), ("GET", "/HNAP1", 404), ("PROPFIND", "/", 405),
                               ("GET", "/evox/about", 404)]:
        log.add(t, combined("203.0.113.130", t, verb, path, status, 196 if status != 200 else 7310, "-", ua))
    # someone looking for a leaked repository
    t = start + dt.timedelta(minutes=33, seconds=2)
    for p in ["/.git/HEAD", "/.git/config"]:
        log.add(t, combined("198.51.100.140", t, "GET", p, 404, 196, "-", "Go-http-client/1.1"))
        t += dt.timedelta(seconds=1)
    return log.lines()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    outputs = {
        "auth.log": auth_log(random.Random(SEED)),
        "nginx-access.log": nginx_log(random.Random(SEED + 1)),
        "apache-access.log": apache_log(random.Random(SEED + 2)),
    }
    for name, lines in outputs.items():
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        print("%-18s %4d lines" % (name, len(lines)))


if __name__ == "__main__":
    main()
