//! The font of the timeline's text. plotters is built with its `ab_glyph`
//! text backend (pure Rust, no system library at build time), which knows
//! no system fonts: a TrueType file is read at run time from the first of
//! [`CANDIDATES`] that exists and registered as [`FAMILY`], once per
//! process. Without one, rendering fails with an error that names the
//! Debian package to install (`fonts-dejavu-core`).

use std::path::Path;
use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

/// The family name the timeline's text asks for.
pub const FAMILY: &str = "sans-serif";

/// Where a sans-serif TrueType font is looked for, in order: Debian's and
/// Ubuntu's `fonts-dejavu-core`, the same font on Fedora and Arch, then
/// Debian's `fonts-liberation`.
pub const CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers [`FAMILY`] from the first candidate found (the first call
/// does the work, later calls return its result). The font's bytes are
/// leaked: plotters keeps a `'static` reference to them, and they are read
/// once per process.
pub fn ensure() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(register)
        .clone()
        .map_err(anyhow::Error::msg)
}

fn register() -> Result<(), String> {
    let Some(path) = CANDIDATES.iter().map(Path::new).find(|p| p.is_file()) else {
        return Err(format!(
            "no TrueType font for the timeline's text (looked for {}): \
             install Debian's package fonts-dejavu-core",
            CANDIDATES.join(", ")
        ));
    };
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FAMILY, FontStyle::Normal, bytes).map_err(|_| {
        format!(
            "{} is not a TrueType font plotters can read",
            path.display()
        )
    })
}
