//! `rampart setup`: the default configuration layout — `/etc/rampart/{config.yaml, acquis.yaml,
//! acquis.d/, profiles.yaml}` plus the content (parsers, scenarios...) and a systemd unit — with
//! the machine's logs detected. Existing files are kept unless `--force`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `rampart setup`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration directory.
    #[arg(long, default_value = "/etc/rampart")]
    etc: PathBuf,
    /// State directory (database, read positions, alert queue).
    #[arg(long, default_value = "/var/lib/rampart")]
    data: PathBuf,
    /// Content to install (parsers/, scenarios/...).
    #[arg(long, default_value_os_t = super::content::default_hub())]
    hub: PathBuf,
    /// Where to write the systemd unit (nothing when the directory does not exist).
    #[arg(long, default_value = "/etc/systemd/system")]
    systemd_dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// Logs `cscli setup` would find on a Debian/RHEL machine: (path glob, type).
pub(crate) const KNOWN_LOGS: &[(&str, &str)] = &[
    ("/var/log/auth.log", "syslog"),
    ("/var/log/secure", "syslog"),
    ("/var/log/nginx/access.log", "nginx"),
    ("/var/log/nginx/error.log", "nginx"),
    ("/var/log/apache2/access.log", "apache2"),
    ("/var/log/apache2/error.log", "apache2"),
    ("/var/log/httpd/access_log", "apache2"),
];

/// One acquisition document per known log present on this machine, and their paths.
pub(crate) fn detected_logs() -> (String, Vec<&'static str>) {
    let mut doc = String::new();
    let mut found = Vec::new();
    for (path, kind) in KNOWN_LOGS {
        if Path::new(path).is_file() {
            doc.push_str(&format!(
                "---\nsource: file\nfilenames:\n  - {path}\nlabels:\n  type: {kind}\n"
            ));
            found.push(*path);
        }
    }
    (doc, found)
}

fn write(path: &Path, text: &str, force: bool, done: &mut Vec<String>) -> anyhow::Result<()> {
    if path.exists() && !force {
        done.push(format!("kept     {}", path.display()));
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    done.push(format!("wrote    {}", path.display()));
    Ok(())
}

fn copy_tree(from: &Path, to: &Path, force: bool, n: &mut usize) -> anyhow::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst, force, n)?;
        } else if force || !dst.exists() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
            *n += 1;
        }
    }
    Ok(())
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut done = Vec::new();
    let etc = &args.etc;
    let data = &args.data;
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    std::fs::create_dir_all(etc.join("acquis.d"))
        .with_context(|| format!("creating {}", etc.display()))?;
    let config = format!(
        "# Rampart configuration (CrowdSec's config.yaml key names).\nconfig_paths:\n  data_dir: {data}\n  hub_dir: {etc}\ncrowdsec_service:\n  acquisition_path: {etc}/acquis.yaml\n  acquisition_dir: {etc}/acquis.d\napi:\n  server:\n    listen_uri: 127.0.0.1:8080\n    profiles_path: {etc}/profiles.yaml\n    trusted_ips: [127.0.0.1, ::1]\ndb_config:\n  type: sqlite\n  db_path: {data}/rampart.db\n  flush:\n    max_age: 7d\n",
        data = data.display(),
        etc = etc.display()
    );
    write(&etc.join("config.yaml"), &config, args.force, &mut done)?;
    let mut acquis = String::from(
        "# Logs Rampart reads (CrowdSec acquis.yaml format); one document per source.\n",
    );
    let (docs, found) = detected_logs();
    acquis.push_str(&docs);
    if found.is_empty() {
        acquis.push_str("# No known log was found on this machine. Example:\n# source: file\n# filenames:\n#   - /var/log/auth.log\n# labels:\n#   type: syslog\n");
    }
    write(&etc.join("acquis.yaml"), &acquis, args.force, &mut done)?;
    let profiles = format!(
        "# CrowdSec's default profiles: ban IPs and ranges for 4h when a scenario asks for remediation.\n{}",
        lapi::profiles::DEFAULT_PROFILES
    );
    write(&etc.join("profiles.yaml"), &profiles, args.force, &mut done)?;
    let mut files = 0;
    for dir in [
        "parsers",
        "scenarios",
        "postoverflows",
        "patterns",
        "data",
        "collections",
    ] {
        copy_tree(&args.hub.join(dir), &etc.join(dir), args.force, &mut files)?;
    }
    done.push(format!(
        "content  {files} files from {} into {}",
        args.hub.display(),
        etc.display()
    ));
    if args.systemd_dir.is_dir() {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/usr/local/bin/rampart".into());
        let unit = format!(
            "[Unit]\nDescription=Rampart intrusion prevention (agent + local API)\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nType=simple\nExecStart={exe} run -c {etc}/config.yaml\nExecReload=/bin/kill -HUP $MAINPID\nRestart=on-failure\nRestartSec=5\nTimeoutStopSec=30\n\n[Install]\nWantedBy=multi-user.target\n",
            etc = etc.display()
        );
        write(
            &args.systemd_dir.join("rampart.service"),
            &unit,
            args.force,
            &mut done,
        )?;
    }
    for d in &done {
        println!("{d}");
    }
    println!(
        "\nnext: rampart run -c {}/config.yaml   (or: systemctl daemon-reload && systemctl enable --now rampart)",
        etc.display()
    );
    Ok(ExitCode::SUCCESS)
}
