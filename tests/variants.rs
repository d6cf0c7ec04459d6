//! Variants and sweeps declared in pipeline.toml, `nasflow cache key`, and a CI cache round trip
//! (run, export, a fresh checkout imports and runs nothing), through the binary.
mod common;

use common::{set, stderr, stdout, Project};

/// `b` writes its `y` param as its summary number.
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
run = "python3 -c 'import json,os; p=json.load(open(os.environ[\"NASFLOW_PARAMS\"])); json.dump({\"v\": p[\"y\"]}, open(os.environ[\"NASFLOW_OUT\"] + \"/summary.json\", \"w\"))'"

[stages.c]
kind = "cmd"
deps = ["b"]
run = "cat $NASFLOW_IN_B/summary.json > $NASFLOW_OUT/out.txt"

[variants.big.b]
y = 5

[sweeps.ys.b]
y = [2, 3]
"#;

#[test]
fn variants_share_upstream_results_and_show_side_by_side() {
    let p = Project::new(PIPELINE);
    assert_eq!(p.run_ok(&[]), set(&["a", "b", "c"]));
    // Every variant reuses `a`; each computes its own `b` and `c`.
    let out = p.nasflow(&["run", "--variants"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for v in [
        "== variant big",
        "== variant ys[b.y=2]",
        "== variant ys[b.y=3]",
    ] {
        assert!(err.contains(v), "{err}");
    }
    assert_eq!(err.matches("cached a").count(), 3, "{err}");
    // A second time everything is cached; a sweep is selected by its name.
    assert_eq!(p.run_ok(&["--variant", "ys"]), set(&[]));
    assert_eq!(p.run_ok(&["--variant", "big", "c"]), set(&[]));

    let out = p.nasflow(&["metrics", "b", "--variants"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text.lines().find(|l| l.starts_with("b ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["b", "v", "1", "5", "+4", "2", "+1", "3", "+2"],
        "{text}"
    );

    // The sweep's points as replicates: mean and bootstrapped interval of b's number.
    let out = p.nasflow(&["metrics", "b", "--variant", "ys", "--aggregate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let row = text.lines().find(|l| l.starts_with("b ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["b", "v", "2.500", "[2,", "3]", "2"], "{text}");
    assert!(text.lines().next().unwrap().contains("mean of 2"), "{text}");
    let out = p.nasflow(&["metrics", "b", "--variant", "ys", "--aggregate", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["aggregate"]["stages"]["b"]["numbers"]["v"]["values"],
        serde_json::json!([2.0, 3.0])
    );

    // why takes one variant.
    let out = p.nasflow(&["plan", "--variant", "big"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().all(|l| l.starts_with("cached")),
        "{}",
        stdout(&out)
    );
    // A sweep: plan and status show each point.
    let out = p.nasflow(&["plan", "--variant", "ys"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("== variant ys[b.y=2]") && text.contains("== variant ys[b.y=3]"),
        "{text}"
    );
    let out = p.nasflow(&["status", "--variants"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).matches("== variant").count(),
        3,
        "{}",
        stdout(&out)
    );
    let out = p.nasflow(&["why", "c", "--variant", "ys"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("takes one variant"),
        "{}",
        stderr(&out)
    );
    let out = p.nasflow(&["run", "--variant", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("declared: big, ys[b.y=2], ys[b.y=3]"),
        "{}",
        stderr(&out)
    );
    // A variant's bad param is a config error, as with --set, placed where the variant sets it.
    p.write_pipeline(&format!("{PIPELINE}\n[variants.bad.a]\ndep = 1\n"));
    let out = p.nasflow(&["run", "--variant", "bad"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did you mean `deps`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_restored_cache_recomputes_nothing_and_an_edit_only_its_downstream() {
    // CI on main: run, compute the cache key, export the cache.
    let ci1 = Project::new(PIPELINE);
    let key = |p: &Project| {
        let out = p.nasflow(&["cache", "key"]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let k1 = key(&ci1);
    assert!(k1.starts_with("nasflow-") && k1.len() == 40, "{k1}");
    ci1.run_ok(&[]);
    assert_eq!(key(&ci1), k1, "the key does not depend on what has run");
    let bundle = ci1.path().join("cache.tar");
    let out = ci1.nasflow(&["cache", "export", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The next CI run: a fresh checkout, same key, restore, run: nothing recomputed.
    let ci2 = Project::new(PIPELINE);
    assert_eq!(key(&ci2), k1);
    let out = ci2.nasflow(&["cache", "import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci2.run_ok(&[]), set(&[]));

    // A commit that edits one param: a new key, and only the stages downstream of it run.
    let edited = PIPELINE.replacen("y = 1", "y = 7", 1);
    let ci3 = Project::new(&edited);
    assert_ne!(key(&ci3), k1);
    let out = ci3.nasflow(&["cache", "import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci3.run_ok(&[]), set(&["b", "c"]));

    // A partial bundle (only `a` and what it needs) is usable: the rest computes.
    let part = ci1.path().join("a.tar");
    let out = ci1.nasflow(&["cache", "export", part.to_str().unwrap(), "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ci4 = Project::new(PIPELINE);
    let out = ci4.nasflow(&["cache", "import", part.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ci4.run_ok(&[]), set(&["b", "c"]));
    // Keys of a target cover only its upstream.
    let out = ci4.nasflow(&["cache", "key", "a"]);
    let ka = stdout(&out).trim().to_string();
    let ci5 = Project::new(&edited);
    assert_eq!(stdout(&ci5.nasflow(&["cache", "key", "a"])).trim(), ka);
}

/// Four sweep points after one shared stage; each point logs when it ran (outside the cache).
const PARALLEL: &str = r#"
[stages.shared]
kind = "cmd"
run = "echo ran >> log/shared.txt; echo s > $NASFLOW_OUT/s.txt"

[stages.point]
kind = "cmd"
deps = ["shared"]
x = 0
run = "s=$(date +%s%N); sleep 1; echo \"$(python3 -c 'import json,os;print(json.load(open(os.environ[\"NASFLOW_PARAMS\"]))[\"x\"])') $s $(date +%s%N)\" >> log/points.txt; echo done > $NASFLOW_OUT/p.txt"

[sweeps.xs.point]
x = [1, 2, 3, 4]
"#;

#[test]
fn sweep_points_run_at_the_same_time_and_shared_stages_once() {
    let p = Project::new(PARALLEL);
    std::fs::create_dir(p.path().join("log")).unwrap();
    let out = p.nasflow(&["run", "--variant", "xs", "-j", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let shared = std::fs::read_to_string(p.path().join("log/shared.txt")).unwrap();
    assert_eq!(
        shared.lines().count(),
        1,
        "the shared stage ran once:\n{err}"
    );
    let points: Vec<(u64, u128, u128)> = std::fs::read_to_string(p.path().join("log/points.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].parse().unwrap(),
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
            )
        })
        .collect();
    let mut xs: Vec<u64> = points.iter().map(|p| p.0).collect();
    xs.sort();
    assert_eq!(xs, [1, 2, 3, 4]);
    // Every point started before any finished: the four intervals overlap.
    let last_start = points.iter().map(|p| p.1).max().unwrap();
    let first_end = points.iter().map(|p| p.2).min().unwrap();
    assert!(last_start < first_end, "{points:?}\n{err}");
    // Lines are tagged with their variant; each variant's summary is printed whole.
    for x in 1..=4 {
        assert!(
            err.contains(&format!("== variant xs[point.x={x}]")),
            "{err}"
        );
        assert!(
            err.contains(&format!("[xs[point.x={x}]] run    point")),
            "{err}"
        );
    }
    assert_eq!(p.run_ok(&["--variant", "xs"]), set(&[]), "then all cached");
}
