//! The bouncer against a real LAPI, in network namespaces, checked with real packets.
//!
//! Needs root, `ip`, `ping` and the mode's tools (`nft`; `ipset`, `iptables`); without them each
//! test prints `skipped: ...` on stderr, and fails under `CI=true`.

#![allow(clippy::unwrap_used)]

mod enforce;
mod fake;
mod lab;
mod lifecycle;
