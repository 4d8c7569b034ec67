//! Decisions written straight from the index to JSON bytes: the hot responses (`?ip=` lookups,
//! stream snapshots of a million decisions) build no intermediate objects.

use crate::index::{Entry, Inner};

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
    scratch: &mut String,
) {
    out.extend_from_slice(b"{\"duration\":");
    scratch.clear();
    scratch.push_str(&model::format_remaining(
        (e.until - now_ms).saturating_mul(1_000_000),
    ));
    push_str(out, scratch);
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(e.id.to_string().as_bytes());
    out.extend_from_slice(b",\"origin\":");
    push_str(out, ix.sym(e.origin));
    out.extend_from_slice(b",\"scenario\":");
    push_str(out, ix.sym(e.scenario));
    out.extend_from_slice(b",\"scope\":");
    push_str(out, ix.sym(e.scope));
    if e.simulated {
        out.extend_from_slice(b",\"simulated\":true");
    }
    out.extend_from_slice(b",\"type\":");
    push_str(out, ix.sym(e.kind));
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
    scratch.clear();
    e.target.write_value(scratch);
    push_str(out, scratch);
    out.push(b'}');
}

/// A JSON array of decisions (`null` when empty, as CrowdSec answers `GET /v1/decisions`).
pub(crate) fn array_or_null(ids: &[i64], ix: &Inner, now_ms: i64) -> Vec<u8> {
    if ids.is_empty() {
        return b"null".to_vec();
    }
    let mut out = Vec::with_capacity(ids.len() * 180);
    let mut scratch = String::new();
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
