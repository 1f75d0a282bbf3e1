//! The drawing of the timeline: a header (title and legend) and three
//! panels stacked on one x axis (see the parent module's docs).

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::font::FAMILY;
use super::roles::{self, Role};
use super::{Counts, Figures};

/// An acknowledged operation.
pub const OK: RGBColor = RGBColor(44, 160, 44);
/// A definitely refused operation.
pub const REFUSED: RGBColor = RGBColor(255, 127, 14);
/// An operation whose outcome is unknown.
pub const UNKNOWN: RGBColor = RGBColor(214, 39, 40);
/// A manager that said it led.
pub const LEADER: RGBColor = RGBColor(31, 119, 180);
/// A manager that answered and did not lead.
pub const FOLLOWER: RGBColor = RGBColor(158, 202, 225);
/// A manager that did not answer the poller.
pub const SILENT: RGBColor = RGBColor(90, 90, 90);
/// The shade of a fault window (drawn with [`FAULT_ALPHA`]).
const FAULT: RGBColor = RGBColor(150, 80, 190);
/// The opacity of a fault window's shade.
const FAULT_ALPHA: f64 = 0.16;

/// The words of an empty panel.
const NOTE: RGBColor = RGBColor(128, 128, 128);

/// Height of the header.
const HEADER: u32 = 70;
/// Width of every panel's y label area: the same for all, so that their x
/// axes line up.
const Y_LABELS: u32 = 90;
/// Right margin of every panel.
const RIGHT: u32 = 30;
/// Height of a panel's x tick labels.
const X_LABELS: u32 = 26;

/// The image's backend.
type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// A panel's chart: seconds on x.
type Chart<'a, 'b, Y> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Where a panel's plotting area is, in pixels of the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// Leftmost pixel column.
    pub left: i32,
    /// One past the rightmost pixel column.
    pub right: i32,
    /// Topmost pixel row.
    pub top: i32,
    /// One past the lowest pixel row.
    pub bottom: i32,
    /// The x axis's end, in seconds (it starts at 0).
    end: f64,
}

impl Plot {
    fn of<Y: Ranged>(chart: &Chart<'_, '_, Y>, end: f64) -> Plot {
        let (x, y) = chart.plotting_area().get_pixel_range();
        Plot {
            left: x.start,
            right: x.end,
            top: y.start,
            bottom: y.end,
            end,
        }
    }

    /// The pixel column of `secs` since the run started (as plotters maps
    /// it).
    pub fn x_px(&self, secs: f64) -> i32 {
        self.left + (f64::from(self.right - self.left) * secs / self.end + 1e-3).floor() as i32
    }
}

/// Where the panels are, for tests that look at pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The latency panel.
    pub latency: Plot,
    /// The per-second counts panel.
    pub counts: Plot,
    /// The roles panel.
    pub roles: Plot,
    /// The pixel row of each manager's band, in [`Figures::managers`]'s
    /// order.
    pub rows: Vec<i32>,
}

/// `size` pixels of the timeline's font.
fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Draws the whole timeline on `root`.
pub(super) fn draw(
    root: &Area<'_>,
    figures: &Figures<'_>,
    seed: Option<u64>,
) -> anyhow::Result<Frame> {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER);
    draw_header(&header, figures, seed)?;
    let (_, height) = body.dim_in_pixel();
    let rows = figures.managers.len().max(1) as u32;
    let roles_height = (60 + X_LABELS + 20 + rows * 34).clamp(150, height * 2 / 5);
    let counts_height = (height - roles_height) * 3 / 8;
    let (top, rest) = body.split_vertically(height - roles_height - counts_height);
    let (middle, bottom) = rest.split_vertically(counts_height);
    let latency = latency_panel(root, &top, figures)?;
    let counts = counts_panel(root, &middle, figures)?;
    let (roles, rows) = roles_panel(root, &bottom, figures)?;
    Ok(Frame {
        latency,
        counts,
        roles,
        rows,
    })
}

/// The title, and a legend of every colour.
fn draw_header(area: &Area<'_>, figures: &Figures<'_>, seed: Option<u64>) -> anyhow::Result<()> {
    area.draw(&Text::new(
        figures.title(seed),
        (Y_LABELS as i32, 12),
        font(22),
    ))?;
    let items: [(&str, RGBColor, f64); 7] = [
        ("ok", OK, 1.0),
        ("refused", REFUSED, 1.0),
        ("unknown", UNKNOWN, 1.0),
        ("fault window", FAULT, FAULT_ALPHA * 2.0),
        ("leader (term)", LEADER, 1.0),
        ("follower", FOLLOWER, 1.0),
        ("not answering", SILENT, 1.0),
    ];
    let mut x = Y_LABELS as i32;
    let y = 46;
    let style = font(15);
    for (label, colour, alpha) in items {
        area.draw(&Rectangle::new(
            [(x, y - 6), (x + 14, y + 8)],
            colour.mix(alpha).filled(),
        ))?;
        area.draw(&Text::new(label, (x + 20, y - 6), style.clone()))?;
        let (w, _) = area.estimate_text_size(label, &style)?;
        x += 20 + w as i32 + 28;
    }
    Ok(())
}

/// Formats an axis value with as few decimals as it needs (one at most).
fn short(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Formats a count tick: whole numbers only (none between them).
fn whole(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// Formats a latency tick: `0.1`, `1`, `10`, `1000`.
fn ms_tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        short(v)
    }
}

/// Shades every fault window over the height of `plot` (on the image's
/// `root`: `plot` is in its pixels).
fn shade_faults(root: &Area<'_>, plot: &Plot, figures: &Figures<'_>) -> anyhow::Result<()> {
    for fault in &figures.faults {
        let (x0, x1) = (plot.x_px(fault.span.start), plot.x_px(fault.span.end));
        root.draw(&Rectangle::new(
            [(x0, plot.top), (x1.max(x0 + 1), plot.bottom - 1)],
            FAULT.mix(FAULT_ALPHA).filled(),
        ))?;
    }
    Ok(())
}

/// The latency range shown: whole decades around every latency, with
/// room at the top for the fault labels.
fn latency_range(figures: &Figures<'_>) -> Range<f64> {
    let all = || figures.recording.ops.iter().filter_map(|o| o.latency());
    let min = all().min().map_or(1.0, |d| d.as_secs_f64() * 1e3).max(0.01);
    let max = all()
        .max()
        .map_or(100.0, |d| d.as_secs_f64() * 1e3)
        .max(min);
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf((max.log10() + 0.7).ceil()).max(lo * 100.0);
    lo..hi
}

/// The top panel, in `area` of `root`: every operation's latency at its
/// start.
fn latency_panel(root: &Area<'_>, area: &Area<'_>, figures: &Figures<'_>) -> anyhow::Result<Plot> {
    let range = latency_range(figures);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "latency of each operation at its start (ms, log scale)",
            font(17),
        )
        .margin_right(RIGHT)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(0.0..figures.end, range.clone().log_scale())?;
    chart
        .configure_mesh()
        .x_labels(20)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| ms_tick(*v))
        .y_desc("ms")
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.08))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()?;
    let plot = Plot::of(&chart, figures.end);
    shade_faults(root, &plot, figures)?;
    let ops = &figures.recording.ops;
    let at_top = range.end / 1.4;
    let point = |op: &crate::chaos::history::Op| {
        let ms = op.latency().map_or(at_top, |d| d.as_secs_f64() * 1e3);
        (op.start.as_secs_f64(), ms.clamp(range.start, at_top))
    };
    let layers = [
        (
            OK,
            0.45,
            ops.iter().filter(|o| o.is_ok()).collect::<Vec<_>>(),
        ),
        (REFUSED, 0.6, ops.iter().filter(|o| o.is_failed()).collect()),
        (
            UNKNOWN,
            0.8,
            ops.iter().filter(|o| o.is_unknown()).collect(),
        ),
    ];
    for (colour, alpha, layer) in layers {
        chart.draw_series(
            layer
                .into_iter()
                .map(|op| Circle::new(point(op), 2, colour.mix(alpha).filled())),
        )?;
    }
    if ops.is_empty() {
        note(root, &plot, "no operations")?;
    }
    label_faults(root, &plot, figures)?;
    Ok(plot)
}

/// Writes each fault's kind and target at the top of its window, in the
/// first of four lines where it overlaps no other label (none when all
/// four are taken there: the shade remains).
fn label_faults(root: &Area<'_>, plot: &Plot, figures: &Figures<'_>) -> anyhow::Result<()> {
    let style = font(13);
    let mut line_ends = [i32::MIN; 4];
    for fault in &figures.faults {
        let x = plot.x_px(fault.span.start) + 3;
        let (w, _) = root.estimate_text_size(&fault.label, &style)?;
        let Some(line) = line_ends.iter().position(|&end| end < x) else {
            continue;
        };
        line_ends[line] = x + w as i32 + 6;
        let y = plot.top + 4 + 17 * line as i32;
        root.draw(&Rectangle::new(
            [(x - 2, y - 1), (x + w as i32 + 2, y + 15)],
            WHITE.mix(0.75).filled(),
        ))?;
        root.draw(&Text::new(fault.label.clone(), (x, y), style.clone()))?;
    }
    Ok(())
}

/// Grey words in the middle of an empty panel.
fn note(root: &Area<'_>, plot: &Plot, words: &str) -> anyhow::Result<()> {
    let centre = ((plot.left + plot.right) / 2, (plot.top + plot.bottom) / 2);
    let style = font(18)
        .color(&NOTE)
        .pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new(words, centre, style))?;
    Ok(())
}

/// The middle panel, in `area` of `root`: operations started per bucket,
/// stacked by outcome.
fn counts_panel(root: &Area<'_>, area: &Area<'_>, figures: &Figures<'_>) -> anyhow::Result<Plot> {
    let top = figures.buckets.iter().map(Counts::total).max().unwrap_or(0);
    let caption = if figures.bucket == 1.0 {
        "operations started in each second, by outcome".to_string()
    } else {
        format!(
            "operations started in each {:.0} s, by outcome",
            figures.bucket
        )
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(17))
        .margin_right(RIGHT)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(0.0..figures.end, 0.0..(f64::from(top) * 1.1).max(1.0))?;
    chart
        .configure_mesh()
        .x_labels(20)
        .x_label_formatter(&|v| short(*v))
        .y_labels(5)
        .y_label_formatter(&|v| whole(*v))
        .y_desc("operations")
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.08))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()?;
    let plot = Plot::of(&chart, figures.end);
    shade_faults(root, &plot, figures)?;
    let width = figures.bucket;
    let bars = figures.buckets.iter().enumerate().flat_map(|(i, c)| {
        let x0 = i as f64 * width + width * 0.08;
        let x1 = (i + 1) as f64 * width - width * 0.08;
        let (ok, refused) = (f64::from(c.ok), f64::from(c.ok + c.refused));
        [
            (0.0, ok, OK),
            (ok, refused, REFUSED),
            (refused, f64::from(c.total()), UNKNOWN),
        ]
        .into_iter()
        .filter(|(from, to, _)| to > from)
        .map(move |(from, to, colour)| Rectangle::new([(x0, from), (x1, to)], colour.filled()))
    });
    chart.draw_series(bars)?;
    Ok(plot)
}

/// The bottom panel, in `area` of `root`: one band per manager, coloured
/// by role; the pixel row of each band.
fn roles_panel(
    root: &Area<'_>,
    area: &Area<'_>,
    figures: &Figures<'_>,
) -> anyhow::Result<(Plot, Vec<i32>)> {
    let n = figures.managers.len();
    let mut chart = ChartBuilder::on(area)
        .caption("managers' roles, each polled every 200 ms", font(17))
        .margin_right(RIGHT)
        .margin_bottom(6)
        .x_label_area_size(X_LABELS + 22)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(0.0..figures.end, 0.0..n.max(1) as f64)?;
    chart
        .configure_mesh()
        .x_labels(20)
        .x_label_formatter(&|v| short(*v))
        .x_desc("seconds since the run started")
        .disable_y_mesh()
        .y_labels(1)
        .y_label_formatter(&|_| String::new())
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.08))
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()?;
    let plot = Plot::of(&chart, figures.end);
    shade_faults(root, &plot, figures)?;
    if n == 0 {
        note(root, &plot, "no leadership observations")?;
        return Ok((plot, Vec::new()));
    }
    let all = roles::stretches(&figures.recording.leaders, &figures.managers);
    let name_style = font(15).pos(Pos::new(HPos::Right, VPos::Center));
    let term_style = font(12).color(&WHITE);
    let mut rows = Vec::with_capacity(n);
    for (i, stretches) in all.iter().enumerate() {
        let base = (n - 1 - i) as f64;
        let (_, centre) = chart.backend_coord(&(0.0, base + 0.5));
        rows.push(centre);
        root.draw(&Text::new(
            figures.managers[i].clone(),
            (plot.left - 10, centre),
            name_style.clone(),
        ))?;
        chart.draw_series(stretches.iter().map(|s| {
            let colour = match s.role {
                Role::Leader => LEADER,
                Role::Follower => FOLLOWER,
                Role::Silent => SILENT,
            };
            let span = [
                (s.from.as_secs_f64(), base + 0.2),
                (s.to.as_secs_f64(), base + 0.8),
            ];
            Rectangle::new(span, colour.filled())
        }))?;
        for s in stretches.iter().filter(|s| s.role == Role::Leader) {
            let (x0, x1) = (
                plot.x_px(s.from.as_secs_f64()),
                plot.x_px(s.to.as_secs_f64()),
            );
            let label = format!("t{}", s.term);
            let (w, _) = root.estimate_text_size(&label, &term_style)?;
            if x1 - x0 > w as i32 + 6 {
                root.draw(&Text::new(label, (x0 + 3, centre - 6), term_style.clone()))?;
            }
        }
    }
    Ok((plot, rows))
}
