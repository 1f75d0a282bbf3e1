//! swarm-harness: the test and benchmark tooling of swarm, kept out of the
//! product library. Integration tests, benches and the `swarm-bench` and
//! `hollow-engine` binaries share it.
//!
//! - [`hollow`]: hollow engines, many fake Docker Engines in one process;
//! - [`mod@bench`]: the `swarm-bench` scenarios and their client and figures;
//! - real engines for tests: [`engines`] (`dockerd`s in their own
//!   namespaces, on slots shared across test processes) holding the
//!   [`image`] `busybox:local`, driven with the [`mod@docker`] CLI; a
//!   real [`etcd`] as the engines' cluster store (overlay networks);
//! - [`etcd_v3`]: a real etcd on loopback (plain, or TLS with client
//!   certificates) for swarm's `etcd://` discovery; [`zookeeper`]: a real
//!   standalone ZooKeeper for `zk://` discovery;
//! - [`process`]: child processes (log, memory, CPU time, kill, stop,
//!   start again); [`manager`]: `swarm manage` as one, for tests, benches
//!   and `swarm-bench`; [`cluster`]: engines and a manager in front of
//!   them, with named scenarios;
//! - [`members`]: `swarmctl members --format json`, parsed;
//! - [`registry`]: a real image registry (Distribution), plain HTTP;
//!   [`proxy`]: a throttled TCP proxy that can be cut (a registry going
//!   down mid-pull);
//! - [`pki`]: a CA and the certificates of TLS tests (good, expired,
//!   another CA's), and TLS probes;
//! - [`chaos`]: the chaos kit; [`chaos::net`]: hosts in network
//!   namespaces of their own and faults between them (partitions, one-way
//!   drops, loss, flaps, delay, cut clients);
//! - small tools: [`ports`], [`wait`], [`http`] probes, commands and the
//!   process tree, [`mod@watchdog`] and its trace;
//! - [`mod@binary`]: where the workspace's binaries were built.
//!
//! What tests use most is re-exported here:
//! `use swarm_harness::{start_cluster, docker_ok, IMAGE}`.

#![warn(missing_docs)]

pub mod bench;
pub mod binary;
pub mod chaos;
pub mod cluster;
pub mod docker;
pub mod engines;
pub mod etcd;
pub mod etcd_v3;
pub mod hollow;
pub mod http;
pub mod image;
pub mod join;
pub mod manager;
pub mod members;
pub mod pki;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod registry;
pub mod rng;
mod slots;
mod sys;
pub mod wait;
pub mod watchdog;
pub mod zookeeper;

pub use binary::{binary, try_binary};
pub use cluster::{start_cluster, start_cluster_with, Cluster, Scenario, FAST_REFRESH};
pub use docker::{
    compose_cmd, compose_down, docker, docker_cmd, docker_err, docker_in_tty, docker_ok,
    docker_with_stdin, info_value, output_ok, output_with_stdin, run_bench, timed,
};
pub use engines::{start_engines, start_engines_with, Engine, EngineOptions, EngineTls, Engines};
pub use etcd::Etcd;
pub use etcd_v3::EtcdV3;
pub use http::{http_get, http_request};
pub use image::IMAGE;
pub use manager::{start_manager, start_manager_tls, Manager, ManagerConfig};
pub use pki::{client_config, tls_flags, tls_request, Pki};
pub use ports::free_port;
pub use wait::{wait_for, wait_ok};
pub use watchdog::{trace, watch_log, watchdog};
pub use zookeeper::ZooKeeper;
