//! Table-driven tests of placement over synthetic cluster states, built only
//! through `Command`s and `apply()`, plus property tests of `place()` and of
//! the `Reserve` re-check.
//!
//! Most tables state the *set* of nodes a container may land on: placement
//! runs with the `random` strategy over many seeds and the nodes it picks are
//! compared with the row (`"ERR: text"` rows expect `Unschedulable` with that
//! text in its message).

mod fixtures;
mod ports;
mod properties;
mod resources;
mod rules;
mod strategies;
