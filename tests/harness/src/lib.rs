//! swarm-harness: the test and benchmark tooling of swarm, kept out of the
//! product library. Integration tests, benches and the `swarm-bench` and
//! `hollow-engine` binaries share it.
//!
//! - [`hollow`]: hollow engines, many fake Docker Engines in one process;
//! - [`bench`]: the `swarm-bench` scenarios and their client and figures;
//! - real engines for tests: [`engines`] (`dockerd`s in their own
//!   namespaces, on slots shared across test processes) holding the
//!   [`image`] `busybox:local`, driven with the [`docker`] CLI;
//! - [`manager`]: `swarm manage` child processes; [`cluster`]: engines and a
//!   manager in front of them, with named scenarios;
//! - small tools: [`ports`], [`wait`], [`http`] probes, commands and the
//!   process tree, [`watchdog`] and its trace;
//! - [`binary`]: where the workspace's binaries were built.
//!
//! What tests use most is re-exported here: `use swarm_harness::{start_cluster, docker_ok, IMAGE}`.

pub mod bench;
pub mod cluster;
pub mod docker;
pub mod engines;
pub mod hollow;
pub mod http;
pub mod image;
pub mod manager;
pub mod ports;
mod slots;
mod sys;
pub mod wait;
pub mod watchdog;

pub use cluster::{start_cluster, Cluster, Scenario, FAST_REFRESH};
pub use docker::{
    docker, docker_cmd, docker_err, docker_in_tty, docker_ok, docker_with_stdin, info_value, timed,
};
pub use engines::{start_engines, Engine, Engines};
pub use http::http_get;
pub use image::IMAGE;
pub use manager::{start_manager, Manager};
pub use ports::free_port;
pub use wait::{wait_for, wait_ok};
pub use watchdog::{trace, watch_log, watchdog};

use std::path::{Path, PathBuf};

/// Names a directory holding the workspace's binaries, instead of the
/// target directory of the running test, bench or binary.
pub const BIN_DIR_ENV: &str = "SWARM_BIN_DIR";
/// Names the `swarm` binary itself (it wins over [`BIN_DIR_ENV`]).
pub const SWARM_BIN_ENV: &str = "SWARM_BIN";

/// The directory cargo put the running executable's sibling binaries in:
/// `target/<profile>` for a test or bench (which runs from
/// `target/<profile>/deps`) and for a binary (which runs from
/// `target/<profile>`).
pub fn profile_dir() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("locating the running executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    Ok(match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    })
}

/// The workspace binary `name` (`swarm`, `swarmctl`, `hollow-engine`,
/// `swarm-bench`): `$SWARM_BIN` for `swarm` if set, else `name` in
/// `$SWARM_BIN_DIR` if set, else `name` next to the running executable
/// (see [`profile_dir`]). An error saying how to build it if it is missing.
///
/// Integration tests of the package that owns the binary may use
/// `env!("CARGO_BIN_EXE_<name>")` instead; cargo builds it for them.
pub fn try_binary(name: &str) -> Result<PathBuf, String> {
    let path = match (name, std::env::var_os(SWARM_BIN_ENV)) {
        ("swarm", Some(path)) => PathBuf::from(path),
        _ => match std::env::var_os(BIN_DIR_ENV) {
            Some(dir) => Path::new(&dir).join(name),
            None => profile_dir()?.join(name),
        },
    };
    if path.is_file() {
        return Ok(path);
    }
    let release = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == "release");
    Err(format!(
        "the {name} binary {} is missing: build every workspace binary with \
         `cargo build --workspace --bins{}` (cargo test --workspace does it), \
         or name its directory with {BIN_DIR_ENV}{}",
        path.display(),
        if release { " --release" } else { "" },
        if name == "swarm" {
            format!(" or the binary with {SWARM_BIN_ENV}")
        } else {
            String::new()
        }
    ))
}

/// [`try_binary`] for tests: panics with its message when the binary is
/// missing.
pub fn binary(name: &str) -> PathBuf {
    try_binary(name).unwrap_or_else(|e| panic!("{e}"))
}
