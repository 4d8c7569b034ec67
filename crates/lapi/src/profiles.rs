//! Profiles (`profiles.yaml`, CrowdSec's format): which alerts get which decisions.
//!
//! Differences from CrowdSec, on purpose: a profile whose filters are true adds its decisions once
//! (CrowdSec adds them once per true filter, duplicating decisions), and a filter that fails at
//! run time never turns into an HTTP 500 for the agent: with no `on_error`, the profile is skipped
//! and the error logged.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use expr::{Arity, Env, FieldType, Functions, Program, Value};
use model::{Alert, normalize_scope, parse_duration_days};
use serde::Deserialize;

/// A profile file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad YAML or an unknown key.
    #[error("{origin}: profile #{index}: {msg}")]
    Invalid {
        /// File (or `default`).
        origin: String,
        /// 1-based document number.
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// No profile at all.
    #[error("{0}: no profile defined (at least one is required)")]
    Empty(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileYaml {
    name: String,
    #[serde(default)]
    debug: Option<bool>,
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    decisions: Vec<DecisionYaml>,
    #[serde(default)]
    duration_expr: Option<String>,
    #[serde(default)]
    on_success: Option<String>,
    #[serde(default)]
    on_failure: Option<String>,
    #[serde(default)]
    on_error: Option<String>,
    #[serde(default)]
    notifications: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionYaml {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    simulated: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnError {
    Skip,
    Apply,
    Break,
}

#[derive(Debug)]
struct ProfileDecision {
    kind: String,
    duration_ns: i64,
    scope: Option<String>,
    origin: String,
    simulated: bool,
}

#[derive(Debug)]
struct Profile {
    name: String,
    debug: bool,
    filters: Vec<Program>,
    decisions: Vec<ProfileDecision>,
    duration_expr: Option<Program>,
    on_success_break: bool,
    on_error: OnError,
    notifications: Vec<String>,
}

/// A decision a profile asks for, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionSpec {
    /// Type.
    pub kind: String,
    /// Duration (ns).
    pub duration_ns: i64,
    /// Scope.
    pub scope: String,
    /// Value.
    pub value: String,
    /// Origin.
    pub origin: String,
    /// Scenario.
    pub scenario: String,
    /// Simulation mode.
    pub simulated: bool,
}

/// What the profiles made of one alert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Decisions from the first matching profile.
    pub decisions: Vec<DecisionSpec>,
    /// Notification plugin names of every matching profile.
    pub notifications: Vec<String>,
    /// Profiles that matched, by name.
    pub matched: Vec<String>,
}

/// The ordered profile list.
#[derive(Debug)]
pub struct Profiles {
    list: Vec<Profile>,
    needs_history: bool,
}

/// CrowdSec's default `profiles.yaml`: ban Ip and Range alerts that ask for remediation, 4h.
pub const DEFAULT_PROFILES: &str = r#"name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Ip"
decisions:
 - type: ban
   duration: 4h
on_success: break
---
name: default_range_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == "Range"
decisions:
 - type: ban
   duration: 4h
on_success: break
"#;

const DEFAULT_DURATION_NS: i64 = 4 * 3600 * 1_000_000_000;

thread_local! {
    /// `(created_at, until)` of past decisions against the alert's value, and "now", for the
    /// duration of one evaluation: the history helpers read it.
    static HISTORY: RefCell<(Vec<(i64, i64)>, i64)> = const { RefCell::new((Vec::new(), 0)) };
}

fn history_functions(funcs: &mut Functions) {
    funcs.register("GetDecisionsCount", Arity::Exact(1), false, |_| {
        Ok(Value::Int(HISTORY.with(|h| h.borrow().0.len() as i64)))
    });
    funcs.register("GetDecisionsSinceCount", Arity::Exact(2), false, |args| {
        let since = args
            .get(1)
            .and_then(Value::as_str)
            .and_then(parse_duration_days)
            .ok_or_else(|| {
                expr::EvalError::new(
                    "GetDecisionsSinceCount: second argument must be a duration like \"24h\"",
                )
            })?;
        Ok(Value::Int(HISTORY.with(|h| {
            let h = h.borrow();
            let from = h.1 - since / 1_000_000;
            h.0.iter().filter(|(c, _)| *c > from).count() as i64
        })))
    });
    funcs.register("GetActiveDecisionsCount", Arity::Exact(1), false, |_| {
        Ok(Value::Int(HISTORY.with(|h| {
            let h = h.borrow();
            h.0.iter().filter(|(_, u)| *u > h.1).count() as i64
        })))
    });
    funcs.register("GetActiveDecisionsTimeLeft", Arity::Exact(1), false, |_| {
        Ok(Value::Duration(HISTORY.with(|h| {
            let h = h.borrow();
            h.0.iter()
                .map(|(_, u)| (u - h.1).max(0))
                .max()
                .unwrap_or(0)
                .saturating_mul(1_000_000)
        })))
    });
}

impl Profiles {
    /// CrowdSec's default profiles (ban Ip and Range alerts that ask for remediation for 4h).
    pub fn default_profiles() -> Self {
        // The built-in text is known good; failing here is a programming error caught by tests.
        Self::parse(DEFAULT_PROFILES, "default profiles").unwrap_or(Self {
            list: Vec::new(),
            needs_history: false,
        })
    }

    /// Loads `profiles.yaml`, with `profiles.yaml.local` documents first when it exists.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| ProfileError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let mut text = String::new();
        let local = path.with_extension("yaml.local");
        if local.exists() {
            text.push_str(&read(&local)?);
            text.push_str("\n---\n");
        }
        text.push_str(&read(path)?);
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses multi-document profile YAML.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ProfileError> {
        let docs: Vec<Option<ProfileYaml>> =
            serde_saphyr::from_multiple(text).map_err(|e| ProfileError::Invalid {
                origin: origin.to_owned(),
                index: 0,
                msg: e.to_string(),
            })?;
        let mut funcs = Functions::new();
        expr::crowdsec::register(&mut funcs, Arc::new(expr::crowdsec::HelperContext::new()));
        history_functions(&mut funcs);
        let env = Env::new(funcs).var("Alert", FieldType::Any);
        let mut list = Vec::new();
        let mut needs_history = false;
        for (i, doc) in docs.into_iter().enumerate() {
            let Some(p) = doc else { continue };
            let index = i + 1;
            let bad = |msg: String| ProfileError::Invalid {
                origin: origin.to_owned(),
                index,
                msg,
            };
            let compile = |src: &str| {
                env.compile(src)
                    .map_err(|e| bad(format!("profile '{}': expression '{src}': {e}", p.name)))
            };
            let filters = p
                .filters
                .iter()
                .map(|f| compile(f))
                .collect::<Result<Vec<_>, _>>()?;
            let duration_expr = p.duration_expr.as_deref().map(compile).transpose()?;
            let all_src = p.filters.iter().chain(p.duration_expr.iter());
            if all_src.clone().any(|s| s.contains("Decisions")) {
                needs_history = true;
            }
            let mut decisions = Vec::new();
            for d in &p.decisions {
                let duration_ns = match &d.duration {
                    Some(s) => parse_duration_days(s).filter(|v| *v > 0).ok_or_else(|| {
                        bad(format!(
                            "profile '{}': invalid decision duration '{s}'",
                            p.name
                        ))
                    })?,
                    None => DEFAULT_DURATION_NS,
                };
                if d.kind.trim().is_empty() {
                    return Err(bad(format!(
                        "profile '{}': a decision needs a type",
                        p.name
                    )));
                }
                decisions.push(ProfileDecision {
                    kind: d.kind.clone(),
                    duration_ns,
                    scope: d.scope.as_deref().map(|s| normalize_scope(s).to_owned()),
                    origin: d
                        .origin
                        .as_ref()
                        .map_or_else(|| "crowdsec".to_owned(), |o| format!("crowdsec/{o}")),
                    simulated: d.simulated.unwrap_or(false),
                });
            }
            let on_success_break = match p.on_success.as_deref() {
                None | Some("continue") => false,
                Some("break") => true,
                Some(o) => {
                    return Err(bad(format!(
                        "profile '{}': on_success must be continue or break, not '{o}'",
                        p.name
                    )));
                }
            };
            match p.on_failure.as_deref() {
                None | Some("continue" | "break" | "apply") => {}
                Some(o) => {
                    return Err(bad(format!(
                        "profile '{}': on_failure must be continue, break or apply, not '{o}'",
                        p.name
                    )));
                }
            }
            let on_error = match p.on_error.as_deref() {
                None | Some("continue" | "ignore") => OnError::Skip,
                Some("apply") => OnError::Apply,
                Some("break") => OnError::Break,
                Some(o) => {
                    return Err(bad(format!(
                        "profile '{}': on_error must be continue, break, apply or ignore, not '{o}'",
                        p.name
                    )));
                }
            };
            list.push(Profile {
                name: p.name,
                debug: p.debug.unwrap_or(false),
                filters,
                decisions,
                duration_expr,
                on_success_break,
                on_error,
                notifications: p.notifications,
            });
        }
        if list.is_empty() {
            return Err(ProfileError::Empty(origin.to_owned()));
        }
        Ok(Self {
            list,
            needs_history,
        })
    }

    /// Whether evaluation reads decision history (load it first and pass it in).
    pub fn needs_history(&self) -> bool {
        self.needs_history
    }

    /// Runs the profiles on an alert. `history` holds `(created_at, until)` (ms) of past decisions
    /// against the alert's value (only read when [`Profiles::needs_history`]).
    pub fn evaluate(&self, alert: &Alert, history: Vec<(i64, i64)>, now_ms: i64) -> Outcome {
        HISTORY.with(|h| *h.borrow_mut() = (history, now_ms));
        let mut out = Outcome::default();
        let vars = [Value::Obj(alert)];
        for p in &self.list {
            let mut matched = false;
            let mut stop = false;
            for f in &p.filters {
                match f.run_bool(&vars) {
                    Ok(true) => {
                        matched = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(profile = %p.name, filter = f.source(), error = %e, "profile filter failed");
                        match p.on_error {
                            OnError::Skip => {}
                            OnError::Apply => {
                                matched = true;
                                break;
                            }
                            OnError::Break => {
                                stop = true;
                                break;
                            }
                        }
                    }
                }
            }
            if p.debug {
                tracing::info!(profile = %p.name, matched, scenario = %alert.scenario, "profile evaluated");
            }
            if stop {
                break;
            }
            if !matched {
                continue;
            }
            out.matched.push(p.name.clone());
            out.notifications.extend(p.notifications.iter().cloned());
            if out.decisions.is_empty() {
                let expr_duration = p.duration_expr.as_ref().and_then(|e| match e.run(&vars) {
                    Ok(v) => {
                        let text = match &v {
                            Value::Duration(d) => return Some(*d),
                            other => other.to_string(),
                        };
                        let parsed = parse_duration_days(&text).filter(|d| *d > 0);
                        if parsed.is_none() {
                            tracing::warn!(profile = %p.name, result = %text, "duration_expr did not yield a duration; using the decision's");
                        }
                        parsed
                    }
                    Err(e) => {
                        tracing::warn!(profile = %p.name, error = %e, "duration_expr failed; using the decision's duration");
                        None
                    }
                });
                for d in &p.decisions {
                    out.decisions.push(DecisionSpec {
                        kind: d.kind.clone(),
                        duration_ns: expr_duration.unwrap_or(d.duration_ns),
                        scope: d
                            .scope
                            .clone()
                            .unwrap_or_else(|| alert.source.scope.clone()),
                        value: alert.source.value.clone(),
                        origin: d.origin.clone(),
                        scenario: alert.scenario.clone(),
                        simulated: d.simulated || alert.simulated,
                    });
                }
            }
            if p.on_success_break {
                break;
            }
        }
        HISTORY.with(|h| h.borrow_mut().0.clear());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Source;

    fn alert(scope: &str, remediation: bool) -> Alert {
        Alert {
            scenario: "crowdsecurity/ssh-bf".into(),
            remediation,
            source: Source {
                scope: scope.into(),
                value: "192.0.2.7".into(),
                ..Source::default()
            },
            ..Alert::default()
        }
    }

    #[test]
    fn default_profiles_ban_ip_and_range_alerts_that_ask_for_it() {
        let p = Profiles::default_profiles();
        let o = p.evaluate(&alert("Ip", true), Vec::new(), 0);
        assert_eq!(o.decisions.len(), 1);
        assert_eq!(o.decisions[0].kind, "ban");
        assert_eq!(o.decisions[0].duration_ns, DEFAULT_DURATION_NS);
        assert_eq!(o.decisions[0].origin, "crowdsec");
        assert!(
            p.evaluate(&alert("Ip", false), Vec::new(), 0)
                .decisions
                .is_empty()
        );
        assert_eq!(
            p.evaluate(&alert("Range", true), Vec::new(), 0).matched,
            ["default_range_remediation"]
        );
    }

    #[test]
    fn repeat_offenders_get_longer_bans() {
        let p = Profiles::parse(
            "name: escalate\nfilters: [\"Alert.GetScope() == 'Ip'\"]\ndecisions: [{type: ban, duration: 1h}]\n\
             duration_expr: \"Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)\"\non_success: break\n",
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.needs_history());
        let o = p.evaluate(&alert("Ip", true), vec![(0, 1), (2, 3)], 10);
        assert_eq!(o.decisions[0].duration_ns, 12 * 3600 * 1_000_000_000);
    }

    #[test]
    fn first_match_decides_later_matches_only_notify() {
        let p = Profiles::parse(
            "name: a\nfilters: ['true']\ndecisions: [{type: captcha, duration: 1h, origin: web}]\nnotifications: [slack]\n---\n\
             name: b\nfilters: ['true']\ndecisions: [{type: ban}]\nnotifications: [mail]\n",
            "test",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = p.evaluate(&alert("Ip", true), Vec::new(), 0);
        assert_eq!(o.decisions.len(), 1);
        assert_eq!(o.decisions[0].kind, "captcha");
        assert_eq!(o.decisions[0].origin, "crowdsec/web");
        assert_eq!(o.notifications, ["slack", "mail"]);
    }

    #[test]
    fn bad_profiles_are_named() {
        let e = Profiles::parse("name: x\nfilters: ['Alert.GetScope( ==']\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.yaml") && e.contains("'x'"), "{e}");
        let e = Profiles::parse("name: x\nbogus: 1\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = Profiles::parse("name: x\non_success: stop\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("on_success"), "{e}");
        assert!(Profiles::parse("", "p.yaml").is_err());
    }
}
