//! The engine's promises, checked on the real binary with `cmd` stages: incremental reruns,
//! early cutoff, item stages, crash safety, concurrent runs, cache verify/export/import. (The
//! engine's own unit tests cover the same with fake native kinds, in-process.)
mod common;

use std::time::{Duration, Instant};

use common::*;

/// The per-item command of [`items`]: sleeps `sleep` seconds, fails on the item whose id is
/// `fail_on`, else writes the item.
const EACH: &str = r#"run = '''
python3 - <<'PY'
import json, os, sys, time
p = json.load(open(os.environ["NASFLOW_PARAMS"]))
it = json.loads(os.environ["NASFLOW_ITEM"])
time.sleep(p["sleep"])
if it["id"] == p["fail_on"]:
    sys.exit("item %s failed on purpose (fail_on)" % json.dumps(it))
open(os.environ["NASFLOW_OUT"] + "/item.txt", "w").write("item %s\n" % json.dumps(it))
PY
'''
"#;

/// `list` writes `n` items `{"id": i}`; `each` runs [`EACH`] once per item (its params, in its
/// key, after the defaults).
fn items(n: usize, each_params: &str) -> String {
    let list = format!(
        "[stages.list]\nkind = \"cmd\"\nrun = \"seq 0 {} | sed 's/.*/{{\\\"id\\\":&}}/' > $NASFLOW_OUT/items.jsonl\"\n",
        n as i64 - 1
    );
    let defaults = ["fail_on = -1", "sleep = 0"]
        .iter()
        .filter(|d| !each_params.starts_with(d.split(' ').next().unwrap()))
        .map(|d| format!("{d}\n"))
        .collect::<String>();
    format!("{list}\n[stages.each]\nkind = \"cmd\"\nforeach = \"list\"\n{defaults}{each_params}\n{EACH}")
}

/// a → b → c, a → d, and e on its own.
const DIAMOND: &str = r#"
[pipeline]
name = "diamond"
seed = 1

[stages.a]
kind = "cmd"
run = "echo a > $NASFLOW_OUT/out.txt"

[stages.b]
kind = "cmd"
deps = ["a"]
repeat = 2
run = "for i in $(seq $(tr -dc 0-9 < $NASFLOW_PARAMS)); do printf b; done > $NASFLOW_OUT/out.txt"

[stages.c]
kind = "cmd"
deps = ["b"]
run = "cat $NASFLOW_IN_B/out.txt > $NASFLOW_OUT/c.txt"

[stages.d]
kind = "cmd"
deps = ["a"]
run = "cat $NASFLOW_IN_A/out.txt > $NASFLOW_OUT/out.txt; echo d >> $NASFLOW_OUT/out.txt"

[stages.e]
kind = "cmd"
run = "echo e > $NASFLOW_OUT/out.txt"
"#;

#[test]
fn status_names_the_cache_it_read_and_creates_nothing() {
    let p = Project::new(DIAMOND);
    let out = p.nasflow(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let cache = std::fs::canonicalize(p.path()).unwrap().join("cache");
    assert!(
        text.contains(&format!("cache {} (does not exist yet", cache.display())),
        "{text}"
    );
    assert!(text.contains("stale"), "{text}");
    assert!(!p.cache().exists(), "status created the cache");
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&p.nasflow(&["status", "--json"]))).unwrap();
    assert_eq!(v["cache_exists"], false);
    assert!(!p.cache().exists());
    p.run_ok(&[]);
    let text = stdout(&p.nasflow(&["status"]));
    assert!(
        text.contains(&format!("cache {}\n", cache.display())),
        "{text}"
    );
    assert!(text.contains("cached"), "{text}");
}

#[test]
fn a_stages_time_is_its_own_and_the_wait_for_a_slot_is_shown_apart() {
    // Two independent stages and one job slot: the second waits for the first's 1.5 s.
    let p = Project::new(
        "[stages.slow]\nkind = \"cmd\"\nrun = \"sleep 1.5\"\n[stages.quick]\nkind = \"cmd\"\nrun = \"sleep 0.1\"\n",
    );
    let out = p.nasflow(&["run", "-j", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let done: Vec<&str> = err.lines().filter(|l| l.contains("done   ")).collect();
    assert_eq!(done.len(), 2, "{err}");
    let waited: Vec<&&str> = done.iter().filter(|l| l.contains("waited")).collect();
    assert_eq!(waited.len(), 1, "one stage waited for the slot: {err}");
    // `done   quick (0.12s; waited 1.51s for a job slot)`: its own time is short.
    let own: f64 = waited[0]
        .split('(')
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    let name = if waited[0].contains("quick") {
        0.1
    } else {
        1.5
    };
    assert!(own < name + 0.9, "{own} s for a stage of {name} s: {err}");
}

#[test]
fn editing_one_param_reruns_exactly_that_stage_and_its_descendants() {
    let p = Project::new(DIAMOND);
    assert_eq!(p.run_ok(&[]), set(&["a", "b", "c", "d", "e"]));
    assert_eq!(p.run_ok(&[]), set(&[]), "a second run recomputes nothing");
    p.write_pipeline(&DIAMOND.replace("repeat = 2", "repeat = 3"));
    let plan = stdout(&p.nasflow(&["plan", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let to_run: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "run")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(to_run, ["b", "c"]);
    let why = stdout(&p.nasflow(&["why", "b"]));
    assert!(why.contains("param `repeat` changed: 2 -> 3"), "{why}");
    assert_eq!(p.run_ok(&[]), set(&["b", "c"]));
    // The output really changed downstream.
    let c = files_under(&p.cache().join("out/c"))
        .into_iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>();
    assert!(c.iter().any(|t| t.contains("bbb")), "{c:?}");
}

#[test]
fn reformatting_and_reordering_the_toml_reruns_nothing() {
    let p = Project::new(DIAMOND);
    p.run_ok(&[]);
    let reordered = r#"
# the same pipeline, reordered, reformatted and commented
[stages.e]
run = "echo e > $NASFLOW_OUT/out.txt"
kind   =   'cmd'

[stages.d]
run = "cat $NASFLOW_IN_A/out.txt > $NASFLOW_OUT/out.txt; echo d >> $NASFLOW_OUT/out.txt"
deps = [ "a" ]
kind = "cmd"

[stages.c]
run = "cat $NASFLOW_IN_B/out.txt > $NASFLOW_OUT/c.txt"
deps = ["b"]
kind = "cmd"

[stages.b]
repeat = 2       # a comment
run = "for i in $(seq $(tr -dc 0-9 < $NASFLOW_PARAMS)); do printf b; done > $NASFLOW_OUT/out.txt"
kind = "cmd"
deps = ["a"]

[stages.a]
kind = "cmd"
run = "echo a > $NASFLOW_OUT/out.txt"

[pipeline]
seed = 1
name = "diamond"
"#;
    p.write_pipeline(reordered);
    assert_eq!(p.run_ok(&[]), set(&[]));
}

#[test]
fn a_native_kinds_params_are_canonical_in_the_key() {
    // Reordered, commented, a float written as an integer, a default written out: same key.
    let base = "[stages.p]\nkind = \"preprocess\"\n";
    let same = "[stages.p]\n# the paper's fraction, written out\nunseen_valid_fraction = 0.1\nkind = \"preprocess\"\n";
    let key = |toml: &str| stdout(&Project::new(toml).nasflow(&["cache", "key"]));
    assert_eq!(key(base), key(same));
    let one = "[stages.t]\nkind = \"train-vae\"\ndeps = []\nlr = 1\n";
    let one_f = "[stages.t]\nkind = \"train-vae\"\ndeps = []\nlr = 1.0\n";
    assert_eq!(key(one), key(one_f));
    assert_ne!(
        key(base),
        key("[stages.p]\nkind = \"preprocess\"\nunseen_valid_fraction = 0.2\n")
    );
}

#[test]
fn early_cutoff_when_a_rerun_stage_produces_identical_outputs() {
    let toml = r#"
[stages.a]
kind = "cmd"
run = "echo same > $NASFLOW_OUT/a.txt"
note = "first"

[stages.b]
kind = "cmd"
deps = ["a"]
run = "cp $NASFLOW_IN_A/a.txt $NASFLOW_OUT/b.txt"
"#;
    let p = Project::new(toml);
    assert_eq!(p.run_ok(&[]), set(&["a", "b"]));
    p.write_pipeline(&toml.replace("first", "second"));
    assert_eq!(
        p.run_ok(&[]),
        set(&["a"]),
        "b is not rerun: a's outputs are byte-identical"
    );
    assert_eq!(p.run_ok(&["--force", "a"]), set(&["a"]));
}

#[test]
fn growing_an_item_list_computes_only_the_new_items() {
    let toml = |n: usize| {
        format!("{}\n[stages.after]\nkind = \"cmd\"\ndeps = [\"each\"]\nrun = \"cat $NASFLOW_IN_EACH/items/*/item.txt > $NASFLOW_OUT/all.txt\"\n", items(n, ""))
    };
    let p = Project::new(&toml(3));
    let out = p.nasflow(&["run"]);
    assert!(
        stderr(&out).contains("items: 3 ran, 0 cached"),
        "{}",
        stderr(&out)
    );
    p.write_pipeline(&toml(5));
    let out = p.nasflow(&["run"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("items: 2 ran, 3 cached"),
        "{}",
        stderr(&out)
    );
    let show: serde_json::Value =
        serde_json::from_slice(&p.nasflow(&["show", "after", "--json"]).stdout).unwrap();
    let all = std::fs::read_to_string(
        std::path::Path::new(show["out_dir"].as_str().unwrap()).join("all.txt"),
    )
    .unwrap();
    assert_eq!(all.lines().count(), 5, "{all}");
    assert_eq!(show["current"], true);
}

#[test]
fn force_recomputes_every_item_of_an_item_level_stage() {
    let p = Project::new(&items(3, ""));
    p.run_ok(&[]);
    let out = p.nasflow(&["run", "--force", "each"]);
    assert!(
        stderr(&out).contains("items: 3 ran, 0 cached"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failed_item_fails_the_stage_but_keeps_finished_items() {
    let toml = items(4, "fail_on = 2");
    let p = Project::new(&toml);
    let out = p.nasflow(&["run", "-j", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("failed on purpose"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(p.cache().join("items/each"))
            .unwrap()
            .count(),
        3
    );
    assert!(!p.cache().join("records/each").exists());
    p.write_pipeline(&toml.replace("fail_on = 2", "fail_on = -1"));
    // fail_on is a param, so the items' keys change: this checks the stage completes after a fix.
    assert_eq!(p.run_ok(&[]), set(&["each"]));
}

#[test]
fn a_failing_cmd_reports_its_stderr_and_exits_1() {
    let p = Project::new("[stages.a]\nkind = \"cmd\"\nrun = \"echo something broke >&2; exit 3\"\n\n[stages.b]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"true\"\n");
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("exit code 3") && err.contains("something broke"),
        "{err}"
    );
    assert!(err.contains("skipped (upstream `a` failed)"), "{err}");
    assert!(!p.cache().join("records/a").exists());
}

#[test]
fn kill_9_mid_stage_keeps_finished_items_and_leaves_no_corrupt_record() {
    let p = Project::new(&items(6, "sleep = 0.4"));
    let mut child = p
        .cmd(&["run", "-j", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let items = p.cache().join("items/each");
    let start = Instant::now();
    while std::fs::read_dir(&items).map(|d| d.count()).unwrap_or(0) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "items never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !p.cache().join("records/each").exists(),
        "no record for an unfinished stage"
    );
    let kept = std::fs::read_dir(&items).unwrap().count();
    assert!((2..6).contains(&kept), "{kept}");
    let out = p.nasflow(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("items: {} ran, {kept} cached", 6 - kept)),
        "{}",
        stderr(&out)
    );
    let verify = p.nasflow(&["cache", "verify"]);
    assert!(
        stdout(&verify).contains(", 0 corrupt"),
        "{}",
        stdout(&verify)
    );
    // The killed run's staging directory was swept.
    let tmp: Vec<_> = std::fs::read_dir(p.cache().join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn two_concurrent_runs_compute_each_stage_once() {
    let p = Project::new("[stages.slow]\nkind = \"cmd\"\nrun = \"echo x >> ../count.txt; sleep 1; echo done > $NASFLOW_OUT/out.txt\"\n\n[stages.next]\nkind = \"cmd\"\ndeps = [\"slow\"]\nrun = \"cp $NASFLOW_IN_SLOW/out.txt $NASFLOW_OUT/\"\n");
    std::fs::create_dir(p.path().join("proj")).unwrap();
    std::fs::rename(
        p.path().join("pipeline.toml"),
        p.path().join("proj/pipeline.toml"),
    )
    .unwrap();
    let spawn = || {
        p.cmd(&["-p", "proj/pipeline.toml", "run"])
            .current_dir(p.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    // cmd stages run in the project directory (proj/), so ../count.txt is beside it.
    let count = std::fs::read_to_string(p.path().join("count.txt")).unwrap();
    assert_eq!(
        count.lines().count(),
        1,
        "the slow stage ran once across both processes"
    );
    let ran_a = ran(&a).contains("slow");
    let ran_b = ran(&b).contains("slow");
    assert!(ran_a ^ ran_b);
}

#[test]
fn a_corrupted_blob_is_caught_by_verify_and_recomputed() {
    let p = Project::new(DIAMOND);
    p.run_ok(&[]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(files_under(&p.cache().join("records/d"))[0].clone()).unwrap(),
    )
    .unwrap();
    let digest = record["files"][0]["digest"].as_str().unwrap().to_string();
    let blob = p
        .cache()
        .join("blobs")
        .join(&digest[..2])
        .join(&digest[2..]);
    let mut perm = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&blob, perm).unwrap();
    std::fs::write(&blob, "bit rot").unwrap();
    let out = p.nasflow(&["cache", "verify"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("1 corrupt"), "{}", stdout(&out));
    assert!(stderr(&out).contains(&digest));
    assert_eq!(p.run_ok(&[]), set(&["d"]));
    let d = files_under(&p.cache().join("out/d"))
        .into_iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<String>();
    assert!(d.contains("a\nd"), "{d}");
}

#[test]
fn export_then_import_into_an_empty_cache_runs_nothing() {
    let p = Project::new(DIAMOND);
    p.run_ok(&[]);
    let bundle = p.path().join("bundle.tar");
    let out = p.nasflow(&["cache", "export", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let q = Project::new(DIAMOND);
    let out = q.nasflow(&["cache", "import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(q.run_ok(&[]), set(&[]));
    // A tampered bundle is rejected blob by blob.
    let mut bytes = std::fs::read(&bundle).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"a\nd\n")
        .expect("d's text in the bundle");
    bytes[at + 2] = b'z';
    std::fs::write(&bundle, bytes).unwrap();
    let r = Project::new(DIAMOND);
    let out = r.nasflow(&["cache", "import", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn gc_keeps_what_the_pipeline_needs() {
    let p = Project::new(DIAMOND);
    p.run_ok(&[]);
    for n in 3..7 {
        p.write_pipeline(&DIAMOND.replace("repeat = 2", &format!("repeat = {n}")));
        p.run_ok(&[]);
    }
    let out = p.nasflow(&["gc", "--keep", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("removed 8 records"),
        "{}",
        stdout(&out)
    );
    assert_eq!(p.run_ok(&[]), set(&[]));
}

#[test]
fn declared_inputs_are_hashed_by_content() {
    let p = Project::new("[stages.a]\nkind = \"cmd\"\ninputs = [\"data\"]\nrun = \"cat data/*.txt > $NASFLOW_OUT/all.txt\"\n");
    std::fs::create_dir(p.path().join("data")).unwrap();
    std::fs::write(p.path().join("data/x.txt"), "1").unwrap();
    assert_eq!(p.run_ok(&[]), set(&["a"]));
    // Touching without changing content reruns nothing.
    std::fs::write(p.path().join("data/x.txt"), "1").unwrap();
    assert_eq!(p.run_ok(&[]), set(&[]));
    std::fs::write(p.path().join("data/x.txt"), "2").unwrap();
    let why = stdout(&p.nasflow(&["why", "a"]));
    assert!(why.contains("input `data` changed"), "{why}");
    assert_eq!(p.run_ok(&[]), set(&["a"]));
}

#[test]
fn cuda_asked_without_cuda_is_an_error_not_a_fallback() {
    if std::env::var_os("NASFLOW_EXPECT_CUDA").is_some() {
        return; // on a GPU machine this pipeline is valid
    }
    let p = Project::new(
        "[pipeline]\ndevice = \"cuda\"\n\n[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n",
    );
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("device `cuda:0` was asked for"),
        "{}",
        stderr(&out)
    );
    assert!(!p.cache().join("records/a").exists());
}

#[test]
fn dag_renders_text_dot_and_mermaid() {
    let p = Project::new(DIAMOND);
    let text = stdout(&p.nasflow(&["dag"]));
    assert!(text.contains("c (cmd) <- b"), "{text}");
    let dot = stdout(&p.nasflow(&["dag", "--format", "dot"]));
    assert!(dot.contains("\"a\" -> \"b\";"), "{dot}");
    let mermaid = stdout(&p.nasflow(&["dag", "--format", "mermaid"]));
    assert!(mermaid.contains("a --> d"), "{mermaid}");
}
