//! Benchmarks against running managers: the library behind `swarm-bench`
//! (and the helpers `benches/failover.rs` shares with it).
//!
//! - [`client`]: HTTP to a manager or an engine, on a kept-alive connection
//!   ([`client::Client`]) or a fresh one ([`client::oneshot`]);
//! - [`stats`]: nearest-rank percentiles and markdown tables;
//! - [`process`]: child processes (logs, RSS, CPU time, clean stop), scratch
//!   directories, free ports;
//! - [`place`]: create (and start) many containers with many clients;
//! - [`query`]: latency of `GET /info` and `GET /containers/json?all=1`;
//! - [`standard`]: the whole standard scenario: a hollow fleet, managers,
//!   `place`, `query`, memory.
//!
//! Timing is measured and reported, never asserted: the targets are
//! recorded in `docs/benchmarks.md`.

pub mod client;
pub mod place;
pub mod process;
pub mod query;
pub mod reschedule;
pub mod standard;
pub mod stats;
