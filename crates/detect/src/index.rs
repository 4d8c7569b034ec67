//! Which scenarios an event can concern, without running every filter: scenarios are indexed by
//! the values their filters require of `evt.Meta.log_type` (or, failing that, `evt.Meta.service`),
//! as proven by the expression compiler. Hub scenarios almost all test `log_type`, so an sshd
//! line is offered to the handful of sshd scenarios, not to the hundreds of HTTP ones.

use std::collections::HashMap;

use parse::Event;

use crate::scenario::Scenario;

/// Meta fields tried in order; the first one a filter constrains indexes it.
const KEYS: [&str; 2] = ["log_type", "service"];

#[derive(Debug, Default)]
pub(crate) struct FilterIndex {
    /// Scenarios no key constrains: offered every event.
    always: Vec<u32>,
    /// Per key: value → scenarios.
    by_value: [HashMap<String, Vec<u32>>; KEYS.len()],
    /// Per key: whether any scenario is indexed under it (skips the lookup otherwise).
    used: [bool; KEYS.len()],
}

impl FilterIndex {
    pub(crate) fn build(list: &[Scenario]) -> Self {
        let mut idx = FilterIndex::default();
        'scenarios: for (i, sc) in list.iter().enumerate() {
            let i = i as u32;
            for (k, key) in KEYS.iter().enumerate() {
                if let Some(values) = sc.filter.required_values(0, &["Meta", key]) {
                    for v in values {
                        idx.by_value[k].entry(v).or_default().push(i);
                    }
                    idx.used[k] = true;
                    continue 'scenarios;
                }
            }
            idx.always.push(i);
        }
        idx
    }

    /// Candidate scenario indexes for `evt`, in load order, into `out`.
    pub(crate) fn candidates(&self, evt: &Event, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.always);
        for (k, key) in KEYS.iter().enumerate() {
            if !self.used[k] {
                continue;
            }
            let v = evt.meta.get(*key).map_or("", String::as_str);
            if let Some(list) = self.by_value[k].get(v) {
                out.extend_from_slice(list);
            }
        }
        if out.len() > self.always.len() {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// (indexed, always offered) counts, for logs and tests.
    pub(crate) fn coverage(&self) -> (usize, usize) {
        let indexed: std::collections::HashSet<u32> = self
            .by_value
            .iter()
            .flat_map(|m| m.values().flatten().copied())
            .collect();
        (indexed.len(), self.always.len())
    }
}
