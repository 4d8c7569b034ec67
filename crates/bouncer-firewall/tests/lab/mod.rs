//! A test laboratory: two network namespaces joined by a veth pair, a real LAPI, the bouncer.
//!
//! ```text
//!  "attacker" netns                         "server" netns
//!  veth1  10.77.0.2 (never banned)  ◄─────► veth0 10.77.0.1, fd77::1
//!         10.77.0.3..6, .70, .90             TCP listeners (v4 and v6), the LAPI on 127.0.0.1,
//!         fd77::2 (never banned), ::3..6,    rampart-firewall-bouncer (ip netns exec)
//!         fd77::8:5, fd77::8:9
//! ```
//!
//! The LAPI is Rampart's own (`lapi` crate) served from this process, on a runtime whose threads
//! entered the server namespace: the bouncer reaches it on that namespace's loopback, and no
//! packet ever leaves the two namespaces. Probes (TCP connects from a chosen source address,
//! `ping -I`) run from the attacker namespace the same way.
//!
//! Everything is owned by [`Lab`] and undone when it drops, after a failed assertion too: the
//! bouncer is stopped, the runtimes end, and deleting the namespaces takes their interfaces,
//! nftables tables, iptables rules and ipsets with them.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How long a bouncer may take to enforce something: generous, the machine is shared.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

pub(crate) const SERVER_V4: &str = "10.77.0.1";
pub(crate) const SERVER_V6: &str = "fd77::1";
/// Sources the attacker namespace can send from.
const ATTACKER_V4: [&str; 7] = [
    "10.77.0.2",
    "10.77.0.3",
    "10.77.0.4",
    "10.77.0.5",
    "10.77.0.6",
    "10.77.0.70",
    "10.77.0.90",
];
const ATTACKER_V6: [&str; 7] = [
    "fd77::2",
    "fd77::3",
    "fd77::4",
    "fd77::5",
    "fd77::6",
    "fd77::8:5",
    "fd77::8:9",
];
/// Never banned by any test: must always get through.
pub(crate) const INNOCENT_V4: &str = "10.77.0.2";
pub(crate) const INNOCENT_V6: &str = "fd77::2";

/// Which kernel mechanism a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Nftables,
    /// iptables + ipset through the distribution's `iptables` (iptables-nft on Debian 12).
    Iptables,
    /// iptables + ipset through `iptables-legacy`, as on a host without nftables: the bouncer
    /// finds `iptables-legacy` first in its PATH under the name `iptables`.
    IptablesLegacy,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::Nftables => "nftables",
            Mode::Iptables | Mode::IptablesLegacy => "iptables",
        }
    }

    fn programs(self) -> &'static [&'static str] {
        match self {
            Mode::Nftables => &["ip", "ping", "nft"],
            Mode::Iptables => &["ip", "ping", "ipset", "iptables", "iptables-restore"],
            Mode::IptablesLegacy => &[
                "ip",
                "ping",
                "ipset",
                "iptables-legacy",
                "iptables-legacy-restore",
                "iptables-legacy-save",
                "ip6tables-legacy",
                "ip6tables-legacy-restore",
                "ip6tables-legacy-save",
            ],
        }
    }

    /// The program this mode's bouncer runs under `name`.
    fn tool(self, name: &str) -> String {
        match (
            self,
            name.strip_prefix("ip6tables")
                .map(|r| ("ip6tables", r))
                .or_else(|| name.strip_prefix("iptables").map(|r| ("iptables", r))),
        ) {
            (Mode::IptablesLegacy, Some((base, rest))) => format!("{base}-legacy{rest}"),
            _ => name.to_owned(),
        }
    }
}

fn stderr(msg: &str) {
    // libtest captures println! of passing tests; a skip must be visible.
    let _ = std::io::stderr().write_all(msg.as_bytes());
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `None` (after saying why on stderr) when this machine cannot run the test; under `CI=true`
/// that is a failure instead: CI must run these tests, never pass them silently.
pub(crate) fn check(test: &str, mode: Mode) -> Option<()> {
    let mut why: Vec<String> = mode
        .programs()
        .iter()
        .filter(|p| find_program(p).is_none())
        .map(|p| format!("`{p}` not found"))
        .collect();
    if !is_root() {
        why.push("needs root (network namespaces and firewall rules)".into());
    }
    if why.is_empty() {
        return Some(());
    }
    let why = format!(
        "{} (scripts/test.sh installs nftables, ipset, iptables and iputils-ping when run as root)",
        why.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}; CI=true, so this is a failure, not a skip");
    }
    stderr(&format!("skipped: bouncer_firewall::{test}: {why}\n"));
    None
}

fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new(find_program("ip").unwrap_or_else(|| "ip".into()))
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
}

/// A network namespace, deleted on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
}

impl Netns {
    fn create(name: String) -> Netns {
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!("cannot create network namespace: {e}");
        }
        let ns = Netns { name };
        if let Err(e) = ip(&["-n", &ns.name, "link", "set", "lo", "up"]) {
            panic!("{e}");
        }
        ns
    }

    /// A command run inside the namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut c = Command::new(find_program("ip").unwrap_or_else(|| "ip".into()));
        c.args(["netns", "exec", &self.name]);
        c.arg(find_program(program).unwrap_or_else(|| program.into()));
        c
    }

    /// Runs `program args` inside; returns (success, stdout + stderr).
    pub(crate) fn run(&self, program: &str, args: &[&str]) -> (bool, String) {
        match self.command(program).args(args).output() {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A tokio runtime whose threads live in a network namespace, so every socket its tasks open
/// belongs to that namespace.
pub(crate) struct NsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    fn start(ns: &str) -> NsRuntime {
        let path = format!("/run/netns/{ns}");
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // Threads inherit the namespace of the thread that creates them: the runtime's
            // workers, created below, all live in `ns`.
            nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {path}: {e}"));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            let _ = htx.send(rt.handle().clone());
            rt.block_on(async {
                let _ = stopped.await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        });
        let handle = hrx.recv().unwrap_or_else(|e| panic!("runtime thread: {e}"));
        NsRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `f` on the namespace's threads and waits for it.
    pub(crate) fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.handle.spawn(f);
        self.handle
            .block_on(task)
            .unwrap_or_else(|e| panic!("task in namespace failed: {e}"))
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The outcome of one TCP connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tcp {
    Connected,
    /// No answer at all: the SYN was dropped.
    TimedOut,
    /// RST or ICMP unreachable: rejected.
    Refused,
    Other(String),
}

async fn tcp_connect(src: IpAddr, dst: SocketAddr, timeout: Duration) -> Tcp {
    let sock = match src {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    };
    let sock = match sock.and_then(|s| s.bind(SocketAddr::new(src, 0)).map(|()| s)) {
        Ok(s) => s,
        Err(e) => return Tcp::Other(format!("bind {src}: {e}")),
    };
    match tokio::time::timeout(timeout, sock.connect(dst)).await {
        Ok(Ok(_)) => Tcp::Connected,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Tcp::Refused,
        Ok(Err(e)) if e.raw_os_error() == Some(113) => Tcp::Refused, // EHOSTUNREACH
        Ok(Err(e)) => Tcp::Other(e.to_string()),
        Err(_) => Tcp::TimedOut,
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's world.
pub(crate) struct Lab {
    test: String,
    mode: Mode,
    bouncer: RefCell<Option<(Child, PathBuf)>>,
    starts: RefCell<u32>,
    server_rt: NsRuntime,
    attacker_rt: NsRuntime,
    pub(crate) server: Netns,
    pub(crate) attacker: Netns,
    pub(crate) lapi_url: String,
    pub(crate) key: String,
    watcher: Arc<client::Watcher>,
    tcp_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_bouncer_quietly();
        if std::thread::panicking() {
            stderr(&format!(
                "--- {}: bouncer log\n{}\n",
                self.test,
                self.log_tail(60)
            ));
        }
    }
}

/// Where the LAPI decisions come from.
pub(crate) enum Server {
    /// Rampart's LAPI (with push).
    Rampart,
    /// A stand-in for CrowdSec's LAPI: the same stream, but `wait=` is ignored, as an older
    /// LAPI does.
    NoPush(Arc<std::sync::Mutex<crate::fake::Fake>>),
}

impl Lab {
    /// Sets up namespaces, addresses, listeners and the LAPI; `None` when the machine cannot.
    pub(crate) fn new(test: &str, mode: Mode) -> Option<Lab> {
        Self::with_server(test, mode, Server::Rampart)
    }

    pub(crate) fn with_server(test: &str, mode: Mode, server_kind: Server) -> Option<Lab> {
        check(test, mode)?;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("rfw{}-{seq}", std::process::id());
        let server = Netns::create(format!("{base}-s"));
        let attacker = Netns::create(format!("{base}-a"));
        let (s, a) = (server.name.as_str(), attacker.name.as_str());
        let setup = || -> Result<(), String> {
            ip(&[
                "-n", s, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
                a,
            ])?;
            ip(&[
                "-n",
                s,
                "addr",
                "add",
                &format!("{SERVER_V4}/24"),
                "dev",
                "veth0",
            ])?;
            ip(&[
                "-n",
                s,
                "addr",
                "add",
                &format!("{SERVER_V6}/64"),
                "dev",
                "veth0",
                "nodad",
            ])?;
            for v4 in ATTACKER_V4 {
                ip(&["-n", a, "addr", "add", &format!("{v4}/24"), "dev", "veth1"])?;
            }
            for v6 in ATTACKER_V6 {
                ip(&[
                    "-n",
                    a,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    "veth1",
                    "nodad",
                ])?;
            }
            ip(&["-n", s, "link", "set", "veth0", "up"])?;
            ip(&["-n", a, "link", "set", "veth1", "up"])?;
            Ok(())
        };
        if let Err(e) = setup() {
            panic!("{test}: cannot set up the namespaces: {e}");
        }
        let server_rt = NsRuntime::start(s);
        let attacker_rt = NsRuntime::start(a);
        let dir = tempfile::Builder::new()
            .prefix("rampart-fw-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));

        // Listeners answer every connect from the attacker (accepted and dropped).
        let tcp_port = server_rt.run(async {
            let v4 = tokio::net::TcpListener::bind((SERVER_V4, 0))
                .await
                .unwrap_or_else(|e| panic!("listen v4: {e}"));
            let port = v4.local_addr().map(|a| a.port()).unwrap_or(0);
            let v6 = tokio::net::TcpListener::bind((SERVER_V6, port))
                .await
                .unwrap_or_else(|e| panic!("listen v6 on {port}: {e}"));
            for l in [v4, v6] {
                tokio::spawn(async move {
                    while let Ok((c, _)) = l.accept().await {
                        drop(c);
                    }
                });
            }
            port
        });

        let (lapi_url, key) = match server_kind {
            Server::Rampart => {
                let db = format!("sqlite://{}", dir.path().join("lapi.db").display());
                server_rt.run(async move {
                    let cfg = lapi::LapiConfig {
                        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                        db_url: db,
                        ..lapi::LapiConfig::default()
                    };
                    let server = lapi::Lapi::open(cfg)
                        .await
                        .unwrap_or_else(|e| panic!("LAPI: {e}"));
                    let listener = server.bind().await.unwrap_or_else(|e| panic!("{e}"));
                    let url = format!(
                        "http://{}/",
                        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
                    );
                    tokio::spawn(Arc::clone(&server).serve(listener, std::future::pending()));
                    let store = server.store();
                    let hash =
                        lapi::hash_password("tester-password").unwrap_or_else(|e| panic!("{e}"));
                    store
                        .create_machine(&store::NewMachine {
                            machine_id: "tester".into(),
                            password_hash: hash,
                            ip_address: "127.0.0.1".into(),
                            is_validated: true,
                            auth_type: "password".into(),
                        })
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    let key = lapi::new_api_key();
                    store
                        .create_bouncer(&store::NewBouncer {
                            name: "firewall".into(),
                            api_key_hash: lapi::hash_api_key(&key),
                            auth_type: "api-key".into(),
                            ..Default::default()
                        })
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    server
                        .reload_bouncers()
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    (url, key)
                })
            }
            Server::NoPush(fake) => {
                let url = server_rt.run(crate::fake::serve(fake));
                (url, "fake-key".to_owned())
            }
        };
        let watcher = Arc::new(client::Watcher::new(&lapi_url, "tester", "tester-password"));
        Some(Lab {
            test: test.to_owned(),
            mode,
            bouncer: RefCell::new(None),
            starts: RefCell::new(0),
            server_rt,
            attacker_rt,
            server,
            attacker,
            lapi_url,
            key,
            watcher,
            tcp_port,
            dir,
        })
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    // ------------------------------------------------------------------ LAPI

    /// `cscli decisions add` as the LAPI receives it: an alert with one `ban` decision.
    pub(crate) fn ban(&self, value: &str, duration: &str) {
        let scope = if value.contains('/') { "Range" } else { "Ip" };
        let now = chrono::Utc::now().to_rfc3339();
        let alert = model::Alert {
            scenario: format!("manual 'ban' from '{}'", self.test),
            message: "test".into(),
            start_at: now.clone(),
            stop_at: now,
            events_count: 1,
            leakspeed: "0".into(),
            source: model::Source {
                scope: scope.into(),
                value: value.into(),
                ..model::Source::default()
            },
            decisions: vec![model::Decision {
                duration: duration.into(),
                origin: "cscli".into(),
                scenario: "manual".into(),
                scope: scope.into(),
                kind: "ban".into(),
                value: value.into(),
                ..model::Decision::default()
            }],
            ..model::Alert::default()
        };
        let w = Arc::clone(&self.watcher);
        let ids = self
            .server_rt
            .run(async move { w.push_alerts(&[alert]).await });
        assert!(
            ids.as_ref().is_ok_and(|i| i.len() == 1),
            "pushing a ban of {value}: {ids:?}"
        );
    }

    /// `cscli decisions delete --ip/--range` with `contains=false`: only decisions inside
    /// `value` (the default would also end the networks that contain it).
    pub(crate) fn unban(&self, value: &str) {
        let key = if value.contains('/') { "range" } else { "ip" };
        let w = Arc::clone(&self.watcher);
        let v = value.to_owned();
        let n = self.server_rt.run(async move {
            w.delete_decisions(&[(key, v.as_str()), ("contains", "false")])
                .await
        });
        assert!(
            n.as_ref().is_ok_and(|n| *n >= 1),
            "deleting the decision on {value}: {n:?}"
        );
    }

    // ------------------------------------------------------------------ bouncer

    /// A configuration in the lab's directory: the given mode against the lab's LAPI, plus
    /// `extra` YAML lines.
    pub(crate) fn config(&self, extra: &str) -> PathBuf {
        let text = format!(
            "mode: {mode}
api_url: {url}
api_key: {key}
update_frequency: 1s
log_mode: stdout
log_level: debug
deny_action: DROP
prometheus:
  enabled: true
  listen_addr: 127.0.0.1
  listen_port: 60601
{extra}
",
            mode = self.mode.key(),
            url = self.lapi_url,
            key = self.key,
        );
        let n = *self.starts.borrow();
        let p = self.path(&format!("bouncer-{n}.yaml"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }

    /// Starts the bouncer in the server namespace and waits until it has loaded the list.
    pub(crate) fn start_bouncer(&self, config: &Path) {
        assert!(
            self.bouncer.borrow().is_none(),
            "a bouncer is already running"
        );
        let n = {
            let mut s = self.starts.borrow_mut();
            *s += 1;
            *s
        };
        let log = self.path(&format!("bouncer-{n}.log"));
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new(find_program("ip").unwrap_or_else(|| "ip".into()));
        if self.mode == Mode::IptablesLegacy {
            let bin = self.path("bin");
            let _ = std::fs::create_dir_all(&bin);
            for name in [
                "iptables",
                "iptables-restore",
                "iptables-save",
                "ip6tables",
                "ip6tables-restore",
                "ip6tables-save",
            ] {
                let target = find_program(&self.mode.tool(name))
                    .unwrap_or_else(|| panic!("{} not found", self.mode.tool(name)));
                let _ = std::os::unix::fs::symlink(target, bin.join(name));
            }
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", bin.display()));
        }
        cmd.args(["netns", "exec", &self.server.name])
            .arg(env!("CARGO_BIN_EXE_rampart-firewall-bouncer"))
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the bouncer: {e}"));
        *self.bouncer.borrow_mut() = Some((child, log));
        self.wait_log(
            "the first decision list in the kernel",
            "decision list loaded into the kernel",
        );
    }

    fn pid(&self) -> Option<Pid> {
        self.bouncer
            .borrow()
            .as_ref()
            .and_then(|(c, _)| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 20 s); returns the exit status.
    pub(crate) fn stop_bouncer(&self) -> ExitStatus {
        let Some(pid) = self.pid() else {
            panic!("no bouncer running");
        };
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        self.reap(Duration::from_secs(20))
    }

    /// SIGKILL: a crash, nothing cleaned up.
    pub(crate) fn kill_bouncer(&self) {
        let Some(pid) = self.pid() else {
            panic!("no bouncer running");
        };
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        self.reap(Duration::from_secs(20));
    }

    fn reap(&self, timeout: Duration) -> ExitStatus {
        let mut slot = self.bouncer.borrow_mut();
        let Some((child, _)) = slot.as_mut() else {
            panic!("no bouncer running");
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                slot.take();
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let s = child.wait().unwrap_or_else(|e| panic!("{e}"));
                slot.take();
                drop(slot);
                panic!("the bouncer did not stop within {timeout:?} ({s})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop_bouncer_quietly(&self) {
        let mut slot = self.bouncer.borrow_mut();
        if let Some((child, _)) = slot.as_mut() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The current (or last) bouncer's output.
    pub(crate) fn log(&self) -> String {
        let n = *self.starts.borrow();
        std::fs::read_to_string(self.path(&format!("bouncer-{n}.log"))).unwrap_or_default()
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `f` every 100 ms until it gives a value; fails after [`DEADLINE`] or as soon as the
    /// bouncer has exited.
    pub(crate) fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if let Some((child, _)) = self.bouncer.borrow_mut().as_mut()
                && let Ok(Some(s)) = child.try_wait()
            {
                panic!(
                    "{}: waiting for {what}: the bouncer exited ({s})",
                    self.test
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: timed out after {DEADLINE:?} waiting for {what}",
                    self.test
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_log(&self, what: &str, needle: &str) {
        self.wait_for(what, || self.log().contains(needle).then_some(()));
    }

    // ------------------------------------------------------------------ traffic

    fn server_addr(&self, src: &str) -> SocketAddr {
        let server = if src.contains(':') {
            SERVER_V6
        } else {
            SERVER_V4
        };
        let ip: IpAddr = server.parse().unwrap_or_else(|e| panic!("{e}"));
        SocketAddr::new(ip, self.tcp_port)
    }

    /// One TCP connect from `src` to the server's listener.
    pub(crate) fn tcp(&self, src: &str, timeout: Duration) -> Tcp {
        let src_ip: IpAddr = src.parse().unwrap_or_else(|e| panic!("{src}: {e}"));
        let dst = self.server_addr(src);
        self.attacker_rt
            .run(async move { tcp_connect(src_ip, dst, timeout).await })
    }

    /// One ICMP echo from `src`: whether the server answered.
    pub(crate) fn ping(&self, src: &str) -> bool {
        let dst = if src.contains(':') {
            SERVER_V6
        } else {
            SERVER_V4
        };
        let fam = if src.contains(':') { "-6" } else { "-4" };
        let mut c = self.attacker.command("ping");
        c.args([fam, "-n", "-q", "-c", "1", "-W", "1", "-I", src, dst]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c.status().is_ok_and(|s| s.success())
    }

    /// Waits until TCP connects and pings from `src` go unanswered (dropped, not refused).
    pub(crate) fn wait_dropped(&self, src: &str) {
        self.wait_for(&format!("packets from {src} to be dropped"), || {
            (self.tcp(src, Duration::from_millis(700)) == Tcp::TimedOut && !self.ping(src))
                .then_some(())
        });
    }

    /// Waits until TCP connects and pings from `src` get through.
    pub(crate) fn wait_reachable(&self, src: &str) {
        self.wait_for(&format!("packets from {src} to get through"), || {
            (self.tcp(src, Duration::from_secs(2)) == Tcp::Connected && self.ping(src))
                .then_some(())
        });
    }

    /// The never-banned sources get through right now (one attempt each, no retry).
    pub(crate) fn assert_innocent_pass(&self) {
        for src in [INNOCENT_V4, INNOCENT_V6] {
            let t = self.tcp(src, Duration::from_secs(3));
            assert_eq!(
                t,
                Tcp::Connected,
                "{}: TCP from never-banned {src}",
                self.test
            );
            assert!(
                self.ping(src),
                "{}: ping from never-banned {src} got no answer",
                self.test
            );
        }
    }

    // ------------------------------------------------------------------ kernel state

    /// `nft list ruleset` in the server namespace.
    pub(crate) fn ruleset(&self) -> String {
        let (ok, out) = self.server.run("nft", &["list", "ruleset"]);
        assert!(ok, "nft list ruleset: {out}");
        out
    }

    /// `iptables-save` + `ip6tables-save` + `ipset list -n` in the server namespace.
    pub(crate) fn iptables_state(&self) -> String {
        let mut s = String::new();
        for (prog, args) in [
            ("iptables-save", &["-t", "filter"][..]),
            ("ip6tables-save", &["-t", "filter"][..]),
            ("ipset", &["list", "-n"][..]),
        ] {
            let prog = self.mode.tool(prog);
            let (ok, out) = self.server.run(&prog, args);
            assert!(ok, "{prog}: {out}");
            let _ = writeln!(s, "# {prog}\n{out}");
        }
        s
    }

    /// The bouncer's Prometheus page.
    pub(crate) fn metrics(&self) -> String {
        self.server_rt.run(async {
            match reqwest::get("http://127.0.0.1:60601/metrics").await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => format!("error: {e}"),
            }
        })
    }
}

/// The value of `name{labels}` in a Prometheus text page.
pub(crate) fn metric(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}
