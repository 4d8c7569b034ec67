//! Starting over: after a crash the kernel state is reconciled with the LAPI, never doubled; a
//! clean stop removes the bouncer's rules unless told to keep them.

use std::time::Duration;

use crate::lab::{Lab, Mode, Tcp};

/// Rules, tables and sets of the bouncer, as counts a duplicate would change.
fn inventory(lab: &Lab, mode: Mode) -> Vec<(String, usize)> {
    match mode {
        Mode::Nftables => {
            let r = lab.ruleset();
            [
                "table ip rampart ",
                "table ip6 rampart6 ",
                "chain rampart-chain-input",
                "chain rampart6-chain-input",
                "ip saddr @",
                "ip6 saddr @",
            ]
            .iter()
            .map(|k| (k.to_string(), r.matches(k).count()))
            .collect()
        }
        Mode::Iptables | Mode::IptablesLegacy => {
            let s = lab.iptables_state();
            let sets = s
                .split("# ipset")
                .nth(1)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("blacklists"))
                .count();
            vec![
                (
                    "-A INPUT -j RAMPART_CHAIN".into(),
                    s.matches("-A INPUT -j RAMPART_CHAIN").count(),
                ),
                ("--match-set".into(), s.matches("--match-set").count()),
                ("sets".into(), sets),
            ]
        }
    }
}

fn restart_after_kill_reconciles(test: &str, mode: Mode) {
    let Some(lab) = Lab::new(test, mode) else {
        return;
    };
    lab.ban("10.77.0.3", "1h");
    lab.ban("fd77::3", "1h");
    let cfg = lab.config("");
    lab.start_bouncer(&cfg);
    lab.wait_dropped("10.77.0.3");
    lab.wait_dropped("fd77::3");
    let before = inventory(&lab, mode);

    lab.kill_bouncer();
    // While it is down: one ban lifted, two added.
    lab.unban("10.77.0.3");
    lab.ban("10.77.0.5", "1h");
    lab.ban("fd77::5", "1h");
    // A crash keeps enforcing what was there (fail static) until the next start.
    assert_eq!(
        lab.tcp("10.77.0.3", Duration::from_millis(700)),
        Tcp::TimedOut
    );

    lab.start_bouncer(&cfg);
    lab.wait_reachable("10.77.0.3");
    lab.wait_dropped("10.77.0.5");
    lab.wait_dropped("fd77::5");
    lab.wait_dropped("fd77::3");
    lab.assert_innocent_pass();
    let after = inventory(&lab, mode);
    assert_eq!(
        before,
        after,
        "a restart must rebuild, not add:\n{}",
        match mode {
            Mode::Nftables => lab.ruleset(),
            Mode::Iptables | Mode::IptablesLegacy => lab.iptables_state(),
        }
    );
    for (what, n) in &after {
        assert!(*n >= 1, "{what} missing after the restart");
    }
}

#[test]
fn nftables_restart_after_kill_reconciles() {
    restart_after_kill_reconciles("nftables_restart_after_kill_reconciles", Mode::Nftables);
}

#[test]
fn iptables_ipset_restart_after_kill_reconciles() {
    restart_after_kill_reconciles(
        "iptables_ipset_restart_after_kill_reconciles",
        Mode::Iptables,
    );
}

fn clean_shutdown(test: &str, mode: Mode) {
    let Some(lab) = Lab::new(test, mode) else {
        return;
    };
    lab.ban("10.77.0.3", "1h");
    lab.start_bouncer(&lab.config(""));
    lab.wait_dropped("10.77.0.3");
    let status = lab.stop_bouncer();
    assert!(status.success(), "exit status {status}\n{}", lab.log());
    lab.wait_reachable("10.77.0.3");
    let left = inventory(&lab, mode);
    assert!(
        left.iter().all(|(_, n)| *n == 0),
        "rules left after a clean stop: {left:?}"
    );

    // cleanup_on_exit: false keeps protecting while the bouncer is stopped (an upgrade).
    lab.start_bouncer(&lab.config("cleanup_on_exit: false"));
    lab.wait_dropped("10.77.0.3");
    let status = lab.stop_bouncer();
    assert!(status.success(), "exit status {status}\n{}", lab.log());
    assert!(lab.log().contains("kept"), "{}", lab.log());
    assert_eq!(
        lab.tcp("10.77.0.3", Duration::from_millis(700)),
        Tcp::TimedOut
    );
    lab.assert_innocent_pass();
}

#[test]
fn nftables_clean_shutdown_removes_rules_unless_kept() {
    clean_shutdown(
        "nftables_clean_shutdown_removes_rules_unless_kept",
        Mode::Nftables,
    );
}

#[test]
fn iptables_ipset_clean_shutdown_removes_rules_unless_kept() {
    clean_shutdown(
        "iptables_ipset_clean_shutdown_removes_rules_unless_kept",
        Mode::Iptables,
    );
}

#[test]
fn iptables_legacy_restart_after_kill_reconciles() {
    restart_after_kill_reconciles(
        "iptables_legacy_restart_after_kill_reconciles",
        Mode::IptablesLegacy,
    );
}
