//! The image tests and benches run, `busybox:local`: a `docker load`
//! tarball built from the host's /bin/busybox (Debian's busybox-static),
//! with no registry involved (docs/architecture.md, "Testing"). Every test engine loads
//! it; the `failover` bench loads it into the local engine when missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::sys::{run_checked, run_with_input};

/// Name (and tag) of the image every started engine holds.
pub const IMAGE: &str = "busybox:local";
/// Directory caching the busybox:local image tarball across test processes.
const CACHE_DIR: &str = "/tmp/swarm-test-cache";

/// A `docker load` tarball of busybox:local, built once per process and
/// deterministic (fixed mtimes and creation date), so every engine — and every
/// test run — gets the same image ID, as if it had been pulled.
///
/// The tarball is also cached on disk (keyed by /bin/busybox's size and
/// mtime), so later test processes skip the build. An error if
/// /bin/busybox is missing or a build step fails.
pub fn busybox_image_tar() -> Result<Arc<Vec<u8>>, String> {
    static TAR: OnceLock<Result<Arc<Vec<u8>>, String>> = OnceLock::new();
    TAR.get_or_init(|| {
        let cache = busybox_cache_path();
        if let Some(bytes) = cache.as_ref().and_then(|p| fs::read(p).ok()) {
            return Ok(Arc::new(bytes));
        }
        let bytes = build_busybox_image()?;
        if let Some(p) = cache {
            // Write atomically: other processes may read it concurrently.
            let tmp = p.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp, &bytes).is_ok() && fs::rename(&tmp, &p).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
        Ok(Arc::new(bytes))
    })
    .clone()
}

/// Where the busybox:local tarball is cached, or None if /bin/busybox is missing.
fn busybox_cache_path() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata("/bin/busybox").ok()?;
    let dir = Path::new(CACHE_DIR);
    fs::create_dir_all(dir).ok()?;
    Some(dir.join(format!("busybox-local-v1-{}-{}.tar", m.len(), m.mtime())))
}

fn build_busybox_image() -> Result<Vec<u8>, String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return Err("/bin/busybox missing: apt-get install -y busybox-static".into());
    }
    let tmp = tempfile::Builder::new()
        .prefix("swarm-img-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let root = tmp.path().join("rootfs");
    for d in ["bin", "etc", "root", "tmp", "var/www"] {
        fs::create_dir_all(root.join(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
    }
    fs::copy(busybox, root.join("bin/busybox")).map_err(|e| format!("copying busybox: {e}"))?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .map_err(|e| format!("symlink {applet}: {e}"))?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .map_err(|e| format!("passwd: {e}"))?;
    fs::write(root.join("etc/group"), "root:x:0:\nnobody:x:65534:\n")
        .map_err(|e| format!("group: {e}"))?;
    run_checked("chmod", &["1777", &root.join("tmp").to_string_lossy()])?;

    let layer = tar_dir(&root)?;
    let diff_id = sha256_hex(&layer)?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let created = "2000-01-01T00:00:00Z";
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": { "Env": ["PATH=/bin"], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created": created, "created_by": "swarm tests/support: busybox rootfs" }]
    });
    let config = serde_json::to_vec(&config).map_err(|e| format!("config json: {e}"))?;
    let config_id = sha256_hex(&config)?;

    let arch_dir = tmp.path().join("archive");
    fs::create_dir_all(arch_dir.join(&diff_id)).map_err(|e| format!("mkdir: {e}"))?;
    fs::write(arch_dir.join(&diff_id).join("layer.tar"), &layer)
        .map_err(|e| format!("layer: {e}"))?;
    fs::write(arch_dir.join(format!("{config_id}.json")), &config)
        .map_err(|e| format!("config: {e}"))?;
    let manifest = serde_json::json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": [IMAGE],
        "Layers": [format!("{diff_id}/layer.tar")]
    }]);
    fs::write(arch_dir.join("manifest.json"), manifest.to_string())
        .map_err(|e| format!("manifest: {e}"))?;
    tar_dir(&arch_dir)
}

/// `tar -c` of a directory's contents, deterministic.
fn tar_dir(dir: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@946684800",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn sha256_hex(data: &[u8]) -> Result<String, String> {
    let out = run_with_input("sha256sum", &[], data, Duration::from_secs(30))?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.split_whitespace()
        .next()
        .filter(|h| h.len() == 64)
        .map(String::from)
        .ok_or_else(|| format!("sha256sum printed {s:?}"))
}
