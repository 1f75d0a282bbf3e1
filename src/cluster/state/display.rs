//! Sizes and CPU counts shown to people (`docker info`, refusals), as
//! Swarm classic printed them.

/// `1.5 GiB`-style sizes, as classic printed them.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", bytes.max(0))
    } else {
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text} {}", UNITS[unit])
    }
}

/// Thousandths of a CPU as a decimal (`1500` → `1.5`).
pub fn human_cpus(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        let text = format!("{:.3}", milli as f64 / 1000.0);
        text.trim_end_matches('0').to_string()
    }
}
