//! A scratch directory for a benchmark run: logs and data dirs of the
//! processes it starts, removed at the end unless asked to keep it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// A fresh directory under the system temp dir, removed (with everything
/// in it) when dropped unless [`ScratchDir::keep`] was called.
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Creates `$TMPDIR/PREFIX-PID-NANOS`.
    pub fn new(prefix: &str) -> anyhow::Result<ScratchDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir { path, keep: false })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place when dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Whether [`ScratchDir::keep`] was called.
    pub fn is_kept(&self) -> bool {
        self.keep
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
