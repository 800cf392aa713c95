//! Shared test support.

pub mod linearizability;
