//! `nasflow report`: a static, self-contained HTML page (no script, no CDN, no network) with the
//! DAG and each stage's state, the params of every source (the pipeline and its variants) with
//! what differs from the base marked, their metrics in one table, their charts (inline SVG,
//! overlaid across sources), and links to output files and logs. Knows nothing of NAS: it shows
//! what stages, records, `summary.json` files and chart data hold.
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

/// Everything the page shows.
#[derive(Debug, Default)]
pub struct Report {
    pub title: String,
    pub pipeline: String,
    /// The sources compared: the base pipeline first, then variants.
    pub sources: Vec<String>,
    pub stages: Vec<StageRow>,
    /// (dependency, dependent) as indices into `stages`.
    pub edges: Vec<(usize, usize)>,
    /// Per stage and param, its value in each source.
    pub params: Vec<Row<Value>>,
    /// Per stage and metric, its value in each source.
    pub metrics: Vec<Row<f64>>,
    /// The stages' warnings (`warnings` in a summary), `stage: text`, each once.
    pub warnings: Vec<String>,
    /// (caption, SVG markup).
    pub charts: Vec<(String, String)>,
    /// The stages' headline tables: (stage, source, table), in stage order.
    pub headlines: Vec<(String, String, nasflow_contract::Headline)>,
}

/// One stage of the base pipeline.
#[derive(Debug, Default)]
pub struct StageRow {
    pub name: String,
    pub kind: String,
    /// "cached" (a current result), or "stale" (would run).
    pub status: String,
    pub key: Option<String>,
    pub duration_s: Option<f64>,
    pub peak_mib: Option<f64>,
    pub device: Option<String>,
    pub out_dir: Option<PathBuf>,
    pub files: Vec<String>,
    /// (name, path) of its logs.
    pub logs: Vec<(String, PathBuf)>,
}

/// A stage's named value in each source (`None`: not there).
#[derive(Debug)]
pub struct Row<T> {
    pub stage: String,
    pub name: String,
    pub values: Vec<Option<T>>,
}

impl<T: PartialEq> Row<T> {
    fn differs(&self, k: usize) -> bool {
        k > 0 && self.values[k] != self.values[0]
    }
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn href(p: &std::path::Path) -> String {
    format!("file://{}", esc(&p.display().to_string()))
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1400px}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
td.changed{background:#fff3bf;font-weight:bold}p.warning{background:#fff4e6;border-left:4px solid #e8590c;padding:4px 8px}.cached{color:#2b8a3e}.stale{color:#c92a2a}\
figure{display:block;margin:1em 0}figure svg{width:100%;max-width:1200px;height:auto}\
table.headline{margin-top:1.2em}table.headline caption{text-align:left;padding:.3em 0}table.headline td{font-variant-numeric:tabular-nums}p.note{margin:.2em 0;font-size:.9em}\
details{margin-top:2em}summary{font-size:1.25em;font-weight:bold;cursor:pointer}\
figcaption{font-size:.9em;color:#555}code{font-size:.85em}";

impl Report {
    pub fn html(&self) -> String {
        let mut h = String::new();
        let title = esc(&self.title);
        let _ = write!(
            h,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n<p>Pipeline <code>{}</code>; \
             sources: {}.</p>\n",
            esc(&self.pipeline),
            esc(&self.sources.join(", "))
        );
        self.headline_section(&mut h);
        self.chart_section(&mut h);
        h.push_str(
            "<details id=\"plumbing\"><summary>Stages, files, params and every metric</summary>\n",
        );
        self.dag(&mut h);
        self.stage_table(&mut h);
        self.params_table(&mut h);
        self.metrics_table(&mut h);
        h.push_str("</details>\n</body></html>\n");
        h
    }

    /// The DAG as an SVG ([`crate::layout`]: no edge passes under a box).
    fn dag(&self, h: &mut String) {
        use crate::layout::{layout, BOX_H, BOX_W};
        let l = layout(self.stages.len(), &self.edges);
        let _ = write!(
            h,
            "<section id=\"dag\"><h2>Stages</h2>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
             width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"the stage DAG\">\
             <defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" \
             orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#888\"/></marker></defs>\n",
            l.width, l.height
        );
        for path in &l.paths {
            let points: Vec<String> = path.iter().map(|(x, y)| format!("{x},{y}")).collect();
            let _ = writeln!(
                h,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"#888\" marker-end=\"url(#arrow)\"/>",
                points.join(" ")
            );
        }
        let (w, bh) = (BOX_W, BOX_H);
        let pos = |i: usize| l.boxes[i];
        for (i, s) in self.stages.iter().enumerate() {
            let (x, y) = pos(i);
            let fill = if s.status == "cached" {
                "#d3f9d8"
            } else {
                "#ffe3e3"
            };
            let _ = writeln!(
                h,
                "<g><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{bh}\" rx=\"6\" fill=\"{fill}\" \
                 stroke=\"#555\"/><text x=\"{}\" y=\"{}\" font-size=\"14\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{} · {}</text></g>",
                x + w / 2.0,
                y + 20.0,
                esc(&s.name),
                x + w / 2.0,
                y + 38.0,
                esc(&s.kind),
                esc(&s.status)
            );
        }
        h.push_str("</svg>\n");
    }

    fn stage_table(&self, h: &mut String) {
        h.push_str(
            "<table id=\"stage-table\"><tr><th>stage</th><th>kind</th><th>status</th><th>key</th>\
             <th>duration</th><th>peak memory</th><th>device</th><th>outputs</th><th>logs</th></tr>\n",
        );
        for s in &self.stages {
            let num = |v: Option<f64>, unit: &str| {
                v.map(|v| format!("{v:.1} {unit}")).unwrap_or_default()
            };
            let files: Vec<String> = match &s.out_dir {
                Some(dir) => {
                    let mut l = vec![format!("<a href=\"{}\">directory</a>", href(dir))];
                    l.extend(
                        s.files
                            .iter()
                            .take(12)
                            .map(|f| format!("<a href=\"{}\">{}</a>", href(&dir.join(f)), esc(f))),
                    );
                    if s.files.len() > 12 {
                        l.push(format!("... {} more", s.files.len() - 12));
                    }
                    l
                }
                None => Vec::new(),
            };
            let logs: Vec<String> = (s.logs.iter())
                .map(|(n, p)| format!("<a href=\"{}\">{}</a>", href(p), esc(n)))
                .collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td><code>{}</code></td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.name),
                esc(&s.kind),
                esc(&s.status),
                esc(&s.status),
                esc(s.key.as_deref().map_or("", |k| &k[..k.len().min(12)])),
                num(s.duration_s, "s"),
                num(s.peak_mib, "MiB"),
                esc(s.device.as_deref().unwrap_or("")),
                files.join("<br>"),
                logs.join("<br>")
            );
        }
        h.push_str("</table></section>\n");
    }

    fn header(&self, first: &str) -> String {
        let mut t = format!("<tr><th>stage</th><th>{first}</th>");
        for s in &self.sources {
            let _ = write!(t, "<th>{}</th>", esc(s));
        }
        t + "</tr>\n"
    }

    fn params_table(&self, h: &mut String) {
        h.push_str("<section id=\"params\"><h2>Params</h2>\n<p>Marked: a value that differs from the base pipeline's.</p>\n<table>");
        h.push_str(&self.header("param"));
        for r in &self.params {
            row(h, r, |v| esc(&v.to_string()), false);
        }
        h.push_str("</table></section>\n");
    }

    fn metrics_table(&self, h: &mut String) {
        h.push_str("<section id=\"metrics\"><h2>Metrics</h2>\n<p>Each stage's <code>summary.json</code>; marked: a value that differs from the base pipeline's.</p>\n<table>");
        h.push_str(&self.header("metric"));
        for r in &self.metrics {
            row(h, r, |v| crate::metrics::fmt(*v), true);
        }
        h.push_str("</table></section>\n");
    }

    /// The stages' headline tables (each source's), then the warnings: the answer first.
    fn headline_section(&self, h: &mut String) {
        h.push_str("<section id=\"headline\"><h2>Headline</h2>\n");
        if self.headlines.is_empty() {
            h.push_str("<p>No stage has a headline yet (run the pipeline first).</p>\n");
        }
        for (stage, source, t) in &self.headlines {
            let from = if self.sources.len() > 1 {
                format!(" <small>({})</small>", esc(source))
            } else {
                String::new()
            };
            let _ = write!(
                h,
                "<table class=\"headline\" data-stage=\"{}\"><caption><b>{}</b>{from}</caption><tr>",
                esc(stage),
                esc(&t.title)
            );
            for c in &t.columns {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr>\n");
            for r in &t.rows {
                h.push_str("<tr>");
                for c in r {
                    let _ = write!(h, "<td>{}</td>", esc(c));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>\n");
            for n in &t.notes {
                let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(h, "<p class=\"warning\"><b>warning:</b> {}</p>", esc(w));
        }
        h.push_str("</section>\n");
    }

    fn chart_section(&self, h: &mut String) {
        h.push_str("<section id=\"charts\"><h2>Charts</h2>\n");
        if self.charts.is_empty() {
            h.push_str("<p>No stage has chart data yet.</p>\n");
        }
        for (caption, svg) in &self.charts {
            let _ = writeln!(
                h,
                "<figure>{svg}<figcaption>{}</figcaption></figure>",
                esc(caption)
            );
        }
        h.push_str("</section>\n");
    }
}

fn row<T: PartialEq>(h: &mut String, r: &Row<T>, show: impl Fn(&T) -> String, num: bool) {
    let _ = write!(h, "<tr><td>{}</td><td>{}</td>", esc(&r.stage), esc(&r.name));
    for (k, v) in r.values.iter().enumerate() {
        let mut class = if num {
            "num".to_string()
        } else {
            String::new()
        };
        if r.differs(k) {
            class.push_str(" changed");
        }
        let text = v.as_ref().map(&show).unwrap_or_else(|| "-".into());
        let _ = write!(h, "<td class=\"{}\">{text}</td>", class.trim());
    }
    h.push_str("</tr>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_text_and_marks_what_differs() {
        let r = Report {
            title: "report <x>".into(),
            sources: vec!["base".into(), "big".into()],
            stages: vec![
                StageRow {
                    name: "a".into(),
                    kind: "cmd".into(),
                    status: "cached".into(),
                    ..Default::default()
                },
                StageRow {
                    name: "b".into(),
                    kind: "cmd".into(),
                    status: "stale".into(),
                    ..Default::default()
                },
            ],
            edges: vec![(0, 1)],
            params: vec![Row {
                stage: "b".into(),
                name: "y".into(),
                values: vec![Some(1.into()), Some(4.into())],
            }],
            metrics: vec![Row {
                stage: "b".into(),
                name: "loss".into(),
                values: vec![Some(0.5), Some(0.5)],
            }],
            charts: vec![("b: loss".into(), "<svg></svg>".into())],
            warnings: vec!["b: not comparable <here>".into()],
            ..Default::default()
        };
        let html = r.html();
        assert!(html.contains("<title>report &lt;x&gt;</title>"));
        assert!(html.contains("<td class=\"changed\">4</td>"), "{html}");
        assert!(
            html.contains("<td class=\"num\">0.5000</td><td class=\"num\">0.5000</td>"),
            "{html}"
        );
        assert!(html.contains("<polyline "), "an edge is drawn");
        assert!(
            html.contains(
                "<p class=\"warning\"><b>warning:</b> b: not comparable &lt;here&gt;</p>"
            ),
            "{html}"
        );
        assert!(!html.contains("<script"), "no script");
    }
}
