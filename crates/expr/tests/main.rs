//! Integration tests of the expression language: data-driven semantics cases and the CrowdSec hub
//! conformance walk.

#![allow(clippy::unwrap_used)]

mod env;
mod hub;
mod semantics;
