//! A chaos run as one picture a person can read (issue 22): a PNG
//! timeline of a [`Recording`], written by `swarm-bench chaos --png FILE`.
//!
//! Three panels share one x axis, seconds since the run started, and the
//! fault windows are shaded across all three (labelled with kind and
//! target in the top one):
//! - the latency of every operation (ms, log scale) at its start, coloured
//!   by outcome: ok, refused (a definite refusal, `Outcome::Failed`) or
//!   unknown; an operation that never completed is drawn at the top edge;
//! - how many operations started in each second (coarser buckets past
//!   300 s), stacked by outcome;
//! - one row per manager: leader (with its term), follower, or not
//!   answering the leadership poller ([`roles`]).
//!
//! The title has the seed when given and the totals. Text needs a TrueType
//! font read at run time from the first of [`FONT_CANDIDATES`] found:
//! without Debian's `fonts-dejavu-core` (or another candidate) [`render`]
//! fails and says which package to install.

mod font;
mod panels;
pub mod roles;

use std::io::BufWriter;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use plotters::prelude::*;

use crate::chaos::history::{Op, Recording};

pub use font::CANDIDATES as FONT_CANDIDATES;

/// What to draw besides the recording, and how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The run's seed, shown in the title when known.
    pub seed: Option<u64>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: None,
            width: 1600,
            height: 1000,
        }
    }
}

/// Draws `recording` as a PNG timeline into `path` (see the module docs).
pub fn render(recording: &Recording, path: &Path, options: &Options) -> anyhow::Result<()> {
    let pixels = draw(recording, options)?.1;
    write_png(path, options.width, options.height, &pixels)
}

/// The image as RGB bytes, row by row, and where its panels are.
fn draw(recording: &Recording, options: &Options) -> anyhow::Result<(panels::Frame, Vec<u8>)> {
    font::ensure()?;
    let (w, h) = (options.width, options.height);
    anyhow::ensure!(
        w >= 400 && h >= 300,
        "a timeline of {w}x{h} pixels is too small"
    );
    let mut pixels = vec![0u8; w as usize * h as usize * 3];
    let frame = {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        let frame = panels::draw(&root, &Figures::of(recording), options.seed)?;
        root.present()?;
        frame
    };
    Ok((frame, pixels))
}

/// Writes RGB `pixels` of `width` x `height` as a PNG file.
fn write_png(path: &Path, width: u32, height: u32, pixels: &[u8]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .with_context(|| format!("writing {}", path.display()))?;
    writer
        .write_image_data(pixels)
        .with_context(|| format!("writing {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("writing {}", path.display()))
}

/// A fault window in seconds, with its label (`kill m2`).
#[derive(Debug, Clone, PartialEq)]
struct Window {
    label: String,
    span: Range<f64>,
}

/// Operations started in one bucket, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    ok: u32,
    refused: u32,
    unknown: u32,
}

impl Counts {
    fn add(&mut self, op: &Op) {
        if op.is_ok() {
            self.ok += 1;
        } else if op.is_failed() {
            self.refused += 1;
        } else {
            self.unknown += 1;
        }
    }

    fn total(&self) -> u32 {
        self.ok + self.refused + self.unknown
    }
}

/// What the panels draw, in seconds since the run started.
struct Figures<'a> {
    recording: &'a Recording,
    /// The x axis: 0 to the last instant recorded, whole seconds, at
    /// least one.
    end: f64,
    /// Fault windows (one still open ends with the axis).
    faults: Vec<Window>,
    /// Bucket width in seconds.
    bucket: f64,
    /// Operations started in each bucket.
    buckets: Vec<Counts>,
    /// All operations by outcome.
    totals: Counts,
    /// The managers, in natural order.
    managers: Vec<String>,
}

impl<'a> Figures<'a> {
    fn of(recording: &'a Recording) -> Figures<'a> {
        let last = recording
            .ops
            .iter()
            .map(|o| o.end.unwrap_or(o.start))
            .chain(recording.faults.iter().map(|f| f.end.unwrap_or(f.start)))
            .chain(recording.leaders.iter().map(|l| l.at))
            .max()
            .unwrap_or(Duration::ZERO);
        let end = last.as_secs_f64().ceil().max(1.0);
        let faults = recording
            .faults
            .iter()
            .map(|f| Window {
                label: format!("{} {}", f.kind, f.target),
                span: f.start.as_secs_f64()..f.end.map_or(end, |e| e.as_secs_f64()),
            })
            .collect();
        let bucket = (end / 300.0).ceil().max(1.0);
        let mut buckets = vec![Counts::default(); (end / bucket).ceil() as usize];
        let mut totals = Counts::default();
        for op in &recording.ops {
            let i = (op.start.as_secs_f64() / bucket) as usize;
            if let Some(b) = buckets.get_mut(i) {
                b.add(op);
            }
            totals.add(op);
        }
        Figures {
            recording,
            end,
            faults,
            bucket,
            buckets,
            totals,
            managers: roles::managers(recording),
        }
    }

    /// The title: seed, length, managers, operations, faults.
    fn title(&self, seed: Option<u64>) -> String {
        let seed = seed.map(|s| format!(", seed {s}")).unwrap_or_default();
        let t = &self.totals;
        format!(
            "chaos run{seed}: {:.0} s, {} managers, {} operations ({} ok, {} refused, {} unknown), {} faults",
            self.end,
            self.managers.len(),
            t.total(),
            t.ok,
            t.refused,
            t.unknown,
            self.faults.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::chaos::history::{FaultKind, History, LeaderObservation, OpKind, Outcome};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn op(id: u64, start_ms: u64, end_ms: Option<u64>, outcome: Outcome) -> Op {
        Op {
            id,
            client: 0,
            manager: "m1".into(),
            kind: OpKind::Start { name: "c".into() },
            start: ms(start_ms),
            end: end_ms.map(ms),
            outcome,
        }
    }

    /// 10 s; a fault 2-4 s; m1 leads and m2 follows, except that m2 does
    /// not answer from 6 to 7 s; one ok operation at 1.2 s.
    fn recording() -> Recording {
        let mut leaders = Vec::new();
        for r in 0..=50u64 {
            let at = ms(r * 200);
            leaders.push(LeaderObservation {
                manager: "m1".into(),
                term: 1,
                is_leader: true,
                at,
            });
            if !(30..35).contains(&r) {
                leaders.push(LeaderObservation {
                    manager: "m2".into(),
                    term: 1,
                    is_leader: false,
                    at: at + Duration::from_micros(5),
                });
            }
        }
        Recording {
            ops: vec![op(0, 1200, Some(1210), Outcome::ok())],
            faults: vec![crate::chaos::history::Fault {
                kind: FaultKind::Pause,
                target: "m1".into(),
                start: ms(2000),
                end: Some(ms(4000)),
            }],
            leaders,
        }
    }

    fn pixel(pixels: &[u8], width: u32, (x, y): (i32, i32)) -> [u8; 3] {
        let i = (y as usize * width as usize + x as usize) * 3;
        [pixels[i], pixels[i + 1], pixels[i + 2]]
    }

    fn rgb(c: RGBColor) -> [u8; 3] {
        [c.0, c.1, c.2]
    }

    #[test]
    fn writes_a_png_of_the_asked_size() {
        let history = History::new();
        let a = history.invoke(1, "m1", OpKind::Stop { name: "a".into() });
        history.complete(a, Outcome::ok());
        let b = history.invoke(2, "m2", OpKind::Remove { name: "b".into() });
        history.complete(b, Outcome::failed(Some(404), "no such container"));
        history.invoke(3, "m3", OpKind::Start { name: "c".into() });
        let f = history.fault_began(FaultKind::Kill, "m2");
        history.observe_leader("m1", 2, true);
        history.fault_healed(f);
        history.fault_began(FaultKind::Partition, "m1|m2,m3");

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("timeline.png");
        render(&history.recording(), &path, &Options::default()).expect("renders");
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&path).expect("written"),
        ));
        let mut reader = decoder.read_info().expect("a PNG header");
        let info = reader.info();
        assert_eq!((info.width, info.height), (1600, 1000));
        let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
        reader.next_frame(&mut buf).expect("PNG image data");
        assert!(
            buf.iter().any(|&b| b != 255),
            "something is drawn on the white"
        );
    }

    #[test]
    fn a_fault_window_is_shaded_in_every_row_of_the_counts_panel() {
        let options = Options::default();
        let (frame, pixels) = draw(&recording(), &options).expect("draws");
        let plot = &frame.counts;
        let (inside, outside) = (plot.x_px(3.5), plot.x_px(7.5));
        for y in plot.top + 1..plot.bottom - 1 {
            let (a, b) = (
                pixel(&pixels, options.width, (inside, y)),
                pixel(&pixels, options.width, (outside, y)),
            );
            assert_ne!(a, b, "row {y}: {a:?} in the fault, {b:?} outside");
        }
        assert_eq!(
            pixel(&pixels, options.width, (outside, plot.top + 5)),
            [255; 3],
            "no fault, no bar: white"
        );
    }

    #[test]
    fn bars_and_roles_have_their_colours() {
        let options = Options::default();
        let (frame, pixels) = draw(&recording(), &options).expect("draws");
        let at = |p: (i32, i32)| pixel(&pixels, options.width, p);
        let counts = &frame.counts;
        assert_eq!(
            at((counts.x_px(1.5), counts.bottom - 3)),
            rgb(panels::OK),
            "the ok operation's bar"
        );
        assert_eq!(at((counts.x_px(8.5), counts.bottom - 3)), [255; 3]);
        let roles = &frame.roles;
        let (m1, m2) = (frame.rows[0], frame.rows[1]);
        assert_eq!(at((roles.x_px(5.5), m1)), rgb(panels::LEADER));
        assert_eq!(at((roles.x_px(5.5), m2)), rgb(panels::FOLLOWER));
        assert_eq!(at((roles.x_px(6.5), m2)), rgb(panels::SILENT));
    }

    #[test]
    fn an_empty_recording_renders() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.png");
        let options = Options {
            seed: Some(5),
            width: 800,
            height: 500,
        };
        render(&Recording::default(), &path, &options).expect("renders");
        let reader = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&path).expect("written"),
        ))
        .read_info()
        .expect("a PNG header");
        assert_eq!((reader.info().width, reader.info().height), (800, 500));
    }

    #[test]
    fn figures_count_by_second_and_outcome() {
        let rec = Recording {
            ops: vec![
                op(0, 100, Some(150), Outcome::ok()),
                op(1, 900, Some(2500), Outcome::failed(Some(409), "in use")),
                op(2, 1100, None, Outcome::unknown("never completed")),
            ],
            ..Recording::default()
        };
        let figures = Figures::of(&rec);
        assert_eq!(figures.end, 3.0, "the last end, 2.5 s, rounded up");
        assert_eq!(figures.bucket, 1.0);
        let by_second: Vec<(u32, u32, u32)> = figures
            .buckets
            .iter()
            .map(|c| (c.ok, c.refused, c.unknown))
            .collect();
        assert_eq!(by_second, [(1, 1, 0), (0, 0, 1), (0, 0, 0)]);
        assert!(figures.title(Some(9)).contains("seed 9"));
        assert!(figures
            .title(None)
            .contains("3 operations (1 ok, 1 refused, 1 unknown)"));
    }
}
