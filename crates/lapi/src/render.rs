//! Decisions written straight from the index to JSON bytes: the hot responses (`?ip=` lookups,
//! stream snapshots of a million decisions) build no intermediate objects.

use crate::index::{Entry, Inner};

/// Reused buffers for rendering many decisions.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    value: String,
    dur_key: i64,
    dur: String,
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, without building a Value.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends one decision as CrowdSec's bouncer API shows it (keys in alphabetical order,
/// `duration` = time left, no `until`).
pub(crate) fn decision(
    out: &mut Vec<u8>,
    e: &Entry,
    ix: &Inner,
    now_ms: i64,
    scratch: &mut Scratch,
) {
    use std::io::Write;
    out.extend_from_slice(b"{\"duration\":");
    // Decisions loaded together end together: the time-left text is reused while it is the same.
    let left_ns = (e.until - now_ms).saturating_mul(1_000_000);
    // Same rounding as `format_remaining` (half away from zero), so one key is one text.
    let half = 500_000_000;
    let key = if left_ns >= 0 {
        left_ns.saturating_add(half) / 1_000_000_000
    } else {
        -(left_ns.saturating_neg().saturating_add(half) / 1_000_000_000)
    };
    if key != scratch.dur_key || scratch.dur.is_empty() {
        scratch.dur_key = key;
        scratch.dur = model::format_remaining(left_ns);
    }
    out.push(b'"');
    out.extend_from_slice(scratch.dur.as_bytes());
    out.push(b'"');
    out.extend_from_slice(b",\"id\":");
    let _ = write!(out, "{}", e.id);
    out.extend_from_slice(b",\"origin\":");
    out.extend_from_slice(ix.sym_json(e.origin).as_bytes());
    out.extend_from_slice(b",\"scenario\":");
    out.extend_from_slice(ix.sym_json(e.scenario).as_bytes());
    out.extend_from_slice(b",\"scope\":");
    out.extend_from_slice(ix.sym_json(e.scope).as_bytes());
    if e.simulated {
        out.extend_from_slice(b",\"simulated\":true");
    }
    out.extend_from_slice(b",\"type\":");
    out.extend_from_slice(ix.sym_json(e.kind).as_bytes());
    if e.uuid != 0 {
        out.extend_from_slice(b",\"uuid\":\"");
        let mut buf = [0u8; 36];
        out.extend_from_slice(
            uuid::Uuid::from_u128(e.uuid)
                .hyphenated()
                .encode_lower(&mut buf)
                .as_bytes(),
        );
        out.push(b'"');
    }
    out.extend_from_slice(b",\"value\":");
    scratch.value.clear();
    e.target.write_value(&mut scratch.value);
    push_str(out, &scratch.value);
    out.push(b'}');
}

/// A JSON array of decisions (`null` when empty, as CrowdSec answers `GET /v1/decisions`).
pub(crate) fn array_or_null(ids: &[i64], ix: &Inner, now_ms: i64) -> Vec<u8> {
    if ids.is_empty() {
        return b"null".to_vec();
    }
    let mut out = Vec::with_capacity(ids.len() * 180);
    let mut scratch = Scratch::default();
    out.push(b'[');
    let mut first = true;
    for id in ids {
        let Some(e) = ix.get(*id) else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        decision(&mut out, e, ix, now_ms, &mut scratch);
    }
    out.push(b']');
    out
}
