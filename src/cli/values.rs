//! Parsers of flag values: durations, sizes, timeouts, as classic read them.

use std::time::Duration;

/// `--delay`: a duration, never negative (classic's message).
pub(super) fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err("--delay should not be a negative number".into());
    }
    humantime_duration(s)
}

/// A Raft heartbeat: a duration from 10ms to 10s.
pub fn parse_raft_heartbeat(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(10) {
        return Err(format!(
            "{s}: the Raft heartbeat must be between 10ms and 10s"
        ));
    }
    Ok(d)
}

/// A heartbeat: at least one second, as classic required.
pub fn parse_heartbeat(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("invalid heartbeat {s:?}: at least 1s"));
    }
    Ok(d)
}

/// A duration that may be zero.
fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// What a timeout of `0s` stands for: a hundred years.
pub(super) const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses a timeout: a duration, `0s` included (no timeout).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Parses a size in bytes: `65536`, `64k`, `64KiB`, `1M`, `1MB` (k, M, G
/// are powers of 1,024, as Docker's sizes). At least 8 KiB, the least
/// hyper reads a request head with.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number such as 65536 or 64k"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    let bytes = number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))?;
    if bytes < 8192 {
        return Err(format!("invalid size {s:?}: must be at least 8k"));
    }
    Ok(bytes)
}

/// Parses `500ms`, `30s`, `1m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("invalid duration {s:?}: must be more than zero"));
    }
    Ok(d)
}
