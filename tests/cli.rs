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
