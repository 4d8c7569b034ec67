//! Install, state, upgrade and remove against small hubs built on the fly, each a directory laid
//! out as the hub repository.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hub::{
    Action, HubSource, InstallOptions, ItemType, Layout, LocalHub, NoProgress, Plan, Report,
    Sources, Status, sha256_hex,
};
use serde_json::{Value, json};

/// A hub under construction: files and the index describing them.
struct FakeHub {
    root: PathBuf,
    index: Value,
}

impl FakeHub {
    fn new(root: &Path) -> FakeHub {
        std::fs::create_dir_all(root).unwrap();
        FakeHub {
            root: root.to_path_buf(),
            index: json!({"parsers": {}, "scenarios": {}, "postoverflows": {}, "collections": {}, "contexts": {}}),
        }
    }

    /// Adds an item whose latest version has `content`; `older` are earlier (version,
    /// content) pairs the index knows digests of.
    fn item(
        &mut self,
        kind: &str,
        name: &str,
        version: &str,
        content: &str,
        older: &[(&str, &str)],
        deps: Value,
    ) -> &mut Self {
        let (author, file) = name.split_once('/').unwrap();
        let stage = (kind == "parsers" || kind == "postoverflows").then_some("s01-parse");
        let path = match stage {
            Some(s) => format!("{kind}/{s}/{author}/{file}.yaml"),
            None => format!("{kind}/{author}/{file}.yaml"),
        };
        let full = self.root.join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        let mut versions = serde_json::Map::new();
        for (v, c) in older {
            versions.insert(
                (*v).into(),
                json!({"digest": sha256_hex(c.as_bytes()), "deprecated": false}),
            );
        }
        versions.insert(
            version.into(),
            json!({"digest": sha256_hex(content.as_bytes()), "deprecated": false}),
        );
        let mut entry = json!({
            "path": path, "version": version, "versions": versions,
            "author": author, "description": format!("{name} for tests"),
        });
        if let Some(s) = stage {
            entry["stage"] = json!(s);
        }
        if let Value::Object(d) = deps {
            for (k, v) in d {
                entry[k] = v;
            }
        }
        self.index[kind][name] = entry;
        self
    }

    fn file(&mut self, rel: &str, content: &str) -> &mut Self {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    fn write_index(&self) {
        std::fs::write(
            self.root.join(".index.json"),
            serde_json::to_vec(&self.index).unwrap(),
        )
        .unwrap();
    }
}

const SSHD_LOGS: &str = "name: acme/sshd-logs\nfilter: \"1 == 1\"\n";
const SSH_BF: &str = "name: acme/ssh-bf\ntype: leaky\ndata:\n  - source_url: https://data.example/lists/users.txt\n    dest_file: users.txt\n    type: string\n";
const SYSLOG: &str = "name: acme/syslog-logs\n";

/// A hub with `acme/sshd` (sshd-logs, ssh-bf with a data file) and `acme/linux` (syslog-logs
/// and acme/sshd).
fn base_hub(root: &Path) -> FakeHub {
    let mut h = FakeHub::new(root);
    h.item(
        "parsers",
        "acme/sshd-logs",
        "0.1",
        SSHD_LOGS,
        &[],
        json!({}),
    )
    .item("parsers", "acme/syslog-logs", "0.1", SYSLOG, &[], json!({}))
    .item("scenarios", "acme/ssh-bf", "0.1", SSH_BF, &[], json!({}))
    .item(
        "collections",
        "acme/sshd",
        "0.1",
        "name: acme/sshd\nparsers: [acme/sshd-logs]\nscenarios: [acme/ssh-bf]\n",
        &[],
        json!({"parsers": ["acme/sshd-logs"], "scenarios": ["acme/ssh-bf"]}),
    )
    .item(
        "collections",
        "acme/linux",
        "0.1",
        "name: acme/linux\nparsers: [acme/syslog-logs]\ncollections: [acme/sshd]\n",
        &[],
        json!({"parsers": ["acme/syslog-logs"], "collections": ["acme/sshd"]}),
    )
    .file("data/lists/users.txt", "root\nadmin\n")
    .file("patterns/ssh", "SSHD_X .*\n");
    h.write_index();
    h
}

struct Env {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    layout: Layout,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    base_hub(&src);
    let layout = Layout::new(&tmp.path().join("etc"), &tmp.path().join("etc/hub"));
    Env {
        src,
        layout,
        _tmp: tmp,
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn update(e: &Env, src: &Path) {
    let source = HubSource::parse(src.to_str().unwrap()).unwrap();
    block(hub::update_index(&e.layout, &source, false)).unwrap();
}

fn apply(e: &Env, hub: &LocalHub, plan: &Plan) -> Result<Report, hub::HubError> {
    let source = HubSource::parse(e.src.to_str().unwrap()).unwrap();
    block(hub::apply(
        hub,
        plan,
        Sources {
            hub: &source,
            data_mirror: None,
        },
        &NoProgress,
    ))
}

fn load(e: &Env) -> LocalHub {
    LocalHub::load(e.layout.clone()).unwrap()
}

fn install(e: &Env, kind: ItemType, names: &[&str]) -> Report {
    let hub = load(e);
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let plan = hub
        .plan_install(kind, &names, InstallOptions::default())
        .unwrap();
    apply(e, &hub, &plan).unwrap()
}

fn status(hub: &LocalHub, kind: ItemType, name: &str) -> Status {
    hub.get(kind, name).unwrap().state.status()
}

#[test]
fn installing_a_collection_links_its_items_and_fetches_data_and_patterns() {
    let e = env();
    update(&e, &e.src);
    let report = install(&e, ItemType::Collections, &["acme/linux"]);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    let link = e.layout.config_dir.join("parsers/s01-parse/sshd-logs.yaml");
    let target = std::fs::read_link(&link).unwrap();
    assert_eq!(
        target,
        e.layout
            .hub_dir
            .join("parsers/s01-parse/acme/sshd-logs.yaml")
    );
    assert_eq!(std::fs::read_to_string(&link).unwrap(), SSHD_LOGS);
    assert_eq!(
        std::fs::read_to_string(e.layout.data_dir.join("users.txt")).unwrap(),
        "root\nadmin\n"
    );
    assert!(e.layout.pattern_dir.join("ssh").is_file());

    let hub = load(&e);
    for (k, n) in [
        (ItemType::Collections, "acme/linux"),
        (ItemType::Collections, "acme/sshd"),
        (ItemType::Parsers, "acme/sshd-logs"),
        (ItemType::Parsers, "acme/syslog-logs"),
        (ItemType::Scenarios, "acme/ssh-bf"),
    ] {
        assert_eq!(status(&hub, k, n), Status::UpToDate, "{k}:{n}");
    }
    let logs = hub.get(ItemType::Parsers, "acme/sshd-logs").unwrap();
    assert_eq!(
        logs.state.belongs_to_collections,
        vec!["acme/linux".to_owned(), "acme/sshd".to_owned()]
    );
    assert!(hub.warnings.is_empty(), "{:?}", hub.warnings);

    // A second install changes nothing.
    let again = hub
        .plan_install(
            ItemType::Collections,
            &["acme/linux".into()],
            InstallOptions::default(),
        )
        .unwrap();
    assert!(again.changes_nothing(), "{:?}", again.steps);
}

#[test]
fn an_edited_item_is_tainted_and_never_replaced_without_force() {
    let e = env();
    update(&e, &e.src);
    install(&e, ItemType::Collections, &["acme/linux"]);
    let link = e.layout.config_dir.join("parsers/s01-parse/sshd-logs.yaml");
    std::fs::write(&link, format!("{SSHD_LOGS}# mine\n")).unwrap();

    let hub = load(&e);
    let logs = hub.get(ItemType::Parsers, "acme/sshd-logs").unwrap();
    assert_eq!(logs.state.status(), Status::Tainted);
    assert_eq!(logs.state.local_version.as_deref(), Some("?"));
    assert_eq!(logs.state.text(), "enabled,tainted");
    for c in ["acme/sshd", "acme/linux"] {
        let c = hub.get(ItemType::Collections, c).unwrap();
        assert!(c.state.tainted, "{}", c.name);
        assert_eq!(
            c.state.tainted_by,
            vec!["parsers:acme/sshd-logs".to_owned()]
        );
    }

    for plan in [
        hub.plan_upgrade_all(false).unwrap(),
        hub.plan_upgrade(ItemType::Parsers, &["acme/sshd-logs".into()], false, false)
            .unwrap(),
        hub.plan_install(
            ItemType::Collections,
            &["acme/linux".into()],
            InstallOptions::default(),
        )
        .unwrap(),
    ] {
        assert!(plan.changes_nothing(), "{:?}", plan.steps);
        assert!(
            plan.notes
                .iter()
                .any(|n| n.message.contains("edited locally") && n.message.contains("--force")),
            "{:?}",
            plan.notes
        );
        apply(&e, &hub, &plan).unwrap();
        assert!(
            std::fs::read_to_string(&link)
                .unwrap()
                .ends_with("# mine\n")
        );
    }
    let removal = hub
        .plan_remove(
            ItemType::Parsers,
            &["acme/sshd-logs".into()],
            false,
            false,
            false,
        )
        .unwrap();
    assert!(removal.steps.is_empty());

    let forced = hub.plan_upgrade_all(true).unwrap();
    apply(&e, &hub, &forced).unwrap();
    assert_eq!(std::fs::read_to_string(&link).unwrap(), SSHD_LOGS);
    assert_eq!(
        status(&load(&e), ItemType::Collections, "acme/linux"),
        Status::UpToDate
    );
}

#[test]
fn upgrade_brings_new_versions_and_the_items_a_collection_gained() {
    let e = env();
    update(&e, &e.src);
    install(&e, ItemType::Collections, &["acme/sshd"]);

    // The hub moves on: sshd-logs 0.2, and acme/sshd 0.2 adds acme/sshd-success.
    let v2 = e.src.parent().unwrap().join("src2");
    let mut h = base_hub(&v2);
    const LOGS_V2: &str = "name: acme/sshd-logs\nfilter: \"2 == 2\"\n";
    h.item(
        "parsers",
        "acme/sshd-logs",
        "0.2",
        LOGS_V2,
        &[("0.1", SSHD_LOGS)],
        json!({}),
    )
    .item(
        "parsers",
        "acme/sshd-success",
        "0.1",
        "name: acme/sshd-success\n",
        &[],
        json!({}),
    )
    .item(
        "collections",
        "acme/sshd",
        "0.2",
        "name: acme/sshd\nparsers: [acme/sshd-logs, acme/sshd-success]\nscenarios: [acme/ssh-bf]\n",
        &[(
            "0.1",
            "name: acme/sshd\nparsers: [acme/sshd-logs]\nscenarios: [acme/ssh-bf]\n",
        )],
        json!({"parsers": ["acme/sshd-logs", "acme/sshd-success"], "scenarios": ["acme/ssh-bf"]}),
    );
    h.write_index();
    update(&e, &v2);

    let hub = load(&e);
    let logs = hub.get(ItemType::Parsers, "acme/sshd-logs").unwrap();
    assert_eq!(logs.state.status(), Status::Outdated);
    assert_eq!(logs.state.text(), "enabled,update-available");
    // An older collection is "update available", not tainted for lacking the new item
    // (crowdsec#704).
    let c = hub.get(ItemType::Collections, "acme/sshd").unwrap();
    assert_eq!(c.state.status(), Status::Outdated);
    assert!(
        hub.warnings
            .iter()
            .any(|w| w.contains("update for collection acme/sshd"))
    );
    // Its installed version's sub-items come from its file, not from the new index.
    assert_eq!(
        hub.current_dependencies(c).parsers,
        vec!["acme/sshd-logs".to_owned()]
    );

    let plan = hub
        .plan_upgrade(ItemType::Collections, &["acme/sshd".into()], false, false)
        .unwrap();
    let kinds: Vec<(Action, &str)> = plan
        .steps
        .iter()
        .filter(|s| s.action != Action::Data)
        .map(|s| (s.action, s.key.1.as_str()))
        .collect();
    assert!(
        kinds.contains(&(Action::Download, "acme/sshd")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Action::Download, "acme/sshd-logs")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Action::Enable, "acme/sshd-success")),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k.1 == "acme/syslog-logs"),
        "{kinds:?}"
    );
    let source = HubSource::parse(v2.to_str().unwrap()).unwrap();
    block(hub::apply(
        &hub,
        &plan,
        Sources {
            hub: &source,
            data_mirror: None,
        },
        &NoProgress,
    ))
    .unwrap();

    let hub = load(&e);
    for (k, n) in [
        (ItemType::Collections, "acme/sshd"),
        (ItemType::Parsers, "acme/sshd-logs"),
        (ItemType::Parsers, "acme/sshd-success"),
    ] {
        assert_eq!(status(&hub, k, n), Status::UpToDate, "{k}:{n}");
    }
    // Nothing the user did not install appeared.
    assert_eq!(
        status(&hub, ItemType::Parsers, "acme/syslog-logs"),
        Status::NotInstalled
    );
}

#[test]
fn content_that_does_not_match_its_digest_is_refused_before_anything_is_written() {
    let e = env();
    update(&e, &e.src);
    // The hub's file changes after the index was written.
    std::fs::write(
        e.src.join("scenarios/acme/ssh-bf.yaml"),
        "name: acme/ssh-bf\ntype: trigger\n",
    )
    .unwrap();
    let hub = load(&e);
    let plan = hub
        .plan_install(
            ItemType::Collections,
            &["acme/sshd".into()],
            InstallOptions::default(),
        )
        .unwrap();
    let err = apply(&e, &hub, &plan).unwrap_err().to_string();
    assert!(
        err.contains("scenarios:acme/ssh-bf")
            && err.contains("sha256")
            && err.contains("hub update"),
        "{err}"
    );
    assert!(!e.layout.config_dir.join("parsers").exists());
    assert!(!e.layout.config_dir.join("collections").exists());
}

#[test]
fn removing_a_collection_keeps_what_another_installed_collection_needs() {
    let e = env();
    update(&e, &e.src);
    // acme/web also uses acme/syslog-logs.
    let mut h = base_hub(&e.src);
    h.item(
        "collections",
        "acme/web",
        "0.1",
        "name: acme/web\nparsers: [acme/syslog-logs]\n",
        &[],
        json!({"parsers": ["acme/syslog-logs"]}),
    );
    h.write_index();
    update(&e, &e.src);
    install(&e, ItemType::Collections, &["acme/linux", "acme/web"]);

    let hub = load(&e);
    // A parser that an installed collection needs is not removed without --force.
    let p = hub
        .plan_remove(
            ItemType::Parsers,
            &["acme/sshd-logs".into()],
            false,
            false,
            false,
        )
        .unwrap();
    assert!(p.steps.is_empty());
    assert!(p.notes[0].message.contains("acme/linux") && p.notes[0].message.contains("--force"));

    let plan = hub
        .plan_remove(
            ItemType::Collections,
            &["acme/linux".into()],
            false,
            false,
            false,
        )
        .unwrap();
    apply(&e, &hub, &plan).unwrap();
    let hub = load(&e);
    assert_eq!(
        status(&hub, ItemType::Collections, "acme/linux"),
        Status::NotInstalled
    );
    assert_eq!(
        status(&hub, ItemType::Collections, "acme/sshd"),
        Status::NotInstalled
    );
    assert_eq!(
        status(&hub, ItemType::Parsers, "acme/sshd-logs"),
        Status::NotInstalled
    );
    assert_eq!(
        status(&hub, ItemType::Parsers, "acme/syslog-logs"),
        Status::UpToDate
    );
    assert_eq!(
        status(&hub, ItemType::Collections, "acme/web"),
        Status::UpToDate
    );
    // Downloads stay unless purged.
    assert!(
        hub.get(ItemType::Parsers, "acme/sshd-logs")
            .unwrap()
            .state
            .downloaded()
    );
    let purge = hub
        .plan_remove(ItemType::Parsers, &[], true, true, false)
        .unwrap();
    apply(&e, &hub, &purge).unwrap();
    let hub = load(&e);
    assert!(
        !hub.get(ItemType::Parsers, "acme/sshd-logs")
            .unwrap()
            .state
            .downloaded()
    );
    assert_eq!(
        status(&hub, ItemType::Parsers, "acme/syslog-logs"),
        Status::NotInstalled
    );
}

#[test]
fn local_files_are_local_items_and_left_alone() {
    let e = env();
    update(&e, &e.src);
    let mine = e.layout.config_dir.join("parsers/s01-parse/sshd-logs.yaml");
    std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
    std::fs::write(&mine, "name: acme/sshd-logs\n# my own\n").unwrap();
    let other = e.layout.config_dir.join("scenarios/custom.yaml");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, "type: trigger\n").unwrap();

    let hub = load(&e);
    let logs = hub.get(ItemType::Parsers, "acme/sshd-logs").unwrap();
    assert_eq!(logs.state.status(), Status::Local);
    assert_eq!(logs.state.text(), "enabled,local");
    assert!(logs.shadows_hub_item);
    assert_eq!(
        hub.get(ItemType::Scenarios, "custom.yaml")
            .unwrap()
            .state
            .status(),
        Status::Local
    );

    let plan = hub
        .plan_install(
            ItemType::Collections,
            &["acme/sshd".into()],
            InstallOptions::default(),
        )
        .unwrap();
    assert!(!plan.steps.iter().any(|s| s.key.1 == "acme/sshd-logs"));
    assert!(plan.notes.iter().any(|n| n.message.contains("local item")));
    apply(&e, &hub, &plan).unwrap();
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "name: acme/sshd-logs\n# my own\n"
    );
    let hub = load(&e);
    let rm = hub
        .plan_remove(
            ItemType::Scenarios,
            &["custom.yaml".into()],
            false,
            false,
            true,
        )
        .unwrap();
    assert!(rm.steps.is_empty());
    assert!(other.is_file());
}

#[test]
fn a_hub_directory_can_be_used_in_place_and_is_never_written_to() {
    let e = env();
    let layout = Layout::new(&e.layout.config_dir, &e.src);
    let hub = LocalHub::load(layout.clone()).unwrap();
    let plan = hub
        .plan_install(
            ItemType::Collections,
            &["acme/sshd".into()],
            InstallOptions::default(),
        )
        .unwrap();
    let source = HubSource::parse(e.src.to_str().unwrap()).unwrap();
    let sources = Sources {
        hub: &source,
        data_mirror: None,
    };
    block(hub::apply(&hub, &plan, sources, &NoProgress)).unwrap();
    let link = layout.config_dir.join("scenarios/ssh-bf.yaml");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        e.src.join("scenarios/acme/ssh-bf.yaml")
    );
    let hub = LocalHub::load(layout).unwrap();
    let purge = hub
        .plan_remove(
            ItemType::Collections,
            &["acme/sshd".into()],
            false,
            true,
            false,
        )
        .unwrap();
    let report = block(hub::apply(&hub, &purge, sources, &NoProgress)).unwrap();
    assert!(e.src.join("scenarios/acme/ssh-bf.yaml").is_file());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("never written to"))
    );
    assert!(!link.exists());
}

#[test]
fn unknown_names_get_a_suggestion_and_missing_dependencies_an_explanation() {
    let e = env();
    update(&e, &e.src);
    let hub = load(&e);
    let err = hub
        .plan_install(
            ItemType::Collections,
            &["acme/ssh".into()],
            InstallOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("did you mean 'acme/sshd'"), "{err}");
    let err = hub
        .plan_install(
            ItemType::Collections,
            &["acme/sshd-logs".into()],
            InstallOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("one of the parsers"), "{err}");

    let mut h = base_hub(&e.src);
    h.item(
        "collections",
        "acme/broken",
        "0.1",
        "name: acme/broken\n",
        &[],
        json!({"scenarios": ["acme/gone"]}),
    );
    h.write_index();
    update(&e, &e.src);
    let err = load(&e)
        .plan_install(
            ItemType::Collections,
            &["acme/broken".into()],
            InstallOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("scenarios:acme/gone") && err.contains("hub update"),
        "{err}"
    );
}

#[test]
fn without_an_index_the_error_says_to_update() {
    let e = env();
    let err = LocalHub::load(e.layout.clone()).unwrap_err().to_string();
    assert!(
        err.contains(".index.json") && err.contains("rampart hub update"),
        "{err}"
    );
}

#[test]
fn embedded_content_is_used_only_when_the_index_keeps_it() {
    let e = env();
    // The index carries the parser's content; the hub's file is gone.
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(e.src.join(".index.json")).unwrap()).unwrap();
    index["parsers"]["acme/syslog-logs"]["content"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        SYSLOG
    ));
    std::fs::write(e.src.join(".index.json"), index.to_string()).unwrap();
    std::fs::remove_file(e.src.join("parsers/s01-parse/acme/syslog-logs.yaml")).unwrap();

    // cscli's default update drops the content: the install needs the file and says so.
    update(&e, &e.src);
    let hub = load(&e);
    let plan = hub
        .plan_install(
            ItemType::Parsers,
            &["acme/syslog-logs".into()],
            InstallOptions::default(),
        )
        .unwrap();
    let err = apply(&e, &hub, &plan).unwrap_err().to_string();
    assert!(
        err.contains("syslog-logs.yaml") && err.contains("lacks a file"),
        "{err}"
    );

    let source = HubSource::parse(e.src.to_str().unwrap()).unwrap();
    block(hub::update_index(&e.layout, &source, true)).unwrap();
    let hub = load(&e);
    let plan = hub
        .plan_install(
            ItemType::Parsers,
            &["acme/syslog-logs".into()],
            InstallOptions::default(),
        )
        .unwrap();
    apply(&e, &hub, &plan).unwrap();
    assert_eq!(
        std::fs::read_to_string(
            e.layout
                .config_dir
                .join("parsers/s01-parse/syslog-logs.yaml")
        )
        .unwrap(),
        SYSLOG
    );
}
