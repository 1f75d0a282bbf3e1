//! Latency figures: nearest-rank percentiles and markdown tables.

use std::time::Duration;

use serde::Serialize;

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile `p` (0-100) of sorted durations, in
/// milliseconds; NaN when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency figures of a set of operations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// How many operations were measured.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Median (nearest rank).
    pub p50_ms: f64,
    /// 90th percentile (nearest rank).
    pub p90_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Summary {
    /// The figures of `latencies` (any order); all zero when empty.
    pub fn of(latencies: &[Duration]) -> Summary {
        if latencies.is_empty() {
            return Summary::default();
        }
        let mut sorted = latencies.to_vec();
        sorted.sort_unstable();
        let total: Duration = sorted.iter().sum();
        Summary {
            count: sorted.len(),
            mean_ms: ms(total) / sorted.len() as f64,
            min_ms: ms(sorted[0]),
            p50_ms: percentile(&sorted, 50.0),
            p90_ms: percentile(&sorted, 90.0),
            p99_ms: percentile(&sorted, 99.0),
            max_ms: percentile(&sorted, 100.0),
        }
    }
}

/// A figure in milliseconds as a table cell: `12.3 ms`, `-` when there is
/// none (NaN, or no operation).
pub fn cell_ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_string()
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A byte count as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A markdown table with padded columns: `columns` are (title,
/// right-aligned).
pub fn markdown(columns: &[(&str, bool)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|(t, _)| t.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let pad = |cell: &str, w: usize, right: bool| {
        let fill = " ".repeat(w.saturating_sub(cell.chars().count()));
        if right {
            format!("{fill}{cell}")
        } else {
            format!("{cell}{fill}")
        }
    };
    let mut out = line(
        columns
            .iter()
            .zip(&widths)
            .map(|((t, right), &w)| pad(t, w, *right))
            .collect(),
    );
    out.push_str(&line(
        columns
            .iter()
            .zip(&widths)
            .map(|((_, right), &w)| {
                let dashes = "-".repeat(w.saturating_sub(1));
                if *right {
                    format!("{dashes}:")
                } else {
                    format!(":{dashes}")
                }
            })
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(
            row.iter()
                .zip(columns.iter().zip(&widths))
                .map(|(cell, ((_, right), &w))| pad(cell, w, *right))
                .collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&[d(7)], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn summary_of_unsorted() {
        let s = Summary::of(&[d(3), d(1), d(2), d(10)]);
        assert_eq!(s.count, 4);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p90_ms, 10.0);
        assert_eq!(s.max_ms, 10.0);
        assert_eq!(s.mean_ms, 4.0);
        assert_eq!(Summary::of(&[]), Summary::default());
    }

    #[test]
    fn table() {
        let t = markdown(
            &[("a", false), ("bb", true)],
            &[vec!["xyz".into(), "1".into()]],
        );
        assert_eq!(t, "| a   | bb |\n| :-- | -: |\n| xyz |  1 |\n");
    }
}
