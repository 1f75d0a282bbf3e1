//! Tests of `ClusterState::apply`, by concern: nodes and containers
//! observed, creates in flight (`Reserve`, `Release`, `ContainerCreated`),
//! reschedules, and the usage kept command by command.

mod observe;
mod reschedule;
mod reserve;
mod usage;
