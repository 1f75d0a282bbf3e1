//! swarm: many Docker Engines served as one virtual Engine.
//!
//! Layers, arrows pointing one way: [`api`] → [`manager`] → {[`scheduler`],
//! [`cluster`], [`engine`]} → [`upstream`], with [`discovery`] telling the
//! manager which engines exist. The API changes nothing itself: the
//! container lifecycle lives in [`manager`]. See `docs/architecture.md` for
//! the map, the invariants and where `docker run` is handled. Beside the
//! layers, [`ca`] is the built-in certificate authority of `swarmctl ca`
//! and `swarmctl cert`.

pub mod api;
pub mod ca;
pub mod cli;
pub mod cluster;
pub mod discovery;
pub mod engine;
pub mod ids;
pub mod manager;
pub mod scheduler;
pub mod tls;
pub mod upstream;
