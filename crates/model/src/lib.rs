//! Shared types of Rampart, in CrowdSec's wire shape: alerts, decisions and sources as the LAPI
//! v1 API carries them, the small request/response bodies around them, scopes, IP ranges in
//! CrowdSec's integer encoding, and Go duration strings (with days).
//!
//! Every crate that speaks to or for the LAPI (agent, server, client, CLI, bouncers) uses these,
//! so a field name is spelled once. The types implement [`expr::Object`] where expressions read
//! them (profiles read `Alert`, postoverflows read `evt.Overflow.Alert`).

mod alert;
mod api;
pub mod capi;
mod decision;
mod duration;
mod ip;
mod scopes;

pub use alert::{Alert, AlertEvent, MetaItem, Source};
pub use api::{
    DeleteResponse, ErrorResponse, StreamResponse, WatcherAuthRequest, WatcherAuthResponse,
    WatcherRegistration,
};
pub use decision::Decision;
pub use duration::{format_remaining, parse_duration_days};
pub use ip::{IpRange, IpRangeError};
pub use scopes::{normalize_scope, scope};
