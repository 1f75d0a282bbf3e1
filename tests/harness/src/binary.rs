//! Where the workspace's binaries are: one locator for tests, benches and
//! `swarm-bench`. Integration tests only get `CARGO_BIN_EXE_<name>` for
//! the binaries of their own package, and a bench or `swarm-bench` for
//! none, so everything else finds `swarm`, `swarmctl`, `hollow-engine` and
//! `swarm-bench` in the target directory the running executable was built
//! in. `cargo test --workspace` builds every binary before the tests run;
//! `cargo bench` does not build other packages' binaries, so benches say
//! how to build what is missing.

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
