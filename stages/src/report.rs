//! Reports of the NAS stages: PNG charts (plotters, with the DejaVu Sans font embedded so that no
//! system font library is needed) and the `summary.json` convention.
//!
//! A stage's `summary.json` holds its summary numbers (a JSON object, nested objects allowed);
//! `nasflow metrics` prints them. Charts are line charts with optional 95% bands and dots.
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use nasflow_contract::StageError;

/// One data series of a chart.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    /// Drawn as a line (in x order as given).
    pub line: Vec<(f64, f64)>,
    /// (x, low, high): a shaded band, e.g. a 95% confidence interval of the line's mean.
    pub band: Vec<(f64, f64, f64)>,
    /// Drawn as small circles (per-seed values).
    pub dots: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis (all x must be > 0).
    pub log_x: bool,
    /// Logarithmic y axis; values <= 0 are drawn at the smallest positive value / 2.
    pub log_y: bool,
    /// Tick labels for integer x positions (categorical axes, e.g. training sizes).
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<Series>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn font() -> Result<(), StageError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font did not load".to_string())
    })
    .clone()
    .map_err(StageError::Failed)
}

impl Chart {
    /// Writes the chart as a PNG (900 x 560).
    pub fn write_png(&self, path: &Path) -> Result<(), StageError> {
        font()?;
        self.draw(path)
            .map_err(|e| StageError::Failed(format!("{}: drawing the chart: {e}", path.display())))
    }

    fn tx(&self, x: f64) -> f64 {
        if self.log_x {
            x.max(f64::MIN_POSITIVE).log10()
        } else {
            x
        }
    }

    /// The y floor of a log axis: half the smallest positive value.
    fn y_floor(&self) -> f64 {
        let min = self
            .series
            .iter()
            .flat_map(|s| {
                s.line
                    .iter()
                    .chain(&s.dots)
                    .map(|p| p.1)
                    .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
            })
            .filter(|v| *v > 0.0 && v.is_finite())
            .fold(f64::INFINITY, f64::min);
        if min.is_finite() {
            min / 2.0
        } else {
            1e-6
        }
    }

    fn ty(&self, y: f64, floor: f64) -> f64 {
        if self.log_y {
            y.max(floor).log10()
        } else {
            y
        }
    }

    /// The drawn extent (in axis coordinates) of every series.
    fn bounds(&self, floor: f64) -> (f64, f64, f64, f64) {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut see = |x: f64, y: f64| {
            if x.is_finite() && y.is_finite() {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        };
        for s in &self.series {
            for &(x, y) in s.line.iter().chain(&s.dots) {
                see(self.tx(x), self.ty(y, floor));
            }
            for &(x, lo, hi) in &s.band {
                see(self.tx(x), self.ty(lo, floor));
                see(self.tx(x), self.ty(hi, floor));
            }
        }
        if x0 > x1 {
            (0.0, 1.0, 0.0, 1.0)
        } else {
            (x0, x1, y0, y1)
        }
    }

    /// An x tick label: the categorical label, or the value (undoing a log axis).
    fn x_label(&self, v: f64) -> String {
        if !self.x_ticks.is_empty() {
            return self
                .x_ticks
                .iter()
                .find(|(x, _)| (x - v).abs() < 1e-6)
                .map(|t| t.1.clone())
                .unwrap_or_default();
        }
        if self.log_x {
            let x = 10f64.powf(v);
            if x >= 1e4 {
                format!("{x:.1e}")
            } else {
                format!("{x:.0}")
            }
        } else {
            format!("{v}")
        }
    }

    fn y_label(&self, v: f64) -> String {
        if self.log_y {
            format!("{:.0e}", 10f64.powf(v))
        } else {
            format!("{v:.3}")
        }
    }

    fn draw(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let floor = self.y_floor();
        let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let (x0, x1, y0, y1) = self.bounds(floor);
        let (dx, dy) = ((x1 - x0).max(1e-9) * 0.03, (y1 - y0).max(1e-9) * 0.05);
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d((x0 - dx)..(x1 + dx), (y0 - dy)..(y1 + dy))?;
        let fmt_x = |v: &f64| self.x_label(*v);
        let fmt_y = |v: &f64| self.y_label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y)
            .label_style(("sans-serif", 14));
        if !self.x_ticks.is_empty() {
            mesh.x_labels(self.x_ticks.len() * 2 + 1);
        }
        mesh.draw()?;
        for (i, s) in self.series.iter().enumerate() {
            self.draw_series(&mut chart, s, COLORS[i % COLORS.len()], floor)?;
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
        Ok(())
    }

    /// One series: its band, its dots, its line (with its legend entry).
    fn draw_series<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        s: &Series,
        color: RGBColor,
        floor: f64,
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        DB::ErrorType: 'static,
    {
        let at = |x: f64, y: f64| (self.tx(x), self.ty(y, floor));
        if !s.band.is_empty() {
            let mut poly: Vec<(f64, f64)> = s.band.iter().map(|&(x, _, hi)| at(x, hi)).collect();
            poly.extend(s.band.iter().rev().map(|&(x, lo, _)| at(x, lo)));
            chart.draw_series(std::iter::once(Polygon::new(poly, color.mix(0.18))))?;
        }
        if !s.dots.is_empty() {
            let dots = s
                .dots
                .iter()
                .map(|&(x, y)| Circle::new(at(x, y), 3, color.mix(0.5).filled()));
            chart.draw_series(dots)?;
        }
        let line: Vec<(f64, f64)> = s
            .line
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| at(x, y))
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        Ok(())
    }
}

/// Mean and the half-width of its 95% normal confidence interval (1.96 standard errors).
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, 1.96 * (var / n as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_with_bands_dots_and_a_log_axis() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let chart = Chart {
            title: "regret".into(),
            x_label: "seconds".into(),
            y_label: "regret".into(),
            log_x: true,
            log_y: true,
            x_ticks: vec![],
            series: vec![Series {
                name: "a".into(),
                line: vec![(10.0, 0.1), (100.0, 0.05), (1000.0, 0.01)],
                band: vec![(10.0, 0.05, 0.15), (100.0, 0.02, 0.08), (1000.0, 0.0, 0.02)],
                dots: vec![(100.0, 0.04)],
            }],
        };
        chart.write_png(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5000, "a drawn chart, not an empty image");
    }

    #[test]
    fn an_empty_chart_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.png");
        Chart::default().write_png(&path).unwrap();
        assert!(path.exists());
    }

    #[test]
    fn mean_and_confidence_interval() {
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // sd = sqrt(5/3), se = sd / 2
        assert!((h - 1.96 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(mean_ci95(&[7.0]), (7.0, 0.0));
        assert!(mean_ci95(&[]).0.is_nan());
    }
}
