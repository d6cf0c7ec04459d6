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
        "[stages.a]\nkind = \"preprocess\"\nunseen_valid_fracton = 0.2\n",
        "3:1",
        &[
            "unknown key `unseen_valid_fracton`",
            "did you mean `unseen_valid_fraction`?",
        ],
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
        "[stages.t]\nkind = \"train-vae\"\nepochs = \"two\"\n",
        "3:10",
        &["`epochs` in [stages.t] must be an integer >= 1, not the string \"two\""],
    );
}

/// The values that used to fail only when the stage ran, hours later: now `plan` fails.
#[test]
fn bad_values_fail_at_plan_with_exit_2_located_with_did_you_mean() {
    let toml = "[stages.train-vae]\nkind = \"train-vae\"\n\n[stages.predict]\nkind = \"predict\"\ndeps = [\"train-vae\"]\nregressors = [\"rf\", \"gp\"]\n\n[stages.reinforce]\nkind = \"reinforce\"\ndeps = [\"train-vae\"]\n";
    let p = Project::new(toml);
    let out = p.nasflow(&["plan", "--set", "train-vae.variant=arch2vc"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("--set train-vae.variant=arch2vc: `variant` in [stages.train-vae] must be one of \"io\", \"arch2vec\", \"arch2vec-original\", not \"arch2vc\""), "{err}");
    assert!(err.contains("did you mean `arch2vec`?"), "{err}");
    let out = p.nasflow(&["plan", "--set", "reinforce.seeds=-5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`seeds` in [stages.reinforce] must be an integer >= 1, not -5"),
        "{}",
        stderr(&out)
    );
    let q = Project::new(&toml.replace("\"gp\"]", "\"svm\"]"));
    let out = q.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("pipeline.toml:7:14: `regressors[1]` in [stages.predict] must be one of \"rf\", \"gp\", \"svr\", \"gb\", not \"svm\""), "{err}");
    assert!(err.contains("did you mean `svr`?"), "{err}");
    assert!(!p.cache().exists(), "nothing written to the cache");
}

#[test]
fn a_param_that_names_a_dep_missing_from_deps_fails_at_plan_once() {
    // reinforce reads train-vae's features (`vae`, default "train-vae"): without it in deps.
    let pipeline = "[stages.sample]\nkind = \"sample\"\n[stages.reinforce]\nkind = \"reinforce\"\ndeps = [\"sample\"]\n";
    assert_config_error(
        pipeline,
        "5:8",
        &["`vae = \"train-vae\"` in [stages.reinforce] names stage `train-vae`, which is not in its deps (sample)",
          "add \"train-vae\" to deps"],
    );
    let p = Project::new(&format!("{pipeline}vae = \"sample2\"\n"));
    let out = p.nasflow(&["plan"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pipeline.toml:6:7:"),
        "at the written value: {err}"
    );
    assert_eq!(
        err.matches("names stage `sample2`").count(),
        1,
        "printed once: {err}"
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
        "[stages.a]\nkind = \"train-va\"\n",
        "2:8",
        &["unknown stage kind `train-va`", "did you mean `train-vae`?"],
    );
    // The engine's test kinds are not the binary's.
    let p = Project::new("[stages.a]\nkind = \"test-wrte\"\n");
    let err = stderr(&p.nasflow(&["plan"]));
    assert!(
        err.contains("known kinds: cmd, fetch, sample, pretrain"),
        "{err}"
    );
    assert!(!err.contains("test-write"), "{err}");
}

#[test]
fn a_misspelled_reserved_key_in_a_cmd_stage_is_named() {
    assert_config_error(
        "[stages.a]\nkind = \"cmd\"\nrun = \"true\"\ndep = [\"b\"]\n",
        "4:1",
        &["looks like the reserved key `deps`", "did you mean `deps`?"],
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
    let p = Project::new("[stages.a]\nkind = \"preprocess\"\n");
    let out = p.nasflow(&["plan", "--set", "a.unseen_valid_fraction=many"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--set a.unseen_valid_fraction=many: `unseen_valid_fraction` in [stages.a] must be a number in [0, 1]"),
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
fn a_bad_value_in_a_variant_points_at_the_variant() {
    let p = Project::new("[stages.r]\nkind = \"reinforce\"\n\n[variants.few.r]\nseeds = 0\n");
    let out = p.nasflow(&["plan", "--variant", "few"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pipeline.toml:5:9: [variants.few] r.seeds=0: `seeds` in [stages.r] must be an integer >= 1, not 0"),
        "{}",
        stderr(&out)
    );
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

#[test]
fn fetch_params_and_upstream_paths_are_checked_when_loaded() {
    // A fetch with no digest, and one with a malformed digest: at plan time, placed at the stage.
    let p = Project::new("[stages.d]\nkind = \"fetch\"\nurl = \"x.bin\"\n");
    let out = p.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("needs `sha256` or `md5`"),
        "{}",
        stderr(&out)
    );
    // `@STAGE/...` must name a dependency.
    let p = Project::new(
        "[stages.d]\nkind = \"fetch\"\nurl = \"t.jsonl\"\nsha256 = \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"\n[stages.sample]\nkind = \"sample\"\ntable = \"@d/t.jsonl\"\n",
    );
    let out = p.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("pipeline.toml:7:9")
            && err.contains("not in its deps")
            && err.contains("add \"d\" to deps"),
        "{err}"
    );
    // `gpu` is a cmd stage's key only; `gpus` a list of distinct indices.
    let p = Project::new("[stages.s]\nkind = \"sample\"\ngpu = true\n");
    assert!(stderr(&p.nasflow(&["plan"])).contains("`gpu` is only for kind = \"cmd\""));
    let p = Project::new("[pipeline]\ngpus = [0, 0]\n[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n");
    let out = p.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`pipeline.gpus` must be \"auto\" or a list of GPU indices"),
        "{}",
        stderr(&out)
    );
}
