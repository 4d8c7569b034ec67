//! Walking an event through the stages, with CrowdSec's rules: a stage with no successful node
//! drops the event; `next_stage` promotes it; the last stage keeps it.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::loader::Parsers;
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
            for (nstage, node) in &self.nodes {
                if nstage != stage {
                    continue;
                }
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
