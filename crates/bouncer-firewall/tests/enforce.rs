//! What the bouncer is for: banned sources are dropped, others never are.

use crate::lab::{Lab, Mode, metric};

/// Bans by address and by range, IPv4 and IPv6, from the startup list and pushed later; unbans;
/// expiry by the kernel's own timeouts; per-origin drop counters.
fn enforces_decisions_on_real_traffic(test: &str, mode: Mode) {
    let Some(lab) = Lab::new(test, mode) else {
        return;
    };
    // Made before the bouncer starts: arrives with the startup list.
    lab.ban("10.77.0.3", "1h");
    lab.start_bouncer(&lab.config(""));
    lab.wait_dropped("10.77.0.3");
    lab.assert_innocent_pass();

    // Pushed while it runs.
    lab.ban("fd77::3", "1h");
    lab.wait_dropped("fd77::3");
    lab.assert_innocent_pass();

    // A range covers every address in it, not only its first.
    lab.ban("10.77.0.64/27", "1h");
    lab.ban("fd77::8:0/112", "1h");
    for src in ["10.77.0.70", "10.77.0.90", "fd77::8:5", "fd77::8:9"] {
        lab.wait_dropped(src);
    }
    lab.assert_innocent_pass();

    // Nested ranges: a shorter inner ban inside a longer outer one; ending the inner one keeps
    // the outer one whole.
    lab.ban("10.77.0.88/29", "2h");
    lab.unban("10.77.0.88/29");
    lab.wait_dropped("10.77.0.90");
    lab.wait_dropped("10.77.0.70");

    let page = lab.metrics();
    for ip_type in ["ipv4", "ipv6"] {
        let dropped = metric(
            &page,
            &format!("fw_bouncer_dropped_packets{{origin=\"cscli\",ip_type=\"{ip_type}\"}}"),
        );
        assert!(
            dropped.is_some_and(|n| n > 0.0),
            "dropped packets of origin cscli/{ip_type}: {dropped:?} in\n{page}"
        );
    }
    let held = metric(
        &page,
        "fw_bouncer_banned_ips{origin=\"cscli\",ip_type=\"ipv4\"}",
    );
    assert_eq!(held, Some(2.0), "bans held:\n{page}");

    // Unbanning restores traffic.
    for v in ["10.77.0.3", "fd77::3", "10.77.0.64/27", "fd77::8:0/112"] {
        lab.unban(v);
    }
    for src in [
        "10.77.0.3",
        "fd77::3",
        "10.77.0.70",
        "10.77.0.90",
        "fd77::8:5",
        "fd77::8:9",
    ] {
        lab.wait_reachable(src);
    }
    lab.assert_innocent_pass();

    // Expiry is the kernel's job: with the bouncer gone (killed, so it cannot delete anything),
    // a short ban still ends on time while a long one stays.
    lab.ban("10.77.0.4", "6s");
    lab.ban("fd77::4", "6s");
    lab.ban("10.77.0.5", "1h");
    for src in ["10.77.0.4", "fd77::4", "10.77.0.5"] {
        lab.wait_dropped(src);
    }
    lab.kill_bouncer();
    lab.wait_reachable("10.77.0.4");
    lab.wait_reachable("fd77::4");
    assert_eq!(
        lab.tcp("10.77.0.5", std::time::Duration::from_millis(700)),
        crate::lab::Tcp::TimedOut,
        "the 1h ban must outlive the bouncer"
    );
    assert!(!lab.ping("10.77.0.5"));
    lab.assert_innocent_pass();
}

#[test]
fn nftables_enforces_decisions_on_real_traffic() {
    enforces_decisions_on_real_traffic(
        "nftables_enforces_decisions_on_real_traffic",
        Mode::Nftables,
    );
}

#[test]
fn iptables_ipset_enforces_decisions_on_real_traffic() {
    enforces_decisions_on_real_traffic(
        "iptables_ipset_enforces_decisions_on_real_traffic",
        Mode::Iptables,
    );
}

#[test]
fn iptables_legacy_ipset_enforces_decisions_on_real_traffic() {
    enforces_decisions_on_real_traffic(
        "iptables_legacy_ipset_enforces_decisions_on_real_traffic",
        Mode::IptablesLegacy,
    );
}

/// `push: false`: the bouncer polls every `update_frequency` instead of waiting on the stream.
#[test]
fn polling_mode_follows_the_lapi() {
    let test = "polling_mode_follows_the_lapi";
    let Some(lab) = Lab::new(test, Mode::Nftables) else {
        return;
    };
    lab.start_bouncer(&lab.config("push: false"));
    assert!(
        lab.log().contains("following decisions by polling"),
        "{}",
        lab.log()
    );
    lab.ban("10.77.0.3", "1h");
    lab.ban("fd77::3", "1h");
    lab.wait_dropped("10.77.0.3");
    lab.wait_dropped("fd77::3");
    lab.assert_innocent_pass();
    lab.unban("10.77.0.3");
    lab.wait_reachable("10.77.0.3");
}

/// Against a LAPI that ignores `wait=` (CrowdSec's), push degrades to polling by itself.
#[test]
fn lapi_without_push_is_polled() {
    let test = "lapi_without_push_is_polled";
    let fake = std::sync::Arc::new(std::sync::Mutex::new(crate::fake::Fake::default()));
    let Some(lab) = Lab::with_server(
        test,
        Mode::Nftables,
        crate::lab::Server::NoPush(fake.clone()),
    ) else {
        return;
    };
    fake.lock().unwrap().ban("10.77.0.3", "1h");
    lab.start_bouncer(&lab.config(""));
    lab.wait_dropped("10.77.0.3");
    lab.wait_log("the switch to polling", "polling instead");
    fake.lock().unwrap().ban("fd77::3", "1h");
    fake.lock().unwrap().ban("10.77.0.64/27", "1h");
    lab.wait_dropped("fd77::3");
    lab.wait_dropped("10.77.0.70");
    fake.lock().unwrap().unban("10.77.0.3");
    lab.wait_reachable("10.77.0.3");
    lab.assert_innocent_pass();
    let f = fake.lock().unwrap();
    assert_eq!(
        f.requests
            .first()
            .and_then(|q| q.get("startup"))
            .map(String::as_str),
        Some("true"),
        "the first request must ask for the full list"
    );
    // Two answers that came back at once were enough to stop asking with `wait=`: the
    // requests since are plain polls (a bouncer that kept waiting would busy-loop here).
    let with_wait = f.requests.iter().filter(|q| q.contains_key("wait")).count();
    assert!(
        (2..=3).contains(&with_wait),
        "{with_wait} requests with wait= of {}",
        f.requests.len()
    );
}
