//! Walking an event through the stages, with CrowdSec's rules: a stage with no successful node
//! drops the event; `next_stage` promotes it; the last stage keeps it.

use std::collections::BTreeMap;

use std::collections::HashMap;

use crate::event::Event;
use crate::loader::Parsers;
use crate::node::Node;
use crate::trace::Trace;

/// Per-node outcomes recorded for hub tests: stage → node name → one entry per event that node
/// ran on (success flag and the event right after the node).
pub type Dump = BTreeMap<String, BTreeMap<String, Vec<(bool, Event)>>>;

impl Parsers {
    /// Parses an event in place; returns whether it survived all stages (`evt.process`).
    pub fn parse(&self, evt: &mut Event) -> bool {
        self.parse_with(evt, None, None)
    }

    /// Parses and records what `rampart explain` shows.
    pub fn parse_traced(&self, evt: &mut Event, trace: &mut Trace) -> bool {
        self.parse_with(evt, None, Some(trace))
    }

    /// Parses and records every node's outcome (hub tests).
    pub fn parse_dumped(&self, evt: &mut Event, dump: &mut Dump) -> bool {
        self.parse_with(evt, Some(dump), None)
    }

    fn parse_with(
        &self,
        evt: &mut Event,
        mut dump: Option<&mut Dump>,
        mut trace: Option<&mut Trace>,
    ) -> bool {
        if evt.stage.is_empty()
            && let Some(first) = self.stages.first()
        {
            evt.stage = first.clone();
        }
        for (si, stage) in self.stages.iter().enumerate() {
            if let Some(d) = dump.as_deref_mut() {
                d.entry(stage.clone()).or_default();
            }
            let cur = self.stages.iter().position(|s| *s == evt.stage);
            if cur.is_some_and(|c| c > si) {
                continue;
            }
            if evt.stage != *stage {
                evt.process = false;
                if let Some(t) = trace.as_deref_mut() {
                    t.dropped_at = Some(stage.clone());
                }
                return false;
            }
            let mut stage_ok = false;
            // Hub tests and explain record every node tried, so they walk the whole stage; the
            // hot path only tries nodes whose filter can accept this event.
            let walk_all = dump.is_some() || trace.is_some();
            let route = self.routes.get(si);
            let mut order: Vec<usize> = Vec::new();
            let mut keys = RouteSnapshot::default();
            match route {
                Some(r) if walk_all => order.extend_from_slice(&r.all),
                Some(r) => {
                    r.candidates(evt, &mut order);
                    keys = RouteSnapshot::of(evt);
                }
                None => {}
            }
            let mut pos = 0;
            while let Some(&ni) = order.get(pos) {
                pos += 1;
                let Some((_, node)) = self.nodes.get(ni) else {
                    continue;
                };
                if let Some(t) = trace.as_deref_mut() {
                    t.begin(stage, &node.name);
                }
                let mut tr = trace.as_deref_mut();
                let ok = node.process(evt, &self.ctx, &self.stages, &mut tr);
                if let Some(d) = dump.as_deref_mut() {
                    d.entry(stage.clone())
                        .or_default()
                        .entry(node.name.clone())
                        .or_default()
                        .push((ok, evt.clone()));
                }
                stage_ok |= ok;
                if ok && node.next_stage {
                    break;
                }
                if evt.stage != *stage {
                    break;
                }
                // A node may rewrite the facts the index used (a static setting
                // `Parsed.program`): the rest of the stage is then re-selected.
                if !walk_all
                    && let Some(r) = route
                    && !keys.matches(evt)
                {
                    keys = RouteSnapshot::of(evt);
                    let mut rest = Vec::new();
                    r.candidates(evt, &mut rest);
                    rest.retain(|&n| n > ni);
                    order = rest;
                    pos = 0;
                }
            }
            if !stage_ok {
                evt.process = false;
                if let Some(t) = trace.as_deref_mut() {
                    t.dropped_at = Some(stage.clone());
                }
                return false;
            }
        }
        evt.process = true;
        true
    }
}

/// Event facts that index a stage's nodes, tried in order: a node is indexed under the first
/// one its filter provably requires (`evt.Parsed.program == 'sshd'`,
/// `evt.Line.Labels.type == 'nginx'`).
const ROUTE_KEYS: [&[&str]; 2] = [&["Parsed", "program"], &["Line", "Labels", "type"]];

fn route_value(evt: &Event, key: usize) -> &str {
    let map = if key == 0 {
        &evt.parsed
    } else {
        &evt.line.labels
    };
    let field = if key == 0 { "program" } else { "type" };
    map.get(field).map_or("", String::as_str)
}

/// The values of the route keys when a stage's candidates were chosen.
#[derive(Debug, Default)]
struct RouteSnapshot([Option<String>; ROUTE_KEYS.len()]);

impl RouteSnapshot {
    fn of(evt: &Event) -> Self {
        RouteSnapshot(std::array::from_fn(|k| {
            Some(route_value(evt, k).to_owned())
        }))
    }

    fn matches(&self, evt: &Event) -> bool {
        self.0
            .iter()
            .enumerate()
            .all(|(k, v)| v.as_deref() == Some(route_value(evt, k)))
    }
}

/// The nodes of one stage, indexed by what their filters require.
#[derive(Debug, Default)]
pub(crate) struct StageRoute {
    /// Every node of the stage, in load order.
    pub(crate) all: Vec<usize>,
    always: Vec<usize>,
    by_value: [HashMap<String, Vec<usize>>; ROUTE_KEYS.len()],
}

impl StageRoute {
    pub(crate) fn build(stage: &str, nodes: &[(String, Node)]) -> Self {
        let mut r = StageRoute::default();
        'nodes: for (i, (st, node)) in nodes.iter().enumerate() {
            if st != stage {
                continue;
            }
            r.all.push(i);
            if let Some(f) = node.filter() {
                for (k, path) in ROUTE_KEYS.iter().enumerate() {
                    if let Some(values) = f.required_values(0, path) {
                        for v in values {
                            r.by_value[k].entry(v).or_default().push(i);
                        }
                        continue 'nodes;
                    }
                }
            }
            r.always.push(i);
        }
        r
    }

    /// Nodes that may accept `evt`, in load order.
    pub(crate) fn candidates(&self, evt: &Event, out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.always);
        for k in 0..ROUTE_KEYS.len() {
            if let Some(list) = self.by_value[k].get(route_value(evt, k)) {
                out.extend_from_slice(list);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

impl Parsers {
    /// Per stage: (nodes, nodes every event is offered because no filter fact indexes them).
    pub fn route_coverage(&self) -> Vec<(String, usize, usize)> {
        self.stages
            .iter()
            .zip(&self.routes)
            .map(|(s, r)| (s.clone(), r.all.len(), r.always.len()))
            .collect()
    }
}
