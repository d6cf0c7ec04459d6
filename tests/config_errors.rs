//! Every bad-config case: an error naming file, line and column and the offending key, a
//! did-you-mean where one fits, exit code 2, and nothing written to the cache.
mod common;

use common::*;

fn assert_config_error(pipeline: &str, line_col: &str, needles: &[&str]) {
    let p = Project::new(pipeline);
    let out = p.nasflow(&["run"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("pipeline.toml:{line_col}:")),
        "expected position {line_col} in: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert!(!p.cache().exists(), "nothing written to the cache");
}

#[test]
fn unknown_key_suggests_the_close_one() {
    assert_config_error(
        "[stages.a]\nkind = \"test-write\"\ntext = \"x\"\nrepaet = 2\n",
        "4:1",
        &["unknown key `repaet`", "did you mean `repeat`?"],
    );
    assert_config_error(
        "[pipeline]\nseeed = 1\n[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n",
        "2:1",
        &["unknown key `seeed`", "did you mean `seed`?"],
    );
}

#[test]
fn wrong_type_names_the_expected_type() {
    assert_config_error(
        "[stages.a]\nkind = \"test-write\"\ntext = \"x\"\nrepeat = \"two\"\n",
        "4:1",
        &["`repeat` in [stages.a] must be integer, not a string"],
    );
}

#[test]
fn unknown_dep_points_at_the_dep() {
    assert_config_error("[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n\n[stages.b]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"aa\"]\n", "8:9", &["unknown dep `aa`", "did you mean `a`?"]);
}

#[test]
fn cycle_is_named() {
    let toml = "[stages.a]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"c\"]\n\n[stages.b]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"a\"]\n\n[stages.c]\nkind = \"cmd\"\nrun = \"true\"\ndeps = [\"b\"]\n";
    assert_config_error(toml, "4:9", &["dependency cycle: a -> b -> c -> a"]);
}

#[test]
fn unknown_kind_suggests_a_known_one() {
    assert_config_error(
        "[stages.a]\nkind = \"test-writ\"\ntext = \"x\"\n",
        "2:8",
        &[
            "unknown stage kind `test-writ`",
            "did you mean `test-write`?",
        ],
    );
}

#[test]
fn missing_required_param_names_it() {
    assert_config_error(
        "[stages.a]\nkind = \"test-write\"\n",
        "1:9",
        &["missing the required param `text`", "add text = ..."],
    );
}

#[test]
fn invalid_toml_is_located() {
    assert_config_error(
        "[stages.a]\nkind = \"cmd\"\nrun = \"true\n",
        "3:12",
        &["invalid TOML"],
    );
}

#[test]
fn bad_set_override_is_a_usage_error() {
    let p = Project::new("[stages.a]\nkind = \"test-write\"\ntext = \"x\"\n");
    let out = p.nasflow(&["plan", "--set", "a.repeat=many"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--set a.repeat=many: `repeat` in [stages.a] must be integer"),
        "{}",
        stderr(&out)
    );
    let out = p.nasflow(&["plan", "--set", "b.repeat=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no stage named `b`"));
    let out = p.nasflow(&["run", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown stage `nope`"));
}

#[test]
fn executor_settings_are_checked_where_they_are_written() {
    let stage = "[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n";
    assert_config_error(
        &format!("[pipeline.executor]\nkind = \"slurm\"\npartion = \"gpu\"\n{stage}"),
        "3:1",
        &[
            "unknown key `partion` in [pipeline.executor]",
            "did you mean `partition`?",
        ],
    );
    assert_config_error(
        &format!("[pipeline.executor]\nkind = \"pbs\"\n{stage}"),
        "2:8",
        &["unknown executor `pbs`", "kind = \"slurm\""],
    );
    assert_config_error(
        &format!("[pipeline.executor]\nkind = \"slurm\"\ngpus_per_item = \"one\"\n{stage}"),
        "3:17",
        &["`pipeline.executor.gpus_per_item` must be a non-negative integer, not string"],
    );
}
