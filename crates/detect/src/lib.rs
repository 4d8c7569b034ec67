//! Detection: CrowdSec scenarios (leaky buckets) over parsed events.
//!
//! [`Scenarios::load`] compiles scenario YAML unchanged; a [`Detector`] holds the live bucket
//! instances and turns poured events into [`Overflow`]s carrying CrowdSec-shaped [`Alert`]s.
//! Bucket clocks follow event timestamps in time-machine mode (replays, hub tests) and the wall
//! clock in live mode. State can be dumped and restored so a restart does not reset counts.
//!
//! The crate reads [`parse::Event`]s and knows nothing of acquisition or the LAPI.

mod config;
mod engine;
mod error;
mod index;
mod limiter;
mod overflow;
mod scenario;
mod shard;
mod state;

pub use config::{BayesianCondition, ScenarioConfig, ScopeConfig};
pub use engine::{Detector, Stats, overflow_event, postoverflow};
pub use error::DetectError;
pub use model::{Alert, AlertEvent, MetaItem, Source};
pub use overflow::{Overflow, Sources};
pub use scenario::{BucketType, Routed, Scenario, ScenarioFile, Scenarios};
pub use shard::{ShardedDetector, merge_stats};
pub use state::StateError;
