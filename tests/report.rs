//! `nasflow report` through the binary, then in a real headless Chromium (Debian's chromium,
//! installed by scripts/test.sh where it can be): the page loads from the file with no console
//! error, and the DAG, the tables and each chart are there; a screenshot is taken
//! (`NASFLOW_REPORT_SCREENSHOT=PATH` keeps it, e.g. for docs/).
#[path = "support/chromium.rs"]
mod chromium;
mod common;

use common::{stderr, stdout, Project};

/// `b` writes a summary and chart data; a variant changes its param.
const PIPELINE: &str = r#"
[pipeline]
name = "report-test"

[stages.a]
kind = "cmd"
run = "echo a > $NASFLOW_OUT/out.txt"

[stages.b]
kind = "cmd"
deps = ["a"]
y = 1
run = """python3 -c '
import json, os
p = json.load(open(os.environ["NASFLOW_PARAMS"]))
out = os.environ["NASFLOW_OUT"]
json.dump({"count": 10, "loss": 0.5 / p["y"], "key_metrics": ["loss"],
           "headline": {"title": "b: the answer", "columns": ["model", "loss"],
                        "rows": [["small", str(0.5 / p["y"])]], "notes": ["p = 0.5"]}},
          open(out + "/summary.json", "w"))
os.makedirs(out + "/charts")
for name in ("loss", "accuracy"):
    chart = {"title": name, "x_label": "epoch", "y_label": name,
             "series": [{"name": "train", "line": [[1, 1.0], [2, 0.5 / p["y"]], [3, 0.4 / p["y"]]]}]}
    json.dump(chart, open(out + "/charts/" + name + ".json", "w"))
print("b says hello")
'"""

[stages.c]
kind = "cmd"
deps = ["a", "b"]
run = "cat $NASFLOW_IN_B/summary.json > $NASFLOW_OUT/out.txt"

[variants.big.b]
y = 4
"#;

#[test]
fn the_report_opens_in_a_browser_with_the_dag_the_tables_and_the_charts() {
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    p.run_ok(&["--variants"]);
    let out = p.nasflow(&["report", "--variants", "-o", "rep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let index = p.path().join("rep/index.html");
    assert_eq!(stdout(&out).trim(), "rep/index.html", "the path it wrote");
    let html = std::fs::read_to_string(&index).unwrap();
    for fetch in ["<script", "<link", "src=\"http", "href=\"http", "url(http"] {
        assert!(
            !html.contains(fetch),
            "self-contained: no script, nothing fetched ({fetch})"
        );
    }
    assert!(
        html.contains("<td class=\"changed\">4</td>"),
        "the variant's param is marked"
    );
    assert!(html.contains("stdout.log"), "links to logs");
    // The answer first: the first table is the headline, before the charts and the plumbing.
    let first_table = html.find("<table").unwrap();
    assert_eq!(
        Some(first_table),
        html.find("<table class=\"headline\""),
        "the first table is a headline"
    );
    assert!(html.find("b: the answer").unwrap() < html.find("id=\"charts\"").unwrap());
    assert!(html.find("id=\"charts\"").unwrap() < html.find("<details").unwrap());
    assert!(
        html.contains("big (y=4)"),
        "the variant labelled by what differs"
    );
    assert_no_edge_under_a_box(&html);

    let Some(bin) = chromium::binary() else {
        eprintln!("SKIPPED the browser part: no chromium (scripts/test.sh installs Debian's chromium as root)");
        return;
    };
    let mut b = chromium::Browser::start(bin);
    b.set_viewport(1400, 900);
    b.open(&index);
    assert!(b.errors().is_empty(), "console errors: {:?}", b.console());
    let found = b.eval(
        "({dag: document.querySelectorAll('#dag svg rect').length,
          edges: document.querySelectorAll('#dag svg polyline').length,
          headlineBottom: document.querySelector('table').getBoundingClientRect().bottom,
          headlineClass: document.querySelector('table').className,
          stages: document.querySelectorAll('#stage-table tr').length - 1,
          metrics: document.querySelectorAll('#metrics table tr').length - 1,
          changed: document.querySelectorAll('#params td.changed').length,
          charts: document.querySelectorAll('#charts figure svg').length,
          chartWidth: document.querySelector('#charts figure svg').getBoundingClientRect().width})",
    );
    assert_eq!(found["dag"], 3, "{found}");
    assert_eq!(found["edges"], 3, "{found}");
    assert_eq!(found["headlineClass"], "headline", "{found}");
    assert_eq!(found["stages"], 3, "{found}");
    assert_eq!(found["metrics"], 2, "count and loss: {found}");
    assert_eq!(found["changed"], 1, "{found}");
    assert_eq!(found["charts"], 2, "loss and accuracy, each once: {found}");
    assert!(
        found["chartWidth"].as_f64().unwrap() > 300.0,
        "charts are drawn: {found}"
    );
    let bottom = found["headlineBottom"].as_f64().unwrap();
    assert!(
        bottom > 0.0 && bottom <= 900.0,
        "the headline is in the first 1400x900 viewport: {found}"
    );
    let first = p.path().join("first-screen.png");
    b.screenshot_viewport(&first);
    assert_eq!(&std::fs::read(&first).unwrap()[1..4], b"PNG");
    let shot = match std::env::var_os("NASFLOW_REPORT_SCREENSHOT") {
        Some(path) => std::path::PathBuf::from(path),
        None => p.path().join("report.png"),
    };
    b.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "a page, not a blank: {} bytes",
        png.len()
    );
}

/// Every DAG edge segment (`<polyline points>`) against every stage box (`<rect>`): none enters
/// a box other than its two ends'.
fn assert_no_edge_under_a_box(html: &str) {
    let dag = &html[html.find("id=\"dag\"").unwrap()..];
    let dag = &dag[..dag.find("</svg>").unwrap()];
    let attr = |tag: &str, name: &str| -> f64 {
        let at = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        tag[at..at + tag[at..].find('"').unwrap()].parse().unwrap()
    };
    let rects: Vec<[f64; 4]> = dag
        .split("<rect")
        .skip(1)
        .map(|t| {
            [
                attr(t, "x"),
                attr(t, "y"),
                attr(t, "width"),
                attr(t, "height"),
            ]
        })
        .collect();
    let paths: Vec<Vec<(f64, f64)>> = dag
        .split("<polyline points=\"")
        .skip(1)
        .map(|t| {
            t[..t.find('"').unwrap()]
                .split(' ')
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect();
    assert!(!rects.is_empty() && !paths.is_empty());
    let inside = |r: &[f64; 4], (x, y): (f64, f64)| {
        x > r[0] + 1.0 && x < r[0] + r[2] - 1.0 && y > r[1] + 1.0 && y < r[1] + r[3] - 1.0
    };
    let touches = |r: &[f64; 4], (x, y): (f64, f64)| {
        (x - r[0]).abs() < 0.5 || (x - r[0] - r[2]).abs() < 0.5
    } && y >= r[1] && y <= r[1] + r[3];
    for path in &paths {
        let (start, end) = (path[0], *path.last().unwrap());
        for w in path.windows(2) {
            for r in &rects {
                if touches(r, start) || touches(r, end) {
                    continue; // the edge's own ends
                }
                // Sample the segment densely: no point inside another box.
                for k in 0..=200 {
                    let t = k as f64 / 200.0;
                    let p = (
                        w[0].0 + t * (w[1].0 - w[0].0),
                        w[0].1 + t * (w[1].1 - w[0].1),
                    );
                    assert!(!inside(r, p), "edge {path:?} passes under the box {r:?}");
                }
            }
        }
    }
}

#[test]
fn plots_draws_the_format_and_size_asked_for() {
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    let out = p.nasflow(&[
        "plots", "b", "--format", "svg", "--size", "800x600", "-o", "pl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let written: Vec<&str> = text.lines().collect();
    assert_eq!(written, ["pl/b/accuracy.svg", "pl/b/loss.svg"], "SVG only");
    let svg = std::fs::read_to_string(p.path().join("pl/b/loss.svg")).unwrap();
    assert!(
        svg.contains("width=\"800\"") && svg.contains("height=\"600\""),
        "{}",
        &svg[..200]
    );
    let out = p.nasflow(&["plots", "b", "--format", "png", "-o", "pl2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let png = std::fs::read(p.path().join("pl2/b/loss.png")).unwrap();
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1200);
    assert!(!p.path().join("pl2/b/loss.svg").exists());
    let out = p.nasflow(&["plots", "--size", "80x60"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("width 200 to 8000"),
        "{}",
        stderr(&out)
    );
}
