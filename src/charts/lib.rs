//! Chart data and its rendering, shared by the stages (which write their charts) and the engine
//! (which overlays the charts of several variants in `nasflow plots` and `nasflow report`).
//! Knows nothing of NAS and nothing of caching.
//!
//! # The chart-data form
//!
//! A stage that has charts writes, for each chart `NAME`, the data `charts/NAME.json` next to the
//! drawings `NAME.png` and `NAME.svg` in its outputs. The data is one JSON object (a [`Chart`]):
//!
//! ```json
//! {"title": "validation regret", "kind": "line", "x_label": "simulated seconds",
//!  "y_label": "regret", "log_x": true, "log_y": true, "x_ticks": [],
//!  "series": [{"name": "reinforce", "group": "reinforce", "dashed": false,
//!              "line": [[10.0, 0.1], [100.0, 0.02]], "band": [[10.0, 0.05, 0.15]],
//!              "dots": [], "boxes": []}]}
//! ```
//!
//! - `kind`: `"line"` (lines, shaded bands, dots) or `"box"` (a box plot per series and x).
//! - `line`: `[x, y]` points joined in the order given; `band`: `[x, low, high]`, shaded (a 95%
//!   interval); `dots`: `[x, y]` circles (per-seed values); `boxes`: `[x, [samples...]]`.
//! - `group`: series of one group share a colour (a set and its baseline); default: the name.
//!   `dashed` draws the line dashed (baselines).
//! - `x_ticks`: `[x, label]` for categorical x axes (training sizes, feature sets).
//!
//! Everything but `title`, `x_label`, `y_label` and `series` may be left out. `nasflow plots`
//! overlays charts of the same `NAME` from several variants: each series is renamed
//! `VARIANT: name` and its group `VARIANT: group` (see [`overlay`]).
use std::path::Path;

use serde::{Deserialize, Serialize};

mod clip;
mod draw;

pub use draw::SIZE;
pub mod ticks;

/// What a chart draws.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Line,
    Box,
}

/// One data series of a chart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Series {
    pub name: String,
    /// Series of one group share a colour; `None`: the series' own name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// A dashed line (a baseline).
    pub dashed: bool,
    /// Drawn as a line, in the order given.
    pub line: Vec<(f64, f64)>,
    /// (x, low, high): a shaded band, e.g. a 95% interval of the line's mean.
    pub band: Vec<(f64, f64, f64)>,
    /// Drawn as small circles (per-seed values).
    pub dots: Vec<(f64, f64)>,
    /// (x, samples): a box per x (box charts).
    pub boxes: Vec<(f64, Vec<f64>)>,
}

impl Series {
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(&self.name)
    }
}

/// A chart: its data and how to draw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    pub title: String,
    #[serde(default)]
    pub kind: Kind,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis (x <= 0 are left out).
    #[serde(default)]
    pub log_x: bool,
    /// Logarithmic y axis; y <= 0 are drawn at half the smallest positive value.
    #[serde(default)]
    pub log_y: bool,
    /// Labels of categorical x positions.
    #[serde(default)]
    pub x_ticks: Vec<(f64, String)>,
    pub series: Vec<Series>,
}

/// Why a chart could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not chart data ({source}); see the chart-data form in nasflow's README")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: drawing the chart: {message}")]
    Draw { path: String, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ChartError + '_ {
    move |source| ChartError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Chart {
    /// Writes `dir/NAME.png`, `dir/NAME.svg` and the data `dir/charts/NAME.json`; returns the
    /// written paths relative to `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<Vec<String>, ChartError> {
        let data_dir = dir.join("charts");
        std::fs::create_dir_all(&data_dir).map_err(io_error(&data_dir))?;
        let data = data_dir.join(format!("{name}.json"));
        let text = serde_json::to_string(self).expect("chart data serializes");
        std::fs::write(&data, text + "\n").map_err(io_error(&data))?;
        self.write_png(&dir.join(format!("{name}.png")))?;
        self.write_svg(&dir.join(format!("{name}.svg")))?;
        Ok(vec![
            format!("{name}.png"),
            format!("{name}.svg"),
            format!("charts/{name}.json"),
        ])
    }

    /// Reads chart data (untrusted: any JSON file).
    pub fn read(path: &Path) -> Result<Chart, ChartError> {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        serde_json::from_str(&text).map_err(|source| ChartError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Draws the chart as a PNG.
    pub fn write_png(&self, path: &Path) -> Result<(), ChartError> {
        self.write_png_sized(path, SIZE)
    }

    /// Draws the chart as an SVG (text as text, in the reader's sans-serif font).
    pub fn write_svg(&self, path: &Path) -> Result<(), ChartError> {
        self.write_svg_sized(path, SIZE)
    }

    /// Draws the chart as a PNG of `size` (width, height) pixels.
    pub fn write_png_sized(&self, path: &Path, size: (u32, u32)) -> Result<(), ChartError> {
        draw::png(self, path, size).map_err(|message| ChartError::Draw {
            path: path.display().to_string(),
            message,
        })
    }

    /// Draws the chart as an SVG of `size` (width, height) pixels.
    pub fn write_svg_sized(&self, path: &Path, size: (u32, u32)) -> Result<(), ChartError> {
        draw::svg(self, path, size).map_err(|message| ChartError::Draw {
            path: path.display().to_string(),
            message,
        })
    }
}

/// One chart from several sources (variants, pipelines): every series renamed `LABEL: name`,
/// grouped per source and original group, in the order of the sources. Title, axes and ticks
/// come from the first chart; a source's x ticks missing from it are added.
pub fn overlay(charts: &[(String, Chart)]) -> Chart {
    let Some((_, first)) = charts.first() else {
        return Chart::default();
    };
    let mut out = Chart {
        series: Vec::new(),
        ..first.clone()
    };
    // A series that every source has, with the same data, is drawn once.
    let shared = |s: &Series| -> bool {
        charts.len() > 1
            && charts
                .iter()
                .all(|(_, c)| c.series.iter().any(|t| t.name == s.name && same_data(s, t)))
    };
    for (k, (label, chart)) in charts.iter().enumerate() {
        for (x, t) in &chart.x_ticks {
            if !out.x_ticks.iter().any(|(x0, _)| x0 == x) {
                out.x_ticks.push((*x, t.clone()));
            }
        }
        for s in &chart.series {
            if shared(s) {
                if k == 0 {
                    out.series.push(Series {
                        name: format!("{} (same in all sources)", s.name),
                        group: Some(format!("shared: {}", s.group())),
                        ..s.clone()
                    });
                }
                continue;
            }
            out.series.push(Series {
                name: format!("{label}: {}", s.name),
                group: Some(format!("{label}: {}", s.group())),
                ..s.clone()
            });
        }
    }
    out.x_ticks.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Whether two series draw the same thing (name and group aside).
fn same_data(a: &Series, b: &Series) -> bool {
    a.dashed == b.dashed
        && a.line == b.line
        && a.band == b.band
        && a.dots == b.dots
        && a.boxes == b.boxes
}

/// Mean and the half-width of its 95% normal interval (1.96 standard errors).
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

    fn regret() -> Chart {
        Chart {
            title: "regret".into(),
            x_label: "seconds".into(),
            y_label: "regret".into(),
            log_x: true,
            log_y: true,
            series: vec![
                Series {
                    name: "reinforce".into(),
                    line: vec![(10.0, 0.1), (100.0, 0.05), (1000.0, 0.01)],
                    band: vec![(10.0, 0.05, 0.15), (100.0, 0.02, 0.08), (1000.0, 0.0, 0.02)],
                    dots: vec![(100.0, 0.04)],
                    ..Series::default()
                },
                Series {
                    name: "baseline".into(),
                    group: Some("reinforce".into()),
                    dashed: true,
                    line: vec![(10.0, 0.2), (1000.0, 0.2)],
                    ..Series::default()
                },
            ],
            ..Chart::default()
        }
    }

    #[test]
    fn writes_png_svg_and_data_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let files = regret().write(dir.path(), "regret").unwrap();
        assert_eq!(files, ["regret.png", "regret.svg", "charts/regret.json"]);
        let png = std::fs::read(dir.path().join("regret.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(png.len() > 5000, "a drawn chart, not an empty image");
        let svg = std::fs::read_to_string(dir.path().join("regret.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("\nreinforce\n"),
            "legend text in the SVG"
        );
        let back = Chart::read(&dir.path().join("charts/regret.json")).unwrap();
        assert_eq!(back, regret());
    }

    #[test]
    fn an_overlay_draws_a_series_that_every_source_shares_once() {
        let mut other = regret();
        other.series[0].line[2].1 = 0.02;
        let o = overlay(&[("io".into(), regret()), ("reference".into(), other)]);
        let names: Vec<&str> = o.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "io: reinforce",
                "baseline (same in all sources)",
                "reference: reinforce"
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.png");
        o.write_png_sized(&p, (400, 300)).unwrap();
        let png = std::fs::read(&p).unwrap();
        // The PNG header's width and height.
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 400);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 300);
    }

    #[test]
    fn chart_data_leaves_out_what_it_does_not_need() {
        let c: Chart = serde_json::from_str(
            r#"{"title":"t","x_label":"x","y_label":"y","series":[{"name":"a","line":[[1,2]]}]}"#,
        )
        .unwrap();
        assert_eq!(c.kind, Kind::Line);
        assert_eq!(c.series[0].line, [(1.0, 2.0)]);
        assert_eq!(c.series[0].group(), "a");
        let err = Chart::read(Path::new("/nonexistent/c.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.json"), "{err}");
    }

    #[test]
    fn an_empty_chart_and_a_box_chart_draw() {
        let dir = tempfile::tempdir().unwrap();
        Chart::default().write(dir.path(), "empty").unwrap();
        let boxes = Chart {
            kind: Kind::Box,
            x_ticks: vec![(0.0, "250".into()), (1.0, "1000".into())],
            series: vec![Series {
                name: "rf".into(),
                boxes: vec![(0.0, vec![0.1, 0.2, 0.3, 0.9]), (1.0, vec![0.05])],
                ..Series::default()
            }],
            ..Chart::default()
        };
        boxes.write(dir.path(), "box").unwrap();
        assert!(dir.path().join("box.svg").exists());
    }

    #[test]
    fn overlay_renames_and_groups_per_source() {
        let a = regret();
        let mut b = regret();
        b.series[0].line[0].1 = 0.2;
        b.series[1].line[0].1 = 0.3;
        let o = overlay(&[("io".into(), a), ("arch2vec".into(), b)]);
        let names: Vec<&str> = o.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "io: reinforce",
                "io: baseline",
                "arch2vec: reinforce",
                "arch2vec: baseline"
            ]
        );
        assert_eq!(
            o.series[1].group(),
            "io: reinforce",
            "a baseline keeps its set's colour"
        );
        assert_eq!(o.series[2].group(), "arch2vec: reinforce");
        assert!(o.series[3].dashed);
    }

    #[test]
    fn mean_and_confidence_interval() {
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((h - 1.96 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(mean_ci95(&[7.0]), (7.0, 0.0));
        assert!(mean_ci95(&[]).0.is_nan());
    }
}
