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
json.dump({"count": 10, "loss": 0.5 / p["y"]}, open(out + "/summary.json", "w"))
os.makedirs(out + "/charts")
for name in ("loss", "accuracy"):
    chart = {"title": name, "x_label": "epoch", "y_label": name,
             "series": [{"name": "train", "line": [[1, 1.0], [2, 0.5 / p["y"]], [3, 0.4 / p["y"]]]}]}
    json.dump(chart, open(out + "/charts/" + name + ".json", "w"))
print("b says hello")
'"""

[stages.c]
kind = "cmd"
deps = ["b"]
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

    let Some(bin) = chromium::binary() else {
        eprintln!("SKIPPED the browser part: no chromium (scripts/test.sh installs Debian's chromium as root)");
        return;
    };
    let mut b = chromium::Browser::start(bin);
    b.open(&index);
    assert!(b.errors().is_empty(), "console errors: {:?}", b.console());
    let found = b.eval(
        "({dag: document.querySelectorAll('#dag svg rect').length,
          edges: document.querySelectorAll('#dag svg line').length,
          stages: document.querySelectorAll('#stage-table tr').length - 1,
          metrics: document.querySelectorAll('#metrics table tr').length - 1,
          changed: document.querySelectorAll('#params td.changed').length,
          charts: document.querySelectorAll('#charts figure svg').length,
          chartWidth: document.querySelector('#charts figure svg').getBoundingClientRect().width})",
    );
    assert_eq!(found["dag"], 3, "{found}");
    assert_eq!(found["edges"], 2, "{found}");
    assert_eq!(found["stages"], 3, "{found}");
    assert_eq!(found["metrics"], 2, "count and loss: {found}");
    assert_eq!(found["changed"], 1, "{found}");
    assert_eq!(found["charts"], 2, "loss and accuracy, each once: {found}");
    assert!(
        found["chartWidth"].as_f64().unwrap() > 300.0,
        "charts are drawn: {found}"
    );
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
