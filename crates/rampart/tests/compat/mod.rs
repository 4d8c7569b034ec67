//! Harness for `compat_crowdsec.rs`: prerequisites (skip or fail), processes, a network namespace,
//! the LAPI under test (Rampart, or CrowdSec's own for reference runs), a small HTTP client and the
//! configuration files of CrowdSec's programs.
//!
//! Everything a test starts is owned by its [`Harness`] and stopped when it drops, panics included:
//! processes first (SIGTERM, then SIGKILL), then the network namespace (which takes its nftables
//! tables and its end of the veth pair with it), then the temporary directory.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where Debian's crowdsec package puts its offline copy of the hub.
pub(crate) const DEBIAN_HUB: &str = "/usr/share/crowdsec/hub";
/// The grok patterns of Debian's crowdsec package.
pub(crate) const DEBIAN_PATTERNS: &str = "/etc/crowdsec/patterns";

const SKIP_HINT: &str = "scripts/test.sh installs Debian's crowdsec, crowdsec-firewall-bouncer, \
     crowdsec-custom-bouncer and nftables when it runs as root";

fn stderr(line: &str) {
    // libtest captures println! of passing tests; a skip must be visible.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// What a test needs from the machine. [`Needs::check`] returns the programs' paths, or `None`
/// after saying on the real stderr why the test is skipped. Under `CI=true` a missing piece
/// fails the test instead: CI must run this suite, never pass it silently.
#[derive(Default)]
pub(crate) struct Needs {
    programs: Vec<&'static str>,
    files: Vec<&'static str>,
    root: bool,
}

impl Needs {
    pub(crate) fn programs(mut self, programs: &[&'static str]) -> Self {
        self.programs.extend_from_slice(programs);
        self
    }

    pub(crate) fn files(mut self, files: &[&'static str]) -> Self {
        self.files.extend_from_slice(files);
        self
    }

    pub(crate) fn root(mut self) -> Self {
        self.root = true;
        self
    }

    pub(crate) fn check(mut self, test: &str) -> Option<Programs> {
        // The reference backend runs CrowdSec's own LAPI.
        if Backend::from_env() == Backend::CrowdSec {
            self.programs.extend_from_slice(&["crowdsec", "cscli"]);
        }
        let mut missing = Vec::new();
        let mut found = Vec::new();
        for p in &self.programs {
            match find_program(p) {
                Some(path) => found.push((*p, path)),
                None => missing.push(format!("`{p}` not found")),
            }
        }
        for f in &self.files {
            if !Path::new(f).exists() {
                missing.push(format!("{f} not found"));
            }
        }
        let mut why = if missing.is_empty() {
            String::new()
        } else {
            format!("{} ({SKIP_HINT})", missing.join(", "))
        };
        if self.root && !is_root() {
            if !why.is_empty() {
                why.push_str("; ");
            }
            why.push_str("needs root (a network namespace and nftables)");
        }
        if why.is_empty() {
            return Some(Programs(found));
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: {why}; CI=true, so this is a failure, not a skip");
        }
        stderr(&format!("skipped: compat_crowdsec::{test}: {why}\n"));
        None
    }
}

/// Absolute paths of the programs a test asked for.
pub(crate) struct Programs(Vec<(&'static str, PathBuf)>);

impl Programs {
    pub(crate) fn get(&self, name: &str) -> &Path {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.as_path())
            .unwrap_or_else(|| panic!("{name} was not among the test's needs"))
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // "Uid:\treal\teffective\tsaved\tfs"
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Which LAPI the suite talks to: Rampart's (default), or CrowdSec's own with
/// `RAMPART_COMPAT_LAPI=crowdsec`, to check the suite itself against the reference.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Backend {
    Rampart,
    CrowdSec,
}

impl Backend {
    pub(crate) fn from_env() -> Backend {
        match std::env::var("RAMPART_COMPAT_LAPI").as_deref() {
            Err(_) | Ok("" | "rampart") => Backend::Rampart,
            Ok("crowdsec") => Backend::CrowdSec,
            Ok(other) => panic!("RAMPART_COMPAT_LAPI={other}: expected `rampart` or `crowdsec`"),
        }
    }
}

struct Proc {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    /// Meant to run until the test ends (a LAPI, a bouncer), not to exit by itself.
    daemon: bool,
}

impl Proc {
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    fn stop(&mut self) {
        if self.poll().is_some() {
            return;
        }
        // SIGTERM first: the firewall bouncer removes its tables, the LAPI closes its database.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.poll().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }
}

/// A network namespace with `lo` up and a veth pair to the root namespace:
/// `host_ip` (root side) and `ns_ip` (namespace side), a /30 in 169.254.0.0/16.
pub(crate) struct Netns {
    pub(crate) name: String,
    ip: PathBuf,
    host_if: String,
    pub(crate) host_ip: Ipv4Addr,
}

impl Netns {
    fn create(ip: &Path) -> Result<Netns, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("rpc{pid}{seq}");
        // Interface names are at most 15 bytes.
        let host_if = format!("rpc{pid}{seq}h");
        let ns_if = format!("rpc{pid}{seq}n");
        let mut third = u8::try_from(pid % 200 + 10).unwrap_or(10);
        if third == 169 {
            third = 170; // stay clear of 169.254.169.254 (cloud metadata)
        }
        let fourth = u8::try_from((seq % 60) * 4).unwrap_or(0);
        let host_ip = Ipv4Addr::new(169, 254, third, fourth + 1);
        let ns_ip = Ipv4Addr::new(169, 254, third, fourth + 2);
        let ns = Netns {
            name: name.clone(),
            ip: ip.to_owned(),
            host_if: host_if.clone(),
            host_ip,
        };
        let run = |args: &[&str]| -> Result<(), String> {
            let o = Command::new(ip)
                .args(args)
                .output()
                .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
            if o.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
        };
        run(&["netns", "add", &name])?;
        // From here on `ns` cleans up on any error.
        run(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        run(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        run(&["link", "set", &ns_if, "netns", &name])?;
        run(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
        run(&["link", "set", &host_if, "up"])?;
        run(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ])?;
        run(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys its nftables tables and its veth end (and with it the
        // peer); deleting the host end as well makes that immediate.
        let _ = Command::new(&self.ip)
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new(&self.ip)
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

/// One test's world. Drop order: processes (newest first), namespace, temporary directory.
pub(crate) struct Harness {
    procs: RefCell<Vec<Proc>>,
    netns: Option<Netns>,
    dir: tempfile::TempDir,
    pub(crate) backend: Backend,
    started: Instant,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let mut procs = std::mem::take(&mut *self.procs.borrow_mut());
        while let Some(mut p) = procs.pop() {
            p.stop();
        }
        self.netns.take();
        if std::env::var_os("RAMPART_COMPAT_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            stderr(&format!("kept {}\n", dir.keep().display()));
        }
    }
}

impl Harness {
    pub(crate) fn new() -> Harness {
        Harness {
            procs: RefCell::new(Vec::new()),
            netns: None,
            dir: tempfile::Builder::new()
                .prefix("rampart-compat-")
                .tempdir()
                .unwrap(),
            backend: Backend::from_env(),
            started: Instant::now(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    pub(crate) fn netns(&mut self, ip: &Path) -> &Netns {
        match Netns::create(ip) {
            Ok(ns) => self.netns.insert(ns),
            Err(e) => panic!("cannot set up a network namespace: {e}"),
        }
    }

    /// Starts `cmd` (a LAPI, a bouncer) with stdout and stderr in `<name>.log`; it must run until
    /// the harness drops and stops it (or until [`Harness::wait_exit`]).
    pub(crate) fn spawn(&self, name: &str, mut cmd: Command) {
        let log = fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        self.procs.borrow_mut().push(Proc {
            name: name.to_owned(),
            child,
            exited: None,
            daemon: true,
        });
    }

    /// Waits for a process started with [`Harness::spawn`] to exit by itself, which it now may
    /// (killed after `timeout`); returns its status and its output.
    pub(crate) fn wait_exit(&self, name: &str, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = {
                let mut procs = self.procs.borrow_mut();
                let p = procs.iter_mut().rfind(|p| p.name == name).unwrap();
                p.daemon = false;
                let s = p.poll();
                if s.is_none() && Instant::now() > deadline {
                    p.stop();
                    drop(procs);
                    panic!("{name} still running after {timeout:?}\n{}", self.context());
                }
                s
            };
            if let Some(s) = status {
                return (s, self.log(name));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A short command that must succeed; returns its stdout.
    pub(crate) fn output(&self, cmd: &mut Command) -> String {
        let o = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            o.status.success(),
            "{cmd:?}: {}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub(crate) fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// The state of every process and the end of its log, for failure messages.
    pub(crate) fn context(&self) -> String {
        let mut out = format!(
            "--- after {:.1}s; files in {}\n",
            self.started.elapsed().as_secs_f64(),
            self.dir.path().display()
        );
        for p in self.procs.borrow_mut().iter_mut() {
            let state = match p.poll() {
                Some(s) => format!("exited: {s}"),
                None => "running".to_owned(),
            };
            let log = self.log(&p.name);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            let _ = writeln!(out, "--- {} ({state}), last lines of its log:", p.name);
            for l in tail {
                let _ = writeln!(out, "    {l}");
            }
        }
        out
    }

    /// Polls `f` every 200 ms until it gives a value; panics with `what` and the context after
    /// `timeout`, or as soon as a LAPI or bouncer has exited.
    pub(crate) fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.context()
                );
            }
            let died = self
                .procs
                .borrow_mut()
                .iter_mut()
                .find_map(|p| (p.daemon && p.poll().is_some()).then(|| p.name.clone()));
            if let Some(name) = died {
                panic!("{name} exited while waiting for {what}\n{}", self.context());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts the LAPI under test listening on `ip` (a free port) and waits for `/health`.
    pub(crate) fn start_lapi(&self, ip: Ipv4Addr, progs: &Programs) -> Lapi {
        self.start_lapi_of(self.backend, ip, progs)
    }

    /// Starts CrowdSec's own LAPI (`crowdsec -no-cs`, administered with `cscli`) whatever the
    /// suite's backend: the other side of the tests of Rampart's agent. Needs `crowdsec` and
    /// `cscli` among the test's programs.
    pub(crate) fn start_crowdsec_lapi(&self, ip: Ipv4Addr, progs: &Programs) -> Lapi {
        self.start_lapi_of(Backend::CrowdSec, ip, progs)
    }

    fn start_lapi_of(&self, backend: Backend, ip: Ipv4Addr, progs: &Programs) -> Lapi {
        let port = free_port(ip);
        let listen = SocketAddr::from((ip, port));
        let lapi = match backend {
            Backend::Rampart => Lapi {
                url: format!("http://{listen}"),
                listen,
                backend: Backend::Rampart,
                db_url: format!("sqlite://{}", self.path("rampart.db").display()),
                crowdsec: None,
            },
            Backend::CrowdSec => Lapi {
                url: format!("http://{listen}"),
                listen,
                backend: Backend::CrowdSec,
                db_url: String::new(),
                crowdsec: Some(CrowdSecTools {
                    crowdsec: progs.get("crowdsec").to_owned(),
                    cscli: progs.get("cscli").to_owned(),
                    cfg: self.crowdsec_lapi_config(listen),
                }),
            },
        };
        self.launch_lapi(&lapi, "lapi");
        lapi
    }

    /// Content for `rampart run` that makes every failed SSH login an alert of its own: the
    /// bundled syslog, sshd and date parsers, grok patterns and `rampart/ssh-bruteforce`, and
    /// `tests/data/agent/scenarios/line-trigger.yaml` (`rampart-test/ssh-line`, a trigger
    /// grouped by source address).
    pub(crate) fn agent_content(&self) -> PathBuf {
        let hub = self.path("agent-content");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let bundled = manifest.join("../../hub");
        let items = [
            "parsers/s00-raw/rampart/syslog-logs.yaml",
            "parsers/s01-parse/rampart/sshd-logs.yaml",
            "parsers/s02-enrich/rampart/dateparse-enrich.yaml",
            "scenarios/rampart/ssh-bruteforce.yaml",
            "patterns/rampart",
        ];
        for item in items {
            let to = hub.join(item);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(bundled.join(item), &to).unwrap();
        }
        let to = hub.join("scenarios/test/line-trigger.yaml");
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(
            manifest.join("tests/data/agent/scenarios/line-trigger.yaml"),
            to,
        )
        .unwrap();
        fs::create_dir_all(hub.join("data")).unwrap();
        hub
    }

    /// Stops the LAPI and starts it again on the same address and database.
    pub(crate) fn restart_lapi(&self, lapi: &Lapi) {
        self.stop("lapi");
        self.launch_lapi(lapi, "lapi-restarted");
    }

    fn launch_lapi(&self, lapi: &Lapi, name: &str) {
        let cmd = match &lapi.crowdsec {
            None => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
                cmd.args([
                    "lapi",
                    "--listen",
                    &lapi.listen.to_string(),
                    "--db",
                    &lapi.db_url,
                ]);
                cmd
            }
            Some(t) => {
                let mut cmd = Command::new(&t.crowdsec);
                cmd.arg("-c").arg(&t.cfg).args(["-no-cs", "-no-capi"]);
                cmd
            }
        };
        self.spawn(name, cmd);
        let api = Api::new(&lapi.url);
        self.wait_for(
            "the LAPI's GET /health",
            Duration::from_secs(30),
            || match api.try_request("GET", "/health", &[], None) {
                Ok((200, body)) => {
                    let v: Value = serde_json::from_str(&body).ok()?;
                    assert_eq!(v, json!({"status": "up"}), "GET /health answered {body}");
                    Some(())
                }
                _ => None,
            },
        );
    }

    /// Stops a process started with [`Harness::spawn`] (SIGTERM, then SIGKILL).
    pub(crate) fn stop(&self, name: &str) {
        let mut procs = self.procs.borrow_mut();
        let p = procs.iter_mut().rfind(|p| p.name == name).unwrap();
        p.daemon = false;
        p.stop();
    }

    fn crowdsec_lapi_config(&self, listen: SocketAddr) -> PathBuf {
        let d = self.dir.path().join("crowdsec-lapi");
        fs::create_dir_all(d.join("data")).unwrap();
        fs::copy("/etc/crowdsec/profiles.yaml", d.join("profiles.yaml")).unwrap();
        let d = d.display();
        self.write(
            "crowdsec-lapi/config.yaml",
            &format!(
                "common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: .
config_paths:
  config_dir: {d}/
  data_dir: {d}/data/
  simulation_path: {d}/simulation.yaml
  hub_dir: {DEBIAN_HUB}/
  index_path: {DEBIAN_HUB}/.index.json
  notification_dir: {d}/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
db_config:
  type: sqlite
  db_path: {d}/data/crowdsec.db
  use_wal: false
api:
  client:
    credentials_path: {d}/local_api_credentials.yaml
  server:
    listen_uri: {listen}
    profiles_path: {d}/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - \"::1\"
prometheus:
  enabled: false
"
            ),
        )
    }

    /// A configuration for Debian's crowdsec 1.4.6 agent: syslog + sshd parsers and the sshd
    /// scenarios linked from the package's offline hub (`cscli` would download them), its LAPI
    /// client pointed at `lapi` with the given machine credentials.
    pub(crate) fn crowdsec_agent_config(
        &self,
        lapi: &Lapi,
        login: &str,
        password: &str,
    ) -> PathBuf {
        let d = self.dir.path().join("agent");
        let items = [
            (
                "parsers/s00-raw",
                "parsers/s00-raw/crowdsecurity/syslog-logs.yaml",
            ),
            (
                "parsers/s01-parse",
                "parsers/s01-parse/crowdsecurity/sshd-logs.yaml",
            ),
            (
                "parsers/s02-enrich",
                "parsers/s02-enrich/crowdsecurity/dateparse-enrich.yaml",
            ),
            (
                "parsers/s02-enrich",
                "parsers/s02-enrich/crowdsecurity/whitelists.yaml",
            ),
            ("scenarios", "scenarios/crowdsecurity/ssh-bf.yaml"),
            ("scenarios", "scenarios/crowdsecurity/ssh-slow-bf.yaml"),
        ];
        for (dir, item) in items {
            let src = Path::new(DEBIAN_HUB).join(item);
            let dst = d.join("etc").join(dir);
            fs::create_dir_all(&dst).unwrap();
            std::os::unix::fs::symlink(&src, dst.join(src.file_name().unwrap())).unwrap();
        }
        std::os::unix::fs::symlink(DEBIAN_PATTERNS, d.join("etc/patterns")).unwrap();
        fs::create_dir_all(d.join("data")).unwrap();
        self.write("agent/etc/simulation.yaml", "simulation: off\n");
        // The agent insists on an acquisition file even when -dsn replaces it.
        let empty = self.write("agent/empty.log", "");
        self.write(
            "agent/etc/acquis.yaml",
            &format!(
                "filenames:\n  - {}\nlabels:\n  type: syslog\n",
                empty.display()
            ),
        );
        self.write(
            "agent/local_api_credentials.yaml",
            &format!("url: {}\nlogin: {login}\npassword: {password}\n", lapi.url),
        );
        let d = d.display();
        self.write(
            "agent/config.yaml",
            &format!(
                "common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: .
config_paths:
  config_dir: {d}/etc/
  data_dir: {d}/data/
  simulation_path: {d}/etc/simulation.yaml
  hub_dir: {DEBIAN_HUB}/
  index_path: {DEBIAN_HUB}/.index.json
crowdsec_service:
  acquisition_path: {d}/etc/acquis.yaml
  parser_routines: 1
api:
  client:
    credentials_path: {d}/local_api_credentials.yaml
prometheus:
  enabled: false
"
            ),
        )
    }
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("cannot bind {ip}:0: {e}"))
        .local_addr()
        .unwrap()
        .port()
}

/// The LAPI under test and how to administer it (Rampart's CLI, or cscli for the reference).
pub(crate) struct Lapi {
    pub(crate) url: String,
    listen: SocketAddr,
    backend: Backend,
    db_url: String,
    crowdsec: Option<CrowdSecTools>,
}

/// The reference backend's programs and configuration.
struct CrowdSecTools {
    crowdsec: PathBuf,
    cscli: PathBuf,
    cfg: PathBuf,
}

impl Lapi {
    fn admin(&self) -> Command {
        match self.backend {
            Backend::Rampart => Command::new(env!("CARGO_BIN_EXE_rampart")),
            Backend::CrowdSec => {
                let t = self.crowdsec.as_ref().unwrap();
                let mut c = Command::new(&t.cscli);
                c.arg("-c").arg(&t.cfg).arg("--error");
                c
            }
        }
    }

    /// Registers a bouncer; returns its API key.
    pub(crate) fn add_bouncer(&self, h: &Harness, name: &str) -> String {
        let mut cmd = self.admin();
        match self.backend {
            Backend::Rampart => cmd.args(["bouncers", "add", name, "--db", &self.db_url]),
            Backend::CrowdSec => cmd.args(["bouncers", "add", name, "-o", "raw"]),
        };
        let key = h.output(&mut cmd).trim().to_owned();
        assert!(
            !key.is_empty() && !key.contains(char::is_whitespace),
            "`bouncers add {name}` printed {key:?}, expected one API key"
        );
        key
    }

    /// Creates a validated machine (watcher) with a password.
    pub(crate) fn add_machine(&self, h: &Harness, id: &str, password: &str) {
        let mut cmd = self.admin();
        match self.backend {
            Backend::Rampart => cmd.args([
                "machines",
                "add",
                id,
                "--password",
                password,
                "--db",
                &self.db_url,
            ]),
            Backend::CrowdSec => cmd
                .args(["machines", "add", id, "--password", password, "-f"])
                .arg(h.path(&format!("{id}.credentials.yaml"))),
        };
        h.output(&mut cmd);
    }
}

/// A plain HTTP client for the LAPI (what cscli and bouncers send, built by hand).
pub(crate) struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

pub(crate) const USER_AGENT: &str = "rampart-compat-test/v1";

impl Api {
    pub(crate) fn new(base: &str) -> Api {
        Api {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder()
                .user_agent(USER_AGENT)
                // A connection per request: the LAPI may restart between two.
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| e.to_string())?;
            Ok((status, text))
        })
    }

    /// Sends a request; the response must have status `want` and a JSON body (or be empty, which
    /// gives `Value::Null`).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
        want: u16,
    ) -> Value {
        let shown_body = body.map(|b| format!(" with body {b}")).unwrap_or_default();
        let (status, text) = self
            .try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}{shown_body}: {e}"));
        assert_eq!(
            status, want,
            "{method} {path}{shown_body}: status {status} (expected {want}), body {text}"
        );
        if text.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{method} {path}{shown_body}: status {status}, body is not JSON ({e}): {text}")
        })
    }

    /// `POST /v1/watchers/login` as the Go client does it; returns the JWT.
    pub(crate) fn login(&self, machine: &str, password: &str) -> String {
        let v = self.call(
            "POST",
            "/v1/watchers/login",
            &[],
            Some(&json!({"machine_id": machine, "password": password, "scenarios": []})),
            200,
        );
        assert_eq!(v["code"], 200, "login answered {v}");
        assert!(v["expire"].is_string(), "login answered {v}");
        v["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login answered {v}"))
            .to_owned()
    }

    /// Adds decisions as `cscli decisions add` does: one alert with origin `cscli` decisions.
    pub(crate) fn add_decisions(&self, jwt: &str, decisions: &[(&str, &str)], duration: &str) {
        self.add_decisions_at(jwt, decisions, duration, chrono::Utc::now());
    }

    /// [`Api::add_decisions`] with an alert that stopped at `stop_at` (a decision lasts
    /// `duration` from its alert's `stop_at`).
    pub(crate) fn add_decisions_at(
        &self,
        jwt: &str,
        decisions: &[(&str, &str)],
        duration: &str,
        stop_at: chrono::DateTime<chrono::Utc>,
    ) {
        let now = stop_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (scope, value) = decisions[0];
        let decisions: Vec<Value> = decisions
            .iter()
            .map(|(scope, value)| {
                json!({"duration": duration, "origin": "cscli", "scenario": SCENARIO,
                       "scope": scope, "type": "ban", "value": value})
            })
            .collect();
        let alert = json!([{
            "capacity": 0, "decisions": decisions, "events": [], "events_count": 1,
            "leakspeed": "0", "message": format!("manual 'ban' from '{SCENARIO}'"),
            "scenario": SCENARIO, "scenario_hash": "", "scenario_version": "", "simulated": false,
            "source": if scope == "Ip" {
                json!({"ip": value, "scope": scope, "value": value})
            } else {
                json!({"range": value, "scope": scope, "value": value})
            },
            "start_at": now, "stop_at": now, "remediation": true,
        }]);
        let bearer = format!("Bearer {jwt}");
        let ids = self.call(
            "POST",
            "/v1/alerts",
            &[("Authorization", &bearer)],
            Some(&alert),
            201,
        );
        let ids = ids
            .as_array()
            .unwrap_or_else(|| panic!("POST /v1/alerts answered {ids}"));
        assert!(
            ids.len() == 1 && ids[0].is_string(),
            "POST /v1/alerts answered {ids:?}, expected one alert id as a string"
        );
    }

    /// `DELETE /v1/decisions?ip=IP` as cscli does; returns nbDeleted.
    pub(crate) fn delete_decisions(&self, jwt: &str, ip: &str) -> u64 {
        let bearer = format!("Bearer {jwt}");
        let v = self.call(
            "DELETE",
            &format!("/v1/decisions?ip={ip}"),
            &[("Authorization", &bearer)],
            None,
            200,
        );
        v["nbDeleted"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DELETE /v1/decisions?ip={ip} answered {v}"))
    }
}

/// Scenario of the decisions the tests add by hand: one word, so the custom bouncer's script
/// gets it as one argument.
pub(crate) const SCENARIO: &str = "rampart-compat-test";

/// Seconds in a Go duration string (`3h59m57s`, `59m58.578943078s`, `-681.13266ms`, `0s`).
pub(crate) fn go_duration_secs(s: &str) -> f64 {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or_else(|| panic!("bad Go duration {s:?}"));
        let num: f64 = rest[..n]
            .parse()
            .unwrap_or_else(|_| panic!("bad Go duration {s:?}"));
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "d" => 86400.0, // nft writes days too
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            other => panic!("bad unit {other:?} in Go duration {s:?}"),
        };
        total += num * unit;
        rest = &rest[u..];
    }
    if neg { -total } else { total }
}

/// Whether `nft list` output has `ip` as a set element: `None` if not, else `Some(timeout in
/// seconds)` (`Some(None)` for an element without timeout).
pub(crate) fn nft_element(text: &str, ip: &str) -> Option<Option<f64>> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '{' | '}'))
        .filter(|w| !w.is_empty())
        .collect();
    let i = words.iter().position(|w| *w == ip)?;
    Some(match (words.get(i + 1), words.get(i + 2)) {
        (Some(&"timeout"), Some(t)) => Some(go_duration_secs(t)),
        _ => None,
    })
}

/// `demo/auth.log` with every syslog timestamp moved by the same amount so that its last line is
/// `end_ago` before now (UTC); year-less stamps are read in the current year, as syslog parsers do.
pub(crate) fn shift_syslog(text: &str, end_ago: chrono::Duration) -> String {
    use chrono::{Datelike, NaiveDateTime};
    let now = chrono::Utc::now().naive_utc();
    let year = now.year();
    let stamp = |line: &str| {
        let head = line.get(..15)?;
        NaiveDateTime::parse_from_str(&format!("{year} {head}"), "%Y %b %e %H:%M:%S").ok()
    };
    let last = text
        .lines()
        .filter_map(stamp)
        .max()
        .expect("no syslog timestamp in the log");
    let delta = (now - end_ago) - last;
    let delta = chrono::Duration::seconds(delta.num_seconds());
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match stamp(line) {
            Some(t) => {
                out.push_str(&(t + delta).format("%b %e %H:%M:%S").to_string());
                out.push_str(&line[15..]);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
