//! The chaos kit (issue 22): managers in network namespaces of their own
//! under a seeded schedule of faults (kills, pauses, partitions, lossy
//! links) while clients drive a workload through them, a history of every
//! operation, and a checker of the cluster's promises over that history
//! and what the engines and managers hold once the faults healed.
//!
//! - [`net`]: hosts in network namespaces and the faults between them
//!   (partitions, one-way links, loss, delay, flapping links);
//! - [`history`]: operations, fault windows and leadership observations,
//!   recorded from many threads and saved as JSON;
//! - [`checker`]: the promises checked over a history and the state read
//!   after healing, with their evidence and the run's figures;
//! - [`run`]: the runner of `swarm-bench chaos`: the engines, managers,
//!   the workload, the nemesis and the leadership poller, then the check;
//! - [`fleet`]: the engines of a run: the hollow fleet or [`real`] engines,
//!   reached from the managers' hosts through proxies;
//! - [`settle`]: the end of a run: managers agreeing, engines still;
//! - [`vip`]: HAProxy in front of the managers;
//! - [`timeline`]: a history drawn as a PNG (latencies, outcomes per
//!   second, roles, fault windows) for a person to read.

pub mod checker;
pub mod fleet;
pub mod history;
pub mod net;
pub mod real;
pub mod run;
pub mod settle;
pub mod timeline;
pub mod vip;
