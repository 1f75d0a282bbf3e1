//! Tests of `ClusterState::apply`, by concern: nodes and containers
//! observed, creates in flight (`Reserve`, `Release`, `ContainerCreated`),
//! reschedules, the usage kept command by command, and snapshots taken
//! while commands go on.

mod observe;
mod reschedule;
mod reserve;
mod snapshot;
mod usage;
