//! Helpers for tests that drive the real `nasflow` binary on temporary directories.
#![allow(dead_code)]
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Two stages, `b` after `a`: the smallest pipeline with an upstream.
pub const TWO_STAGES: &str = r#"
[stages.a]
kind = "cmd"
run = "echo a > $NASFLOW_OUT/out.txt"
[stages.b]
kind = "cmd"
deps = ["a"]
run = "cat $NASFLOW_IN_A/out.txt > $NASFLOW_OUT/out.txt; echo b >> $NASFLOW_OUT/out.txt"
"#;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(pipeline: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pipeline.toml"), pipeline).expect("write pipeline");
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    pub fn write_pipeline(&self, pipeline: &str) {
        std::fs::write(self.path().join("pipeline.toml"), pipeline).expect("write pipeline");
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nasflow"));
        c.args(args)
            .current_dir(self.path())
            .env("NASFLOW_PLAIN", "1")
            .env_remove("NASFLOW_PIPELINE");
        c
    }

    pub fn nasflow(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run nasflow")
    }

    /// Runs `nasflow run ARGS`, asserts success, and returns the stages that ran.
    /// A stage's current output directory (`nasflow show STAGE --json`).
    pub fn out_dir(&self, stage: &str) -> PathBuf {
        let out = self.nasflow(&["show", stage, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        PathBuf::from(v["out_dir"].as_str().unwrap())
    }

    pub fn run_ok(&self, args: &[&str]) -> BTreeSet<String> {
        let out = self.nasflow(&[&["run"], args].concat());
        assert!(
            out.status.success(),
            "nasflow run failed:\n{}",
            stderr(&out)
        );
        ran(&out)
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The stages the run summary lists as `ran`.
pub fn ran(out: &Output) -> BTreeSet<String> {
    summary(out, "ran")
}

pub fn summary(out: &Output, status: &str) -> BTreeSet<String> {
    stderr(out)
        .lines()
        .skip_while(|l| !l.starts_with("summary:"))
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            (l.starts_with("  ") && w.next() == Some(status)).then(|| name.to_string())
        })
        .collect()
}

pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The whole NB101 space enumerated through the CLI into `dir/space.nb101`.
pub fn enumerated_space(dir: &Path) -> PathBuf {
    let space = dir.join("space.nb101");
    let out = Project::new("").nasflow(&["nb101", "enumerate", "--out", space.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("423624 unique cells in "),
        "{}",
        stdout(&out)
    );
    space
}

/// Files under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

/// A JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON-lines file, a value a line.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}
