//! Parser nodes: compiled from YAML once, then run per event with CrowdSec's success rules.

use std::net::IpAddr;

use expr::{Program, Value};
use ipnet::IpNet;

use crate::config::{NodeConfig, StaticConfig};
use crate::error::ParseError;
use crate::event::Event;
use crate::loader::Ctx;
use crate::trace::{Trace, TraceStep};

/// Where a grok pattern reads its input.
#[derive(Debug)]
enum GrokInput {
    /// A field path (`Line.Raw`, or a key of Parsed).
    Path(String),
    /// An expression's string result.
    Expr(Program),
}

#[derive(Debug)]
struct GrokStep {
    pattern: grok::Grok,
    input: GrokInput,
    statics: Vec<Static>,
}

#[derive(Debug)]
enum Target {
    Meta(String),
    Parsed(String),
    Enriched(String),
    Path(String),
    Method(String),
}

#[derive(Debug)]
enum Source {
    Value(String),
    Expr(Program),
}

#[derive(Debug)]
pub(crate) struct Static {
    target: Target,
    source: Source,
}

#[derive(Debug, Default)]
struct Whitelist {
    reason: String,
    ips: Vec<IpAddr>,
    nets: Vec<IpNet>,
    exprs: Vec<Program>,
}

#[derive(Debug)]
struct Stash {
    name: String,
    key: Program,
    value: Program,
}

/// A compiled parser node.
#[derive(Debug)]
pub struct Node {
    /// Name, used in traces, metrics and hub-test results.
    pub name: String,
    pub(crate) next_stage: bool,
    filter: Option<Program>,
    grok: Option<GrokStep>,
    whitelist: Option<Whitelist>,
    stash: Vec<Stash>,
    children: Vec<Node>,
    statics: Vec<Static>,
}

fn value_to_static_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Node {
    /// The node's filter, if any (for indexing nodes by the facts their filters require).
    pub(crate) fn filter(&self) -> Option<&Program> {
        self.filter.as_ref()
    }

    /// Compiles a node; `where_` names the file for errors.
    pub fn compile(
        cfg: &NodeConfig,
        ctx: &mut Ctx,
        where_: &str,
        parent: Option<&str>,
    ) -> Result<Node, ParseError> {
        let name = cfg
            .name
            .clone()
            .or_else(|| parent.map(|p| format!("child-{p}")))
            .unwrap_or_default();
        let at = |field: &str| format!("{where_}: node {name:?}: {field}");
        for (pname, def) in &cfg.pattern_syntax.0 {
            ctx.add_pattern(pname, def).map_err(|e| ParseError::Grok {
                at: at("pattern_syntax"),
                source: e,
            })?;
        }
        let filter = match &cfg.filter {
            Some(f) if !f.trim().is_empty() => Some(ctx.compile_expr(f, &at("filter"))?),
            _ => None,
        };
        let next_stage = match cfg.onsuccess.as_deref() {
            None | Some("") | Some("continue") => false,
            Some("next_stage") => true,
            Some(other) => {
                return Err(ParseError::Invalid {
                    at: at("onsuccess"),
                    message: format!("unknown value {other:?}, expected continue or next_stage"),
                });
            }
        };
        let grok = match &cfg.grok {
            None => None,
            Some(g) => {
                let pattern = match (&g.pattern, &g.name) {
                    (Some(p), _) if !p.is_empty() => ctx.compile_grok(p),
                    (_, Some(n)) if !n.is_empty() => ctx.compile_grok(&format!("%{{{n}}}")),
                    _ => {
                        return Err(ParseError::Invalid {
                            at: at("grok"),
                            message: "needs a pattern or a name".into(),
                        });
                    }
                }
                .map_err(|e| ParseError::Grok {
                    at: at("grok"),
                    source: e,
                })?;
                let input = match (&g.expression, &g.apply_on) {
                    (Some(e), _) if !e.is_empty() => {
                        GrokInput::Expr(ctx.compile_expr(e, &at("grok.expression"))?)
                    }
                    (_, Some(p)) if !p.is_empty() => GrokInput::Path(p.clone()),
                    _ => {
                        return Err(ParseError::Invalid {
                            at: at("grok"),
                            message: "needs apply_on or expression".into(),
                        });
                    }
                };
                let statics = compile_statics(&g.statics, ctx, &at("grok.statics"))?;
                Some(GrokStep {
                    pattern,
                    input,
                    statics,
                })
            }
        };
        let whitelist = match &cfg.whitelist {
            None => None,
            Some(w) => {
                let mut wl = Whitelist {
                    reason: w.reason.clone(),
                    ..Default::default()
                };
                for ip in &w.ip {
                    wl.ips.push(ip.parse().map_err(|_| ParseError::Invalid {
                        at: at("whitelist.ip"),
                        message: format!("{ip:?} is not an IP address"),
                    })?);
                }
                for c in &w.cidr {
                    wl.nets.push(c.parse().map_err(|_| ParseError::Invalid {
                        at: at("whitelist.cidr"),
                        message: format!("{c:?} is not a CIDR range"),
                    })?);
                }
                for e in &w.expression {
                    wl.exprs
                        .push(ctx.compile_expr(e, &at("whitelist.expression"))?);
                }
                Some(wl)
            }
        };
        let mut stash = Vec::new();
        for s in &cfg.stash {
            let ttl = expr::time::parse_duration(&s.ttl).ok_or_else(|| ParseError::Invalid {
                at: at("stash.ttl"),
                message: format!("{:?} is not a duration", s.ttl),
            })?;
            ctx.create_stash(&s.name, s.size.unwrap_or(100), ttl);
            stash.push(Stash {
                name: s.name.clone(),
                key: ctx.compile_expr(&s.key, &at("stash.key"))?,
                value: ctx.compile_expr(&s.value, &at("stash.value"))?,
            });
        }
        let mut children = Vec::new();
        for c in &cfg.nodes {
            children.push(Node::compile(c, ctx, where_, Some(&name))?);
        }
        let statics = compile_statics(&cfg.statics, ctx, &at("statics"))?;
        if grok.is_none()
            && children.is_empty()
            && statics.is_empty()
            && whitelist.is_none()
            && stash.is_empty()
        {
            return Err(ParseError::Invalid {
                at: at("node"),
                message: "node is empty: it needs grok, nodes, statics or whitelist".into(),
            });
        }
        Ok(Node {
            name,
            next_stage,
            filter,
            grok,
            whitelist,
            stash,
            children,
            statics,
        })
    }

    /// Applies only the node's statics (used for hub tests' `override_statics`).
    pub fn apply_statics_only(&self, evt: &mut Event, ctx: &Ctx) {
        apply_statics(&self.statics, evt, ctx);
    }

    /// Runs the node on an event; returns whether it succeeded. `stages`/`stage_idx` let a
    /// `next_stage` success promote the event.
    pub(crate) fn process(
        &self,
        evt: &mut Event,
        ctx: &Ctx,
        stages: &[String],
        trace: &mut Option<&mut Trace>,
    ) -> bool {
        if let Some(f) = &self.filter {
            let ok = run_bool(f, evt, ctx);
            if !ok {
                if let Some(t) = trace.as_deref_mut() {
                    t.push(TraceStep::filter_failed(&self.name, evt));
                }
                return false;
            }
        }
        let mut state = true;
        let whitelisted = self.whitelist.as_ref().is_some_and(|w| w.matches(evt, ctx));
        if whitelisted && !evt.whitelisted {
            evt.whitelisted = true;
            evt.whitelist_reason = self
                .whitelist
                .as_ref()
                .map(|w| w.reason.clone())
                .unwrap_or_default();
        }
        let mut grok_ok = false;
        if let Some(g) = &self.grok {
            let input: Option<String> = match &g.input {
                GrokInput::Path(p) => evt.get_path(p).map(str::to_owned),
                GrokInput::Expr(e) => match run(e, evt, ctx) {
                    Some(Value::Int(i)) => Some(i.to_string()),
                    Some(v) => v.as_str().map(str::to_owned),
                    None => None,
                },
            };
            let captured = input.and_then(|s| ctx.grok_match(&g.pattern, &s));
            match captured {
                Some(fields) if !fields.is_empty() => {
                    grok_ok = true;
                    for (k, v) in fields {
                        evt.parsed.insert(k, v);
                    }
                    apply_statics(&g.statics, evt, ctx);
                }
                _ => state = false,
            }
        }
        if grok_ok || self.grok.is_none() {
            for s in &self.stash {
                let key = run(&s.key, evt, ctx).map(|v| v.into_owned());
                let value = run(&s.value, evt, ctx).map(|v| v.into_owned());
                if let (Some(k), Some(v)) = (key, value) {
                    ctx.stash_set(&s.name, &k.to_string(), &v.to_string());
                }
            }
        }
        for child in &self.children {
            if child.process(evt, ctx, stages, trace) {
                state = true;
                if self.next_stage {
                    break;
                }
            } else if !grok_ok {
                state = false;
            }
        }
        if !state {
            if let Some(t) = trace.as_deref_mut() {
                t.push(TraceStep::failed(&self.name, evt));
            }
            return false;
        }
        if !self.statics.is_empty() && (whitelisted || self.whitelist.is_none()) {
            apply_statics(&self.statics, evt, ctx);
        }
        if self.next_stage
            && let Some(i) = stages.iter().position(|s| *s == evt.stage)
            && i + 1 < stages.len()
        {
            evt.stage = stages[i + 1].clone();
        }
        if let Some(t) = trace.as_deref_mut() {
            t.push(TraceStep::succeeded(&self.name, evt));
        }
        true
    }
}

fn compile_statics(
    list: &[StaticConfig],
    ctx: &mut Ctx,
    at: &str,
) -> Result<Vec<Static>, ParseError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let target = match (&s.meta, &s.parsed, &s.enriched, &s.target, &s.method) {
            (Some(k), ..) => Target::Meta(k.clone()),
            (_, Some(k), ..) => Target::Parsed(k.clone()),
            (_, _, Some(k), ..) => Target::Enriched(k.clone()),
            (_, _, _, Some(p), _) => Target::Path(p.clone()),
            (_, _, _, _, Some(m)) => {
                if !ctx.has_method(m) {
                    return Err(ParseError::Invalid {
                        at,
                        message: format!("unknown enrichment method {m:?}"),
                    });
                }
                Target::Method(m.clone())
            }
            _ => {
                return Err(ParseError::Invalid {
                    at,
                    message: "a static needs meta, parsed, enriched, target or method".into(),
                });
            }
        };
        let source = match (&s.value, &s.expression) {
            (Some(v), _) => Source::Value(value_to_static_string(v)),
            (_, Some(e)) => Source::Expr(ctx.compile_expr(e, &at)?),
            // `method: UnmarshalJSON` and friends may have no source.
            _ if matches!(target, Target::Method(_)) => Source::Value(String::new()),
            _ => {
                return Err(ParseError::Invalid {
                    at,
                    message: "a static needs value or expression".into(),
                });
            }
        };
        out.push(Static { target, source });
    }
    Ok(out)
}

/// Expression results as statics store them: strings as is, ints in decimal, floats with `%f`.
fn static_string(v: &Value<'_>) -> Option<String> {
    match v {
        Value::Nil => None,
        Value::Str(s) => Some((*s).to_owned()),
        Value::String(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(format!("{f:.6}")),
        Value::Bool(b) => Some(b.to_string()),
        Value::Time(_) | Value::Duration(_) => Some(v.to_string()),
        _ => None,
    }
}

pub(crate) fn apply_statics(statics: &[Static], evt: &mut Event, ctx: &Ctx) {
    for s in statics {
        let value = match &s.source {
            Source::Value(v) => Some(v.clone()),
            Source::Expr(p) => run(p, evt, ctx).and_then(|v| static_string(&v)),
        };
        let Some(value) = value else { continue };
        if let Target::Method(m) = &s.target {
            // ParseDate falls back to "now" on an empty input; other methods skip it.
            if value.is_empty() && m != "ParseDate" {
                continue;
            }
            ctx.enrich(m, &value, evt);
            continue;
        }
        if value.is_empty() {
            continue;
        }
        match &s.target {
            Target::Meta(k) => {
                evt.meta.insert(k.clone(), value);
            }
            Target::Parsed(k) => {
                evt.parsed.insert(k.clone(), value);
            }
            Target::Enriched(k) => {
                evt.enriched.insert(k.clone(), value);
            }
            Target::Path(p) => {
                evt.set_path(p, value);
            }
            Target::Method(_) => {}
        }
    }
}

/// Runs an expression on the event; run-time errors count as "no value", as in CrowdSec.
fn run<'e>(p: &Program, evt: &'e Event, ctx: &Ctx) -> Option<Value<'e>> {
    let r = p.run(&[Value::Obj(evt)]);
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            ctx.runtime_error(p.source(), &e.message);
            None
        }
    }
}

fn run_bool(p: &Program, evt: &mut Event, ctx: &Ctx) -> bool {
    let ok = matches!(run(p, evt, ctx), Some(Value::Bool(true)));
    evt.apply_pending();
    ok
}

impl Whitelist {
    fn matches(&self, evt: &mut Event, ctx: &Ctx) -> bool {
        if !self.ips.is_empty() || !self.nets.is_empty() {
            let sources = evt.ip_sources();
            for s in &sources {
                if let Ok(ip) = s.parse::<IpAddr>()
                    && (self.ips.contains(&ip) || self.nets.iter().any(|n| n.contains(&ip)))
                {
                    return true;
                }
            }
        }
        self.exprs.iter().any(|e| run_bool(e, evt, ctx))
    }
}
