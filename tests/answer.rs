//! Seeing the answer, through the binary: `results/` links, `show --path`, `nasflow plots` over
//! variants (chart data written by a plain cmd stage: the form is the engine's, not NAS's),
//! `metrics --format/--changed`, and finding pipeline.toml from a subdirectory or `-p DIR`.
mod common;

use common::{ran, set, stderr, stdout, Project};

/// `b` writes a summary (an integer and a float) and a chart whose line depends on its `y`.
const PIPELINE: &str = r#"
[pipeline]
seed = 1

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
chart = {"title": "loss", "x_label": "epoch", "y_label": "loss",
         "series": [{"name": "train", "line": [[1, 1.0], [2, 0.5 / p["y"]]]},
                    {"name": "baseline", "group": "train", "dashed": True, "line": [[1, 0.8], [2, 0.8]]}]}
json.dump(chart, open(out + "/charts/loss.json", "w"))
'"""

[variants.big.b]
y = 4
"#;

#[test]
fn results_links_follow_the_current_outputs_and_gc_prunes_them() {
    let p = Project::new(PIPELINE);
    let out = p.nasflow(&["run"]);
    assert_eq!(ran(&out), set(&["a", "b"]));
    // A run ends pointing to results/ and the next commands; so does its no-op replay.
    for out in [out, p.nasflow(&["run"])] {
        let err = stderr(&out);
        let tail: Vec<&str> = err.lines().rev().take(2).collect();
        assert!(
            tail[0].starts_with("next: nasflow metrics | nasflow report | nasflow plots"),
            "{err}"
        );
        assert!(
            tail[1].starts_with("results: ") && tail[1].contains("results"),
            "{err}"
        );
    }
    let link = p.path().join("results/b");
    let target = std::fs::read_link(&link).expect("results/b is a link");
    assert!(link.join("summary.json").exists(), "{}", target.display());
    assert_eq!(
        std::fs::read_to_string(p.path().join("results/.gitignore")).unwrap(),
        "*\n"
    );
    let out = p.nasflow(&["show", "--path", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = std::path::PathBuf::from(stdout(&out).trim());
    assert_eq!(
        std::fs::canonicalize(&shown).unwrap(),
        std::fs::canonicalize(&target).unwrap()
    );

    // A --set run leaves results/ to pipeline.toml's results and says where its own are; a
    // plain show keeps showing pipeline.toml's, a show with the same --set this run's.
    let out = p.nasflow(&["run", "--set", "b.y=7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("results/ keeps showing pipeline.toml's results"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        target,
        "results/b unchanged"
    );
    let set_dir = stdout(&p.nasflow(&["show", "--path", "b", "--set", "b.y=7"]));
    let set_dir = std::fs::canonicalize(set_dir.trim()).unwrap();
    assert_ne!(set_dir, std::fs::canonicalize(&target).unwrap());
    let line = err
        .lines()
        .skip_while(|l| !l.starts_with("note: --set run"))
        .find(|l| l.trim_start().starts_with("b "))
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(
        std::fs::canonicalize(line.split_whitespace().nth(1).unwrap()).unwrap(),
        set_dir
    );
    let plain = stdout(&p.nasflow(&["show", "--path", "b"]));
    assert_eq!(
        std::fs::canonicalize(plain.trim()).unwrap(),
        std::fs::canonicalize(&target).unwrap()
    );
    // metrics, like show: pipeline.toml's result plain, this run's with the same --set.
    let plain = stdout(&p.nasflow(&["metrics", "--all", "--format", "csv", "--filter", "loss"]));
    assert!(plain.lines().nth(1).unwrap().ends_with(",0.5"), "{plain}");
    let with_set = stdout(&p.nasflow(&[
        "metrics", "--all", "--format", "csv", "--filter", "loss", "--set", "b.y=7",
    ]));
    let row = with_set.lines().nth(1).unwrap();
    assert!(row.contains(",0.0714"), "{with_set}");
    let status = stdout(&p.nasflow(&["status"]));
    assert!(
        status.contains("b ") && status.contains("cached"),
        "{status}"
    );

    // A variant's links live under results/VARIANT/; the base links stay.
    assert_eq!(p.run_ok(&["--variant", "big"]), set(&["b"]));
    let big = p.path().join("results/big/b");
    assert_ne!(std::fs::read_link(&big).unwrap(), target);
    assert_eq!(std::fs::read_link(&link).unwrap(), target);

    // An edit reruns b and moves the link; gc then removes what only the old link pointed at.
    p.write_pipeline(&PIPELINE.replace("y = 1\n", "y = 2\n"));
    assert_eq!(p.run_ok(&[]), set(&["b"]));
    let moved = std::fs::read_link(&link).unwrap();
    assert_ne!(moved, target);
    let out = p.nasflow(&["gc", "--keep", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(link.exists(), "the current result's link is kept");
    assert!(
        std::fs::symlink_metadata(&big).is_err(),
        "the variant's removed result: link gone"
    );
}

#[test]
fn plots_overlay_variants_from_chart_data() {
    let p = Project::new(PIPELINE);
    p.run_ok(&["--variants"]);
    p.run_ok(&[]);
    let out = p.nasflow(&["plots", "b", "--variants"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(p.path().join("plots/b/loss.svg")).unwrap();
    // Variants are labelled by what differs; a series the same in every source is drawn once.
    for name in [
        "base: train",
        "big (y=4): train",
        "baseline (same in all sources)",
    ] {
        assert!(
            svg.contains(&format!("\n{name}\n")),
            "{name} in the overlay's legend"
        );
    }
    assert!(p.path().join("plots/b/loss.png").exists());
    // One pipeline alone: its chart as it is, into -o DIR.
    let out = p.nasflow(&["plots", "-o", "figs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(p.path().join("figs/b/loss.svg")).unwrap();
    assert!(svg.contains("\ntrain\n") && !svg.contains("base: train"));
    // Garbage chart data is an error naming the file, not a panic.
    let broken = PIPELINE.replace(
        "json.dump(chart,",
        "open(out + \"/charts/bad.json\", \"w\").write(\"[1\"); json.dump(chart,",
    );
    p.write_pipeline(&broken);
    p.run_ok(&["b"]);
    let out = p.nasflow(&["plots", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("charts/bad.json"), "{}", stderr(&out));
}

#[test]
fn metrics_formats_keep_integers_and_show_what_changed() {
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    p.run_ok(&["--variants"]);
    let out = p.nasflow(&["metrics", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = rows.iter().find(|r| r["metric"] == "count").unwrap();
    assert_eq!(
        count["value"].to_string(),
        "10",
        "an integer stays an integer"
    );
    assert_eq!(count["stage"], "b");
    let out = p.nasflow(&["metrics", "--variants", "--format", "csv", "--changed"]);
    let csv = stdout(&out);
    assert_eq!(csv.lines().next(), Some("stage,column,metric,unit,value"));
    assert!(
        csv.lines()
            .any(|l| l.starts_with("b,variant big,loss,") && l.ends_with(",0.125"))
            && !csv.contains(",count,"),
        "{csv}"
    );
    // --filter: by metric name or STAGE.NAME, globs; stages without a match are left out.
    let out = p.nasflow(&["metrics", "--filter", "lo?s", "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = stdout(&out);
    assert!(csv.lines().skip(1).all(|l| l.contains(",loss,")), "{csv}");
    assert!(csv.lines().count() > 1, "{csv}");
    let out = p.nasflow(&["metrics", "--filter", "b.c*"]);
    let table = stdout(&out);
    assert!(
        table.contains("count") && !table.contains("loss"),
        "{table}"
    );
    let out = p.nasflow(&["metrics", "--filter", "[oops"]);
    assert_eq!(out.status.code(), Some(1), "a bad glob is an error");
    assert!(
        stderr(&out).contains("--filter \"[oops\" is not a glob"),
        "{}",
        stderr(&out)
    );
    let out = p.nasflow(&["metrics", "--variants", "b"]);
    assert!(
        out.status.success(),
        "--variants takes no value: {}",
        stderr(&out)
    );
    let table = stdout(&out);
    assert!(
        table.contains("variant big") && table.contains("0.5000"),
        "{table}"
    );
    // Wider than the terminal: the long form, one line per column.
    let mut cmd = p.cmd(&["metrics", "--variants"]);
    let out = cmd.env("COLUMNS", "30").output().unwrap();
    let long = stdout(&out);
    assert!(
        long.lines().next().unwrap().starts_with("stage  metric"),
        "{long}"
    );
    assert!(
        long.lines()
            .any(|l| l.contains("variant big") && l.contains("-0.3750")),
        "{long}"
    );
}

#[test]
fn the_pipeline_is_found_from_a_subdirectory_and_by_directory() {
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    let sub = p.path().join("notes/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = p.cmd(&["status"]);
    let out = cmd.current_dir(&sub).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("b"), "{}", stdout(&out));
    let dir = p.path().to_str().unwrap();
    let mut cmd = p.cmd(&["-p", dir, "plan"]);
    let out = cmd.current_dir("/").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("cached"), "{}", stdout(&out));
}

#[test]
fn a_missing_table_file_names_its_line_and_where_it_was_looked_for() {
    let p = Project::new(
        "[stages.s]\nkind = \"sample\"\ncells = 100\n\n[stages.t]\nkind = \"sample\"\ncells = 100\ntrain_nets = 1\nvalid_nets = 1\ntable = \"tables/nope.jsonl\"\n",
    );
    let out = p.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let resolved = p.path().join("tables/nope.jsonl");
    assert!(
        err.contains("pipeline.toml:10: stage `t`: param `table` = `tables/nope.jsonl`"),
        "{err}"
    );
    assert!(
        err.contains(&format!("resolved to {}", resolved.display())),
        "{err}"
    );
}
