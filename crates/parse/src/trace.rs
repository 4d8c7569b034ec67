//! What `rampart explain` shows: each node an event went through, its outcome and what it changed.

use std::collections::BTreeMap;

use crate::event::Event;

/// One node's outcome.
#[derive(Debug, Clone)]
pub struct TraceStep {
    /// Node name.
    pub node: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Why it failed, when it did.
    pub reason: Option<&'static str>,
    /// Snapshot of the event's string fields after the node.
    pub fields: BTreeMap<String, String>,
}

fn snapshot(evt: &Event) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in &evt.parsed {
        m.insert(format!("Parsed.{k}"), v.clone());
    }
    for (k, v) in &evt.meta {
        m.insert(format!("Meta.{k}"), v.clone());
    }
    for (k, v) in &evt.enriched {
        m.insert(format!("Enriched.{k}"), v.clone());
    }
    if !evt.str_time.is_empty() {
        m.insert("StrTime".into(), evt.str_time.clone());
    }
    if !evt.marshaled_time.is_empty() {
        m.insert("MarshaledTime".into(), evt.marshaled_time.clone());
    }
    if evt.whitelisted {
        m.insert(
            "Whitelisted".into(),
            format!("true ({})", evt.whitelist_reason),
        );
    }
    m
}

impl TraceStep {
    pub(crate) fn filter_failed(node: &str, evt: &Event) -> Self {
        TraceStep {
            node: node.into(),
            success: false,
            reason: Some("filter"),
            fields: snapshot(evt),
        }
    }
    pub(crate) fn failed(node: &str, evt: &Event) -> Self {
        TraceStep {
            node: node.into(),
            success: false,
            reason: Some("grok or children"),
            fields: snapshot(evt),
        }
    }
    pub(crate) fn succeeded(node: &str, evt: &Event) -> Self {
        TraceStep {
            node: node.into(),
            success: true,
            reason: None,
            fields: snapshot(evt),
        }
    }
}

/// The path of one event through the stages.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// (stage, top-level node) → the steps recorded while that node ran (children included).
    pub stages: Vec<(String, String, Vec<TraceStep>)>,
    /// Where the event stopped, when it was dropped.
    pub dropped_at: Option<String>,
}

impl Trace {
    pub(crate) fn push(&mut self, step: TraceStep) {
        if let Some(last) = self.stages.last_mut() {
            last.2.push(step);
        }
    }
    pub(crate) fn begin(&mut self, stage: &str, node: &str) {
        self.stages
            .push((stage.to_owned(), node.to_owned(), Vec::new()));
    }

    /// Renders the trace like `cscli explain`: per stage, each parser with ✓/✗ and the fields it
    /// added or changed. Parsers whose filter rejected the line are left out unless `all`: with
    /// a whole hub loaded they are most of the list and hide the ones that matter.
    pub fn render(&self, all: bool) -> String {
        let mut out = String::new();
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut cur_stage = "";
        for (stage, node, steps) in &self.stages {
            if stage != cur_stage {
                out.push_str(&format!("├ {stage}\n"));
                cur_stage = stage;
            }
            let top = steps.last();
            if !all && steps.len() == 1 && top.is_some_and(|s| s.reason == Some("filter")) {
                continue;
            }
            let ok = top.is_some_and(|s| s.success && s.node == *node);
            out.push_str(&format!("│ {} {node}\n", if ok { "├ ✓" } else { "├ ✗" }));
            if let Some(top) = top
                && ok
            {
                for (k, v) in &top.fields {
                    if prev.get(k) != Some(v) {
                        let verb = if prev.contains_key(k) { "~" } else { "+" };
                        out.push_str(&format!("│ │   {verb} {k} = {v}\n"));
                    }
                }
                prev = top.fields.clone();
            }
        }
        match &self.dropped_at {
            Some(stage) => out.push_str(&format!("└ dropped: no parser succeeded in {stage}\n")),
            None => out.push_str("└ parsed: the event goes to the scenarios\n"),
        }
        out
    }
}
