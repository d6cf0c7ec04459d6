//! Drawing a [`Chart`] with plotters, to PNG (with the DejaVu Sans font embedded, so that no system
//! font library is needed) or SVG: the plot on the left, the legend in its own panel on the right
//! (never over the data), series of one group in one colour, baselines dashed.
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::{ticks, Chart, Kind, Series};

/// The default size of a drawing, in pixels.
pub const SIZE: (u32, u32) = (1200, 720);
const TITLE: u32 = 28;
const TEXT: u32 = 19;

/// The Tableau 10 palette (matplotlib's default colours).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Coords = Cartesian2d<Ticked, Ticked>;

/// A linear f64 axis with the ticks we chose (plotters' own would print `1.7999999999999998`
/// and, on our log10 axes, the same label twice).
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
}

fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font did not load".to_string())
    })
    .clone()
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

pub fn png(chart: &Chart, path: &Path, size: (u32, u32)) -> Result<(), String> {
    font()?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    render(chart, &root)?;
    root.present().map_err(err)
}

pub fn svg(chart: &Chart, path: &Path, size: (u32, u32)) -> Result<(), String> {
    font()?;
    let root = SVGBackend::new(path, size).into_drawing_area();
    render(chart, &root)?;
    root.present().map_err(err)
}

/// How a series is told apart when colours repeat (more groups than the palette has): the
/// first ten groups solid, the next ten dashed with square markers, the next dotted with
/// triangles (boxes: filled, outlined, dark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Look {
    Solid,
    Dashed,
    Dotted,
}

/// The colour and look of each series: one per group, in order of first appearance.
fn looks(chart: &Chart) -> Vec<(RGBColor, Look)> {
    let mut groups: Vec<&str> = Vec::new();
    chart
        .series
        .iter()
        .map(|s| {
            let g = s.group();
            let i = groups.iter().position(|x| *x == g).unwrap_or_else(|| {
                groups.push(g);
                groups.len() - 1
            });
            let look = match (i / COLORS.len()) % 3 {
                0 => Look::Solid,
                1 => Look::Dashed,
                _ => Look::Dotted,
            };
            (COLORS[i % COLORS.len()], look)
        })
        .collect()
}

fn render<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let clip = crate::clip::off_scale(chart);
    let longest = (0..chart.series.len())
        .map(|k| legend_name(chart, &clip, k).chars().count())
        .max()
        .unwrap_or(0);
    let legend_w = if chart.series.is_empty() {
        0
    } else {
        (longest as u32 * TEXT * 55 / 100 + 70).clamp(170, (root.dim_in_pixel().0 * 2 / 5).max(480))
    };
    let (width, _) = root.dim_in_pixel();
    let legend_w = legend_w.min(width / 2);
    let (plot, legend) = root.split_horizontally(width - legend_w);
    let axes = Axes::of(chart, &clip);
    let title = match clip.note() {
        Some(n) => format!("{} ({n})", chart.title),
        None => chart.title.clone(),
    };
    // A long title gets a smaller font rather than running off the image.
    let fit = (width - legend_w) as f64 / (title.chars().count().max(1) as f64 * 0.56);
    let title_size = (fit as u32).clamp(14, TITLE);
    let mut cc = ChartBuilder::on(&plot)
        .caption(&title, ("sans-serif", title_size))
        .margin(16)
        .x_label_area_size(64)
        .y_label_area_size(96)
        .build_cartesian_2d(axes.x_range(), axes.y_range())
        .map_err(err)?;
    let fmt_x = |v: &f64| axes.x_text(*v);
    let fmt_y = |v: &f64| axes.y_text(*v);
    cc.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .label_style(("sans-serif", TEXT - 1))
        .axis_desc_style(("sans-serif", TEXT + 1))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(err)?;
    let looks = looks(chart);
    match chart.kind {
        Kind::Line => {
            for (s, &look) in chart.series.iter().zip(&looks) {
                line_series(&mut cc, &axes, s, look)?;
            }
        }
        Kind::Box => boxes(&mut cc, &axes, chart, &looks, &clip)?,
    }
    draw_legend(&legend, chart, &looks, &clip)
}

/// The axes of a chart: ranges and ticks in drawn coordinates (log10 on log axes).
struct Axes {
    log_x: bool,
    log_y: bool,
    floor: f64,
    x: (f64, f64),
    y: (f64, f64),
    x_ticks: Vec<f64>,
    x_step: f64,
    y_ticks: Vec<f64>,
    y_step: f64,
    categories: Vec<(f64, String)>,
}

impl Axes {
    fn of(chart: &Chart, clip: &crate::clip::Clip) -> Axes {
        let floor = y_floor(chart);
        let mut a = Axes {
            log_x: chart.log_x && chart.x_ticks.is_empty(),
            log_y: chart.log_y,
            floor,
            x: (0.0, 1.0),
            y: (0.0, 1.0),
            x_ticks: Vec::new(),
            x_step: 1.0,
            y_ticks: Vec::new(),
            y_step: 1.0,
            categories: chart.x_ticks.clone(),
        };
        let (x0, x1, y0, y1) = a.bounds(chart, clip);
        let (dx, dy) = ((x1 - x0).max(1e-9) * 0.03, (y1 - y0).max(1e-9) * 0.06);
        a.x = (x0 - dx, x1 + dx);
        a.y = (y0 - dy, y1 + dy);
        if !a.categories.is_empty() {
            a.x = (x0 - 0.5, x1 + 0.5);
            a.x_ticks = a.categories.iter().map(|t| t.0).collect();
        } else if a.log_x {
            a.x_ticks = ticks::log(a.x.0, a.x.1);
        } else {
            (a.x_ticks, a.x_step) = ticks::linear(a.x.0, a.x.1, 8);
            if a.x_step < 1.0 && integral_x(chart) {
                (a.x_ticks, a.x_step) =
                    ticks::linear(a.x.0, a.x.1, (x1 - x0).clamp(1.0, 8.0) as usize);
            }
        }
        if a.log_y {
            a.y_ticks = ticks::log(a.y.0, a.y.1);
        } else {
            (a.y_ticks, a.y_step) = ticks::linear(a.y.0, a.y.1, 7);
        }
        a
    }

    fn tx(&self, x: f64) -> f64 {
        if self.log_x {
            x.max(f64::MIN_POSITIVE).log10()
        } else {
            x
        }
    }

    fn ty(&self, y: f64) -> f64 {
        if self.log_y {
            y.max(self.floor).log10()
        } else {
            y
        }
    }

    fn at(&self, x: f64, y: f64) -> (f64, f64) {
        (self.tx(x), self.ty(y))
    }

    /// The drawn extent of every series (box samples included).
    fn bounds(&self, chart: &Chart, clip: &crate::clip::Clip) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut see = |(x, y): (f64, f64)| {
            if x.is_finite() && y.is_finite() {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
        };
        for (k, s) in chart.series.iter().enumerate() {
            if clip.is_off(k) {
                continue; // off scale (box charts' x positions are their categories)
            }
            for &(x, y) in s.line.iter().chain(&s.dots) {
                see(self.at(x, y));
            }
            for &(x, lo, hi) in &s.band {
                see(self.at(x, lo));
                see(self.at(x, hi));
            }
            for (x, v) in &s.boxes {
                v.iter().for_each(|&y| see(self.at(*x, y)));
            }
        }
        if x0 > x1 {
            return (0.0, 1.0, 0.0, 1.0);
        }
        // Every categorical position is on the axis, with or without data (x only).
        for (x, _) in &chart.x_ticks {
            (x0, x1) = (x0.min(*x), x1.max(*x));
        }
        (x0, x1, y0, y1)
    }

    fn x_range(&self) -> Ticked {
        Ticked {
            inner: (self.x.0..self.x.1).into(),
            ticks: self.x_ticks.clone(),
        }
    }

    fn y_range(&self) -> Ticked {
        Ticked {
            inner: (self.y.0..self.y.1).into(),
            ticks: self.y_ticks.clone(),
        }
    }

    fn x_text(&self, v: f64) -> String {
        if !self.categories.is_empty() {
            let t = self.categories.iter().find(|(x, _)| (x - v).abs() < 1e-9);
            return t.map(|t| t.1.clone()).unwrap_or_default();
        }
        if self.log_x {
            ticks::log_label(v)
        } else {
            ticks::linear_label(v, self.x_step)
        }
    }

    fn y_text(&self, v: f64) -> String {
        if self.log_y {
            ticks::log_label(v)
        } else {
            ticks::linear_label(v, self.y_step)
        }
    }
}

/// Whether every x is a whole number (epochs, queries): such an axis gets no 1.5 tick.
fn integral_x(chart: &Chart) -> bool {
    let mut xs = chart
        .series
        .iter()
        .flat_map(|s| s.line.iter().chain(&s.dots).map(|p| p.0));
    xs.all(|x| x.fract() == 0.0)
}

/// Half the smallest positive y: where a log axis draws values <= 0.
fn y_floor(chart: &Chart) -> f64 {
    let min = chart
        .series
        .iter()
        .flat_map(|s| {
            let boxes = s.boxes.iter().flat_map(|b| b.1.iter().copied());
            let bands = s.band.iter().flat_map(|b| [b.1, b.2]);
            s.line
                .iter()
                .chain(&s.dots)
                .map(|p| p.1)
                .chain(bands)
                .chain(boxes)
        })
        .filter(|v| *v > 0.0 && v.is_finite())
        .fold(f64::INFINITY, f64::min);
    if min.is_finite() {
        min / 2.0
    } else {
        1e-6
    }
}

/// One line series: its band, its dots, its line (solid or dashed).
fn line_series<DB: DrawingBackend>(
    cc: &mut ChartContext<'_, DB, Coords>,
    axes: &Axes,
    s: &Series,
    (color, look): (RGBColor, Look),
) -> Result<(), String> {
    if !s.band.is_empty() {
        let mut poly: Vec<(f64, f64)> = s.band.iter().map(|&(x, _, hi)| axes.at(x, hi)).collect();
        poly.extend(s.band.iter().rev().map(|&(x, lo, _)| axes.at(x, lo)));
        cc.draw_series(std::iter::once(Polygon::new(poly, color.mix(0.16))))
            .map_err(err)?;
    }
    let dots = s
        .dots
        .iter()
        .map(|&(x, y)| Circle::new(axes.at(x, y), 4, color.mix(0.55).filled()));
    cc.draw_series(dots).map_err(err)?;
    let line: Vec<(f64, f64)> = s
        .line
        .iter()
        .filter(|p| p.1.is_finite() && (!axes.log_x || p.0 > 0.0))
        .map(|&(x, y)| axes.at(x, y))
        .collect();
    let style = color.stroke_width(3);
    match look {
        Look::Solid => {}
        Look::Dashed => {
            let squares = line
                .iter()
                .map(|&p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], color.filled()));
            cc.draw_series(squares).map_err(err)?;
        }
        Look::Dotted => {
            let tri = line.iter().map(|&p| {
                EmptyElement::at(p) + Polygon::new(vec![(0, -6), (-5, 4), (5, 4)], color.filled())
            });
            cc.draw_series(tri).map_err(err)?;
        }
    }
    if s.dashed || look == Look::Dashed {
        let (dash, gap) = if s.dashed && look == Look::Dashed {
            (4, 4)
        } else {
            (10, 7)
        };
        cc.draw_series(DashedLineSeries::new(line, dash, gap, style))
            .map_err(err)?;
    } else if look == Look::Dotted && line.len() > 1 {
        cc.draw_series(DashedLineSeries::new(line, 3, 5, style))
            .map_err(err)?;
    } else if line.len() == 1 {
        cc.draw_series(std::iter::once(Circle::new(line[0], 5, color.filled())))
            .map_err(err)?;
    } else {
        cc.draw_series(LineSeries::new(line, style)).map_err(err)?;
    }
    Ok(())
}

/// Quartiles by linear interpolation (numpy's default), whiskers at the furthest samples within
/// 1.5 IQR, and the samples beyond them.
pub(crate) fn box_stats(samples: &[f64]) -> Option<([f64; 5], Vec<f64>)> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let h = p * (v.len() - 1) as f64;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        v[lo] + (h - lo as f64) * (v[hi] - v[lo])
    };
    let (q1, med, q3) = (q(0.25), q(0.5), q(0.75));
    let (lo_fence, hi_fence) = (q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1));
    let inside = v
        .iter()
        .copied()
        .filter(|x| (lo_fence..=hi_fence).contains(x));
    let lo = inside.clone().fold(f64::INFINITY, f64::min);
    let hi = inside.fold(f64::NEG_INFINITY, f64::max);
    let out = v
        .iter()
        .copied()
        .filter(|x| !(lo_fence..=hi_fence).contains(x))
        .collect();
    Some(([lo, q1, med, q3, hi], out))
}

/// Box plots: at each x, one box per series side by side.
fn boxes<DB: DrawingBackend>(
    cc: &mut ChartContext<'_, DB, Coords>,
    axes: &Axes,
    chart: &Chart,
    looks: &[(RGBColor, Look)],
    clip: &crate::clip::Clip,
) -> Result<(), String> {
    let n = chart.series.len().max(1) as f64;
    let slot = 0.8 / n;
    for (k, (s, &(c, look))) in chart.series.iter().zip(looks).enumerate() {
        if clip.is_off(k) {
            continue;
        }
        let fill = match look {
            Look::Solid => c.mix(0.3).filled(),
            Look::Dashed => WHITE.filled(),
            Look::Dotted => c.mix(0.75).filled(),
        };
        let shift = (k as f64 - (n - 1.0) / 2.0) * slot;
        for (x, samples) in &s.boxes {
            let Some(([lo, q1, med, q3, hi], out)) = box_stats(samples) else {
                continue;
            };
            let (x, w) = (x + shift, slot * 0.35);
            let y = |v: f64| axes.ty(v);
            let mut shapes: Vec<DynElement<'static, DB, (f64, f64)>> = vec![
                Rectangle::new([(x - w, y(q1)), (x + w, y(q3))], fill).into_dyn(),
                Rectangle::new([(x - w, y(q1)), (x + w, y(q3))], c.stroke_width(2)).into_dyn(),
                PathElement::new(vec![(x - w, y(med)), (x + w, y(med))], c.stroke_width(3))
                    .into_dyn(),
                PathElement::new(vec![(x, y(lo)), (x, y(q1))], c.stroke_width(2)).into_dyn(),
                PathElement::new(vec![(x, y(q3)), (x, y(hi))], c.stroke_width(2)).into_dyn(),
            ];
            for v in out {
                shapes.push(Circle::new((x, y(v)), 3, c.stroke_width(1)).into_dyn());
            }
            cc.draw_series(shapes).map_err(err)?;
        }
    }
    Ok(())
}

/// A series' legend text: its name, and its median when it is off scale.
fn legend_name(chart: &Chart, clip: &crate::clip::Clip, k: usize) -> String {
    let s = &chart.series[k];
    match clip.median_of(k) {
        Some(m) => format!(
            "{} (off scale, median {})",
            s.name,
            ticks::linear_label(m, 0.001)
        ),
        None => s.name.clone(),
    }
}

/// The legend, in its own panel: a sample of each series' line (or box) and its name.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    looks: &[(RGBColor, Look)],
    clip: &crate::clip::Clip,
) -> Result<(), String> {
    let font = ("sans-serif", TEXT).into_font().color(&BLACK);
    let step = TEXT as i32 + 12;
    let room = (area.dim_in_pixel().1 as i32 - 80) / step;
    for (i, (s, &(c, look))) in chart.series.iter().zip(looks).enumerate() {
        let y = 70 + i as i32 * step;
        if i as i32 >= room {
            let more = format!("... {} more", chart.series.len() - i);
            area.draw_text(&more, &font, (8, y)).map_err(err)?;
            break;
        }
        let mid = y + TEXT as i32 / 2;
        if chart.kind == Kind::Box {
            let fill = match look {
                Look::Solid => c.mix(0.3).filled(),
                Look::Dashed => WHITE.filled(),
                Look::Dotted => c.mix(0.75).filled(),
            };
            let r = Rectangle::new([(8, mid - 7), (38, mid + 7)], fill);
            area.draw(&r).map_err(err)?;
            let edge = Rectangle::new([(8, mid - 7), (38, mid + 7)], c.stroke_width(2));
            area.draw(&edge).map_err(err)?;
        } else {
            let pieces: &[(i32, i32)] = match (s.dashed, look) {
                (_, Look::Dotted) => &[(8, 11), (16, 19), (24, 27), (32, 35)],
                (true, _) | (_, Look::Dashed) => &[(8, 20), (26, 38)],
                _ => &[(8, 38)],
            };
            for &(a, b) in pieces {
                let d = PathElement::new(vec![(a, mid), (b, mid)], c.stroke_width(3));
                area.draw(&d).map_err(err)?;
            }
            match look {
                Look::Solid => {}
                Look::Dashed => {
                    area.draw(&Rectangle::new([(19, mid - 4), (27, mid + 4)], c.filled()))
                        .map_err(err)?;
                }
                Look::Dotted => {
                    let t = vec![(23, mid - 6), (18, mid + 4), (28, mid + 4)];
                    area.draw(&Polygon::new(t, c.filled())).map_err(err)?;
                }
            }
        }
        area.draw_text(&legend_name(chart, clip, i), &font, (46, y))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_statistics_are_numpys() {
        let ([lo, q1, med, q3, hi], out) = box_stats(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!((q1, med, q3), (2.0, 3.0, 4.0));
        assert_eq!((lo, hi), (1.0, 4.0));
        assert_eq!(out, [100.0]);
        assert_eq!(box_stats(&[5.0]).unwrap().0, [5.0; 5]);
        assert!(box_stats(&[f64::NAN]).is_none());
    }

    #[test]
    fn a_baseline_shares_its_sets_colour() {
        let s = |name: &str, group: Option<&str>| Series {
            name: name.into(),
            group: group.map(str::to_string),
            ..Series::default()
        };
        let c = Chart {
            series: vec![
                s("train", None),
                s("valid", None),
                s("train: mean", Some("train")),
            ],
            ..Chart::default()
        };
        let k = looks(&c);
        assert_eq!(k[0], k[2]);
        assert_ne!(k[0], k[1]);
        // Eleven groups: the eleventh repeats the first colour, with another look.
        let many = Chart {
            series: (0..11).map(|i| s(&format!("s{i}"), None)).collect(),
            ..Chart::default()
        };
        let k = looks(&many);
        assert_eq!(k[10].0, k[0].0);
        assert_ne!(k[10].1, k[0].1);
        let distinct: std::collections::HashSet<String> =
            k.iter().map(|(c, l)| format!("{c:?}{l:?}")).collect();
        assert_eq!(distinct.len(), 11);
    }
}
