//! swarm: many Docker Engines served as one virtual Engine.
//!
//! Layers, arrows pointing one way: [`api`] → [`manager`] → {[`scheduler`],
//! [`cluster`], [`engine`]}, with [`discovery`] telling the manager which
//! engines exist. See `docs/architecture.md` for the map.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod discovery;
pub mod engine;
pub mod manager;
pub mod scheduler;
pub mod upstream;
