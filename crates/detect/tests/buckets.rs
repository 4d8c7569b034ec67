//! Bucket semantics, scenario by scenario, with time-machine events.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use detect::{Detector, Overflow, ScenarioFile, Scenarios};
use parse::{Ctx, Event, ExpectMode, Line};

fn detector(yaml: &str) -> Detector {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.yaml");
    std::fs::write(&p, yaml).unwrap();
    let ctx = Ctx::new(None, None).unwrap();
    let sc = Scenarios::load(&ctx, &[ScenarioFile::new(&p)]).unwrap();
    Detector::new(Arc::new(sc))
}

fn load_err(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.yaml");
    std::fs::write(&p, yaml).unwrap();
    let ctx = Ctx::new(None, None).unwrap();
    let errs = Scenarios::load(&ctx, &[ScenarioFile::new(&p)]).unwrap_err();
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// An sshd failure from `ip` at second `t` of a fixed day.
fn evt(ip: &str, t: i64, user: &str) -> Event {
    let mut e = Event::from_line(Line::default(), ExpectMode::TimeMachine);
    e.meta.insert("log_type".into(), "ssh_failed-auth".into());
    e.meta.insert("source_ip".into(), ip.into());
    e.meta.insert("target_user".into(), user.into());
    let time = chrono::DateTime::from_timestamp(1_700_000_000 + t, 0)
        .unwrap()
        .fixed_offset();
    e.marshaled_time = parse::enrich::date::marshal_time(&time);
    e
}

fn pour_all(d: &mut Detector, events: &[Event]) -> Vec<Overflow> {
    let mut out = Vec::new();
    for e in events {
        d.pour(e, &mut out);
    }
    out
}

const SSH_BF: &str = "type: leaky
name: test/ssh-bf
description: test
filter: evt.Meta.log_type == 'ssh_failed-auth'
groupby: evt.Meta.source_ip
capacity: 5
leakspeed: 10s
blackhole: 1m
labels:
  remediation: true
";

#[test]
fn leaky_overflows_on_capacity_plus_one_and_builds_the_alert() {
    let mut d = detector(SSH_BF);
    let events: Vec<Event> = (0..6)
        .map(|i| evt("192.0.2.1", i, &format!("u{i}")))
        .collect();
    let out = pour_all(&mut d, &events[..5]);
    assert!(out.is_empty());
    let out = pour_all(&mut d, &events[5..]);
    assert_eq!(out.len(), 1);
    let ov = &out[0];
    let a = ov.alert().unwrap();
    assert_eq!(a.scenario, "test/ssh-bf");
    assert_eq!(a.events_count, 6);
    assert_eq!(a.capacity, 5);
    assert_eq!(a.leakspeed, "10s");
    assert!(a.remediation);
    assert_eq!(a.source.scope, "Ip");
    assert_eq!(a.source.value, "192.0.2.1");
    assert_eq!(a.events.len(), 6);
    assert_eq!(a.start_at, "2023-11-14T22:13:20Z");
    assert_eq!(a.stop_at, "2023-11-14T22:13:25Z");
    assert_eq!(
        a.message,
        "Ip 192.0.2.1 performed 'test/ssh-bf' (6 events over 5s) at 2023-11-14 22:13:25 +0000 UTC"
    );
    assert_eq!(
        a.events[0]
            .meta
            .iter()
            .map(|m| m.key.as_str())
            .collect::<Vec<_>>(),
        ["log_type", "source_ip", "target_user"]
    );
    assert_eq!(a.scenario_hash.len(), 64);
}

#[test]
fn leak_lets_a_slow_source_through() {
    let mut d = detector(SSH_BF);
    // One failure every 10 s never fills a bucket of 5 leaking one token per 10 s.
    let events: Vec<Event> = (0..50).map(|i| evt("192.0.2.1", i * 10, "root")).collect();
    assert!(pour_all(&mut d, &events).is_empty());
    // Every 9 s: the bucket loses a token per 10 s but gains one per 9 s, so it fills.
    let mut d = detector(SSH_BF);
    let events: Vec<Event> = (0..60).map(|i| evt("192.0.2.1", i * 9, "root")).collect();
    let out = pour_all(&mut d, &events);
    assert!(!out.is_empty());
}

#[test]
fn groupby_separates_sources_and_blackhole_suppresses_repeats() {
    let mut d = detector(SSH_BF);
    let mut events = Vec::new();
    for i in 0..6 {
        events.push(evt("192.0.2.1", i, "a"));
        events.push(evt("192.0.2.2", i, "a"));
    }
    let out = pour_all(&mut d, &events);
    assert_eq!(out.len(), 2);
    // The same source right after: blackholed for 1m.
    let again: Vec<Event> = (10..16).map(|i| evt("192.0.2.1", i, "a")).collect();
    assert!(pour_all(&mut d, &again).is_empty());
    // After the blackhole it can overflow again.
    let later: Vec<Event> = (200..206).map(|i| evt("192.0.2.1", i, "a")).collect();
    assert_eq!(pour_all(&mut d, &later).len(), 1);
}

#[test]
fn idle_instance_expires_by_log_time() {
    let mut d = detector(SSH_BF);
    let mut events: Vec<Event> = (0..5).map(|i| evt("192.0.2.1", i, "a")).collect();
    // 61 s later (> (5+1) × 10 s): a fresh bucket, so one more event does not overflow.
    events.push(evt("192.0.2.1", 66, "a"));
    assert!(pour_all(&mut d, &events).is_empty());
    assert_eq!(d.stats().underflowed[0], 1);
}

#[test]
fn distinct_counts_each_value_once() {
    let mut d = detector(
        "type: leaky\nname: t/enum\ndescription: t\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\ndistinct: evt.Meta.target_user\ncapacity: 2\nleakspeed: 1m\n",
    );
    let same: Vec<Event> = (0..10).map(|i| evt("192.0.2.1", i, "root")).collect();
    assert!(pour_all(&mut d, &same).is_empty());
    let users: Vec<Event> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, u)| evt("192.0.2.1", 20 + i as i64, u))
        .collect();
    let out = pour_all(&mut d, &users);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alert().unwrap().events_count, 3);
}

#[test]
fn trigger_overflows_at_once() {
    let mut d = detector(
        "type: trigger\nname: t/trig\ndescription: t\nfilter: evt.Meta.target_user == 'admin'\ngroupby: evt.Meta.source_ip\nblackhole: 2m\n",
    );
    let out = pour_all(
        &mut d,
        &[
            evt("192.0.2.1", 0, "admin"),
            evt("192.0.2.1", 1, "admin"),
            evt("192.0.2.1", 2, "x"),
        ],
    );
    assert_eq!(out.len(), 1);
    let a = out[0].alert().unwrap();
    assert_eq!(
        (
            a.events_count,
            a.leakspeed.as_str(),
            a.start_at == a.stop_at
        ),
        (1, "0s", true)
    );
}

#[test]
fn cancel_on_destroys_the_instance() {
    let mut d = detector(
        &format!("{SSH_BF}cancel_on: evt.Meta.target_user == 'ok'\n").replace(
            "filter: evt.Meta.log_type == 'ssh_failed-auth'",
            "filter: \"true\"",
        ),
    );
    let mut events: Vec<Event> = (0..5).map(|i| evt("192.0.2.1", i, "a")).collect();
    events.push(evt("192.0.2.1", 5, "ok"));
    events.push(evt("192.0.2.1", 6, "a"));
    assert!(pour_all(&mut d, &events).is_empty());
    assert_eq!(d.stats().canceled[0], 1);
}

#[test]
fn conditional_overflows_when_condition_holds() {
    let mut d = detector(
        "type: conditional\nname: t/cond\ndescription: t\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\ncapacity: -1\nleakspeed: 1h\ncondition: len(queue.Queue) >= 3 && any(queue.Queue, {.Meta.target_user == 'root'})\n",
    );
    let out = pour_all(
        &mut d,
        &[
            evt("192.0.2.1", 0, "a"),
            evt("192.0.2.1", 1, "b"),
            evt("192.0.2.1", 2, "c"),
        ],
    );
    assert!(out.is_empty());
    let out = pour_all(&mut d, &[evt("192.0.2.1", 3, "root")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alert().unwrap().events_count, 4);
}

#[test]
fn bayesian_posterior_crosses_threshold() {
    let mut d = detector(
        "type: bayesian\nname: t/bayes\ndescription: t\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\ncapacity: -1\nleakspeed: 1h\nbayesian_prior: 0.1\nbayesian_threshold: 0.75\nbayesian_conditions:\n  - condition: evt.Meta.target_user == 'root'\n    prob_given_evil: 0.9\n    prob_given_benign: 0.1\n    guillotine: true\n  - condition: len(queue.Queue) >= 3\n    prob_given_evil: 0.8\n    prob_given_benign: 0.2\n",
    );
    // prior 0.1; root seen: 0.5; a queue under 3 brings it to 0.2.
    assert!(
        pour_all(
            &mut d,
            &[evt("192.0.2.1", 0, "root"), evt("192.0.2.1", 1, "a")]
        )
        .is_empty()
    );
    // Third event: root still counts (guillotine) and the queue reaches 3: 0.8 > 0.75.
    let out = pour_all(
        &mut d,
        &[
            evt("192.0.2.1", 2, "b"),
            evt("192.0.2.1", 3, "c"),
            evt("192.0.2.1", 4, "d"),
        ],
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn counter_overflows_at_the_end_of_its_duration() {
    let mut d = detector(
        "type: counter\nname: t/count\ndescription: t\nfilter: \"true\"\ngroupby: evt.Meta.source_ip\ncapacity: -1\nduration: 10s\n",
    );
    let out = pour_all(
        &mut d,
        &(0..5).map(|i| evt("192.0.2.1", i, "a")).collect::<Vec<_>>(),
    );
    assert!(out.is_empty());
    // An event after the duration (log time) closes the counter and starts a new one.
    let out = pour_all(&mut d, &[evt("192.0.2.1", 30, "a")]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alert().unwrap().events_count, 5);
    let mut out = Vec::new();
    d.finish(&mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn range_and_custom_scopes() {
    let mut d = detector(
        "type: trigger\nname: t/range\ndescription: t\nfilter: \"true\"\nscope:\n  type: Range\n  expression: IpToRange(evt.Meta.source_ip, '/24')\n",
    );
    let out = pour_all(&mut d, &[evt("192.0.2.77", 0, "a")]);
    let a = out[0].alert().unwrap();
    assert_eq!(
        (
            a.source.scope.as_str(),
            a.source.value.as_str(),
            a.source.ip.as_str()
        ),
        ("Range", "192.0.2.0/24", "192.0.2.77")
    );

    let mut d = detector(
        "type: trigger\nname: t/user\ndescription: t\nfilter: \"true\"\nscope:\n  type: username\n  expression: evt.Meta.target_user\n",
    );
    let out = pour_all(&mut d, &[evt("192.0.2.77", 0, "mallory")]);
    let a = out[0].alert().unwrap();
    assert_eq!(
        (a.source.scope.as_str(), a.source.value.as_str()),
        ("username", "mallory")
    );
}

#[test]
fn events_without_a_valid_source_ip_give_no_alert() {
    let mut d = detector("type: trigger\nname: t/t\ndescription: t\nfilter: \"true\"\n");
    let out = pour_all(&mut d, &[evt("not-an-ip", 0, "a")]);
    assert!(out.is_empty());
    assert!(d.stats().runtime_errors > 0);
}

#[test]
fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("buckets.json");
    let mut d = detector(SSH_BF);
    let first: Vec<Event> = (0..5).map(|i| evt("192.0.2.1", i, "a")).collect();
    assert!(pour_all(&mut d, &first).is_empty());
    assert_eq!(d.save_state(&state).unwrap(), 1);

    let mut restarted = detector(SSH_BF);
    assert_eq!(restarted.load_state(&state).unwrap(), 1);
    let out = pour_all(&mut restarted, &[evt("192.0.2.1", 5, "a")]);
    assert_eq!(out.len(), 1, "the count continued across the restart");
    assert_eq!(out[0].alert().unwrap().events_count, 6);

    // A missing file restores nothing; a corrupt one is a clear error.
    let mut fresh = detector(SSH_BF);
    assert_eq!(fresh.load_state(&dir.path().join("none.json")).unwrap(), 0);
    std::fs::write(&state, "{not json").unwrap();
    let err = fresh.load_state(&state).unwrap_err().to_string();
    assert!(err.contains("buckets.json"), "{err}");
}

#[test]
fn load_errors_name_file_scenario_and_problem() {
    let e = load_err(
        "type: leaky\nname: t/x\ndescription: d\nfilter: \"true\"\ncapacity: 0\nleakspeed: 10s\n",
    );
    assert!(
        e.contains("bad.yaml") && e.contains("t/x") && e.contains("capacity"),
        "{e}"
    );
    let e = load_err(
        "type: leaky\nname: t/x\ndescription: d\nfilter: evt.Meta.x ==\ncapacity: 1\nleakspeed: 10s\n",
    );
    assert!(e.contains("filter") && e.contains('^'), "{e}");
    let e = load_err(
        "type: leaky\nname: t/x\ndescription: d\nfilter: \"true\"\ncapacity: 1\nleakspeed: ten\n",
    );
    assert!(e.contains("leakspeed"), "{e}");
    let e = load_err(
        "type: leaky\nname: t/x\ndescription: d\nfilter: \"true\"\ncapacity: 1\nleakspeed: 1s\nunknown_key: 1\n",
    );
    assert!(e.contains("unknown_key"), "{e}");
    let e = load_err("type: sometimes\nname: t/x\ndescription: d\nfilter: \"true\"\n");
    assert!(e.contains("sometimes"), "{e}");
}

#[test]
fn sharded_detector_gives_the_same_overflows_and_state_moves_between_layouts() {
    use detect::ShardedDetector;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.yaml");
    std::fs::write(&p, SSH_BF).unwrap();
    let ctx = Ctx::new(None, None).unwrap();
    let sc = Arc::new(Scenarios::load(&ctx, &[ScenarioFile::new(&p)]).unwrap());
    let mut events = Vec::new();
    for i in 0..40 {
        for ip in 1..=20 {
            events.push(evt(&format!("192.0.2.{ip}"), i * (ip % 4 + 1), "a"));
        }
    }
    events.sort_by(|a, b| a.marshaled_time.cmp(&b.marshaled_time));
    let mut single = Detector::new(sc.clone());
    let mut want: Vec<String> = pour_all(&mut single, &events)
        .iter()
        .map(|o| format!("{} {}", o.alerts[0].source.value, o.alerts[0].stop_at))
        .collect();
    want.sort();

    let mut sharded = ShardedDetector::new(sc.clone(), 3, 64);
    let mut got = Vec::new();
    for e in &events {
        sharded.pour(e.clone());
        got.extend(sharded.overflows().try_iter());
    }
    let (rest, detectors) = sharded.shutdown();
    got.extend(rest);
    let mut got: Vec<String> = got
        .iter()
        .map(|o| format!("{} {}", o.alerts[0].source.value, o.alerts[0].stop_at))
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert!(!want.is_empty());

    // State saved from 3 shards restores into 2 shards, keys on their owners.
    let state = dir.path().join("state.json");
    let saved = Detector::save_states(&detectors, &state).unwrap();
    let mut two = vec![Detector::new(sc.clone()), Detector::new(sc.clone())];
    assert_eq!(Detector::load_states(&mut two, &state).unwrap(), saved);
    assert_eq!(
        two.iter().map(Detector::instance_count).sum::<usize>(),
        saved
    );
}

#[test]
fn filter_index_skips_unrelated_scenarios() {
    let d = detector(&format!(
        "{SSH_BF}---\ntype: trigger\nname: t/http\ndescription: t\nfilter: evt.Meta.service == 'http' && evt.Meta.http_status in ['404']\n---\ntype: trigger\nname: t/any\ndescription: t\nfilter: evt.Parsed.x == 'y'\n"
    ));
    assert_eq!(d.scenarios().index_coverage(), (2, 1));
}
