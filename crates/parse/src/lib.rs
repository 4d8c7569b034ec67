//! The parsing pipeline: raw lines become events exactly as CrowdSec's parsers make them.
//!
//! Main types: [`Event`] (with its expression view, CrowdSec's field names), [`Ctx`] (grok
//! library, expression environment, helpers, enrichers), [`Parsers`] (compiled stages of nodes
//! loaded from CrowdSec parser YAML, unchanged) and [`Trace`] (what `rampart explain` prints).
//!
//! This crate knows nothing of buckets, alerts or the LAPI: its output is a parsed [`Event`].

pub mod config;
pub mod enrich;
mod error;
mod event;
mod loader;
mod node;
mod pipeline;
mod trace;

pub use error::ParseError;
pub use event::{EVENT_TYPE, Event, EventType, ExpectMode, LINE_TYPE, Line, Unmarshaled};
pub use loader::{Ctx, ParserFile, Parsers};
pub use node::Node;
pub use pipeline::Dump;
pub use trace::{Trace, TraceStep};
