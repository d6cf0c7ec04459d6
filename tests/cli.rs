//! The binaries themselves: help, and the engine staying free of libtorch.
mod common;

#[test]
fn engine_binary_does_not_link_libtorch() {
    // Loading libtorch costs ~300 ms; the engine must start in milliseconds (see stages/src/lib.rs).
    let out = std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_nasflow"))
        .output()
        .expect("ldd");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(!libs.contains("torch"), "nasflow links libtorch:\n{libs}");
}

#[test]
fn worker_probe_reports_devices() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nasflow-worker"))
        .arg("probe")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["libtorch"].as_str().unwrap().split('+').next(),
        Some("2.11.0")
    );
    if std::env::var_os("NASFLOW_EXPECT_CUDA").is_some() {
        assert!(
            v["cuda_devices"].as_u64().unwrap() > 0,
            "CUDA expected but not usable: {v}"
        );
    }
}

#[test]
fn help_lists_the_commands() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nasflow"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "plan", "why", "status", "dag", "show", "gc", "cache"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn params_lists_every_param_of_a_kind_from_its_declaration() {
    let p = common::Project::new("");
    let out = p.nasflow(&["params", "train-vae"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    for name in [
        "variant",
        "epochs",
        "checkpoints",
        "batch_size",
        "lr",
        "grad_clip",
        "k",
        "coef_k",
        "image_channels",
        "images",
        "prior_samples",
        "unlabeled_limit",
        "reference",
        "seed",
        "original_quirks",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(name)),
            "{name}:\n{text}"
        );
    }
    assert!(
        text.contains("one of \"io\", \"arch2vec\", \"arch2vec-original\", default \"io\""),
        "{text}"
    );
    assert!(
        text.contains("seed                   integer >= 0, default unset"),
        "{text}"
    );
    let out = p.nasflow(&["params", "train-va"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("did you mean `train-vae`?"));
}

/// README's param tables are `nasflow params KIND --markdown`, between markers.
#[test]
fn readme_param_tables_agree_with_the_declarations() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let p = common::Project::new("");
    for kind in [
        "sample",
        "pretrain",
        "extract",
        "preprocess",
        "train-vae",
        "reinforce",
        "predict",
    ] {
        let table = common::stdout(&p.nasflow(&["params", kind, "--markdown"]));
        let start = format!("<!-- params {kind} -->\n");
        let at = readme
            .find(&start)
            .unwrap_or_else(|| panic!("README has no `{start}`"));
        let rest = &readme[at + start.len()..];
        let end = rest.find("<!-- /params -->").expect("end marker");
        assert_eq!(
            &rest[..end],
            table,
            "README's {kind} params differ: run scripts/readme-params.sh"
        );
    }
}

#[test]
fn why_compares_with_the_closest_record_after_an_ablation() {
    let toml = "[stages.s]\nkind = \"cmd\"\nseeds = 20\nbudget = 1\nrun = \"cat $NASFLOW_PARAMS > $NASFLOW_OUT/p.json\"\n";
    let p = common::Project::new(toml);
    p.run_ok(&[]);
    p.run_ok(&["--set", "s.seeds=40"]);
    p.write_pipeline(&toml.replace("budget = 1", "budget = 2"));
    let why = common::stdout(&p.nasflow(&["why", "s"]));
    assert!(why.contains("param `budget` changed: 1 -> 2"), "{why}");
    assert!(
        !why.contains("seeds"),
        "the variant's record is not the closest: {why}"
    );
    assert!(why.contains("compared with its closest record"), "{why}");
}

#[test]
fn logs_and_timings_are_provenance_and_do_not_defeat_early_cutoff() {
    let toml = "[stages.a]\nkind = \"cmd\"\nrun = \"echo to-stdout; echo to-stderr >&2; date +%N > $NASFLOW_PROVENANCE/timing.txt; echo same > $NASFLOW_OUT/a.txt\"\n[stages.b]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"ls $NASFLOW_IN_A > $NASFLOW_OUT/seen.txt\"\n";
    let p = common::Project::new(toml);
    assert_eq!(p.run_ok(&[]), common::set(&["a", "b"]));
    assert_eq!(
        p.run_ok(&["--force", "a"]),
        common::set(&["a"]),
        "b sees identical outputs"
    );
    let log = common::stdout(&p.nasflow(&["log", "a"]));
    assert!(
        log.contains("to-stdout") && log.contains("to-stderr"),
        "{log}"
    );
    let show = common::stdout(&p.nasflow(&["show", "a"]));
    assert!(show.contains("timing.txt"), "{show}");
    let seen = common::stdout(&p.nasflow(&["show", "b", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&seen).unwrap();
    let dir = std::path::Path::new(v["out_dir"].as_str().unwrap());
    let listing = std::fs::read_to_string(dir.join("seen.txt")).unwrap();
    assert_eq!(listing, "a.txt\n", "downstream stages see outputs only");
}
