//! Config errors on the engine's test kinds: typed params checked at load, located.
use super::*;
use crate::testkit;

fn parse_str(text: &str, overrides: &[&str]) -> Result<Pipeline, ConfigError> {
    let o: Vec<Override> = overrides.iter().map(|s| s.parse().unwrap()).collect();
    parse(
        Path::new("pipeline.toml"),
        text,
        &Registry::from(testkit::register),
        &o,
    )
}

#[test]
fn params_are_canonical_with_defaults_filled() {
    let p = parse_str(
        "[stages.a]\nkind = \"test-write\"\ntext = \"x\"\nscale = 2\n",
        &[],
    )
    .unwrap();
    let a = p.stage("a").unwrap();
    assert!(
        a.params["scale"].is_f64(),
        "an integer for a float param is a float"
    );
    assert_eq!(
        a.params["repeat"],
        serde_json::json!(1),
        "defaults are filled in"
    );
    assert_eq!(a.params["mode"], serde_json::json!("plain"));
}

#[test]
fn overrides_are_typed_by_the_declaration() {
    let toml = "[stages.a]\nkind = \"test-write\"\ntext = \"x\"\n";
    let p = parse_str(toml, &["a.repeat=4", "a.text=hello"]).unwrap();
    assert_eq!(p.stage("a").unwrap().params["repeat"], serde_json::json!(4));
    assert_eq!(
        p.stage("a").unwrap().params["text"],
        serde_json::json!("hello")
    );
    assert!("no-equals".parse::<Override>().is_err());
}

#[test]
fn bad_values_fail_at_load_with_the_place_and_a_fix() {
    let toml = "[stages.a]\nkind = \"test-write\"\nmode = \"lod\"\n";
    let e = parse_str(toml, &[]).unwrap_err().to_string();
    assert!(e.starts_with("pipeline.toml:3:8: `mode` in [stages.a] must be one of \"plain\", \"loud\", not \"lod\""), "{e}");
    assert!(e.contains("did you mean `loud`?"), "{e}");
    let e = parse_str("[stages.a]\nkind = \"test-write\"\n", &["a.repeat=0"]).unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "--set a.repeat=0: `repeat` in [stages.a] must be an integer >= 1, not 0"
    );
    let e = parse_str("[stages.a]\nkind = \"test-write\"\nrepaet = 2\n", &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("pipeline.toml:3:1: unknown key `repaet`"),
        "{e}"
    );
    assert!(e.to_string().contains("did you mean `repeat`?"), "{e}");
}

#[test]
fn foreach_implies_the_dep() {
    let p = parse_str("[stages.l]\nkind = \"test-items\"\ncount = 1\n[stages.e]\nkind = \"test-item\"\nforeach = \"l\"\n", &[]).unwrap();
    assert_eq!(p.stage("e").unwrap().deps, vec!["l".to_string()]);
    let err = parse_str("[stages.e]\nkind = \"test-item\"\n", &[]).unwrap_err();
    assert!(err.to_string().contains("needs `foreach`"), "{err}");
}

#[test]
fn positions_are_line_and_column() {
    let err = parse_str(
        "[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n  [pipeline]\n  jobs = 0\n",
        &[],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("pipeline.toml:5:10: `pipeline.jobs` must be a positive integer"),
        "{err}"
    );
}

#[test]
fn run_is_only_for_cmd() {
    let err = parse_str("[stages.a]\nkind = \"test-write\"\nrun = \"ls\"\n", &[]).unwrap_err();
    assert!(
        err.to_string().contains("`run` is only for kind = \"cmd\""),
        "{err}"
    );
}

#[test]
fn a_misspelled_reserved_key_in_a_cmd_stage_is_an_error() {
    for (key, fix) in [("dep", "deps"), ("input", "inputs"), ("Kind", "kind")] {
        let toml = format!("[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n{key} = [\"b\"]\n");
        let e = parse_str(&toml, &[]).unwrap_err().to_string();
        assert!(e.starts_with("pipeline.toml:4:1:"), "{e}");
        assert!(e.contains(&format!("did you mean `{fix}`?")), "{e}");
    }
    let ok = parse_str(
        "[stages.a]\nkind = \"cmd\"\nrun = \"true\"\nnote = \"x\"\n",
        &[],
    );
    assert!(ok.is_ok(), "other keys are a cmd stage's params");
}

#[test]
fn a_bad_variant_value_points_at_the_variant() {
    let text = "[stages.a]\nkind = \"test-write\"\n[variants.v.a]\nrepeat = -2\n";
    let v = crate::variants::parse(Path::new("pipeline.toml"), text).unwrap();
    let e = parse_str(text, &[]).and_then(|_| {
        parse(
            Path::new("pipeline.toml"),
            text,
            &Registry::from(testkit::register),
            &v[0].overrides,
        )
    });
    let e = e.unwrap_err().to_string();
    assert!(e.starts_with("pipeline.toml:4:10: [variants.v] a.repeat=-2: `repeat` in [stages.a] must be an integer >= 1"), "{e}");
}

#[test]
fn stage_names_are_bounded_and_do_not_collide_in_the_environment() {
    let e = parse_str(
        &format!(
            "[stages.{}]\nkind = \"cmd\"\nrun = \"true\"\n",
            "s".repeat(300)
        ),
        &[],
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("must have 1 to 64 characters"),
        "{e}"
    );
    let e = parse_str("[stages.x-y]\nkind = \"cmd\"\nrun = \"true\"\n[stages.X_Y]\nkind = \"cmd\"\nrun = \"true\"\n", &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("`x-y` and `X_Y` both give NASFLOW_IN_X_Y"),
        "{e}"
    );
    assert!(e.to_string().starts_with("pipeline.toml:4:9:"), "{e}");
}

#[test]
fn an_empty_cache_setting_is_an_error() {
    let e = parse_str(
        "[pipeline]\ncache = \"\"\n[stages.a]\nkind = \"cmd\"\nrun = \"true\"\n",
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("`pipeline.cache` is empty"), "{e}");
}

/// Every input a fuzz run found that crashed nasflow (tests/fuzz/regressions/pipeline_toml):
/// now an error, never a panic. The first is toml_edit's "all items have spans" panic.
#[test]
fn fuzz_regressions_are_errors_not_panics() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/regressions/pipeline_toml");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let r = std::panic::catch_unwind(|| parse_str(text, &[]).map(|_| ()));
        let r = r.unwrap_or_else(|_| panic!("{} panics the parser", path.display()));
        let e = r.expect_err("a crashing input is not a valid pipeline");
        assert!(e.to_string().contains("invalid TOML"), "{e}");
        n += 1;
    }
    assert!(n >= 1, "the regression inputs are in {}", dir.display());
}
