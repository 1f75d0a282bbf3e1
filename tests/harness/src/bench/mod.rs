//! Benchmarks against running managers: the library behind `swarm-bench`
//! (and the helpers the `failover` bench shares with it). The processes
//! they start are [`crate::process::Process`]es and
//! [`crate::manager::Manager`]s, their ports come from [`crate::ports`].
//!
//! - [`client`]: HTTP to a manager or an engine, on a kept-alive connection
//!   ([`client::Client`]) or a fresh one ([`client::oneshot`]);
//! - [`stats`]: nearest-rank percentiles and markdown tables;
//! - [`scratch`]: the run's scratch directory; [`net`]: machine-wide TCP
//!   figures;
//! - [`place`]: create (and start) many containers with many clients;
//! - [`query`]: latency of `GET /info` and `GET /containers/json?all=1`;
//! - [`standard`]: the whole standard scenario: a hollow fleet, managers,
//!   `place`, `query`, memory; [`reschedule`]: a node dies under
//!   containers with a reschedule policy; both start their processes with
//!   the steps they share (a `Rig`: fleet, managers, healthy nodes).
//!
//! Timing is measured and reported, never asserted: the targets are
//! recorded in `docs/benchmarks.md`.

pub mod client;
pub mod net;
pub mod place;
pub mod query;
pub mod reschedule;
pub(crate) mod rig;
pub mod scratch;
pub mod standard;
pub mod stats;

pub use rig::RigConfig;
