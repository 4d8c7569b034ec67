//! CrowdSec's expression helpers (`pkg/exprhelpers`), registered into a [`Functions`] registry.
