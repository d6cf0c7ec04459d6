//! The no-op fast path (src/engine/cli/noop.rs): a rerun with nothing changed is answered from
//! the last run's memo, and any change that the full path would see takes the full path.
mod common;

use std::time::{Duration, SystemTime};

use common::{set, stderr, Project};

const PIPELINE: &str = "[stages.a]\nkind = \"cmd\"\ninputs = [\"in.txt\"]\nrun = \"cat in.txt > $NASFLOW_OUT/a.txt\"\n[stages.b]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"cat $NASFLOW_IN_A/a.txt > $NASFLOW_OUT/b.txt\"\n";

const REPLAYED: &str = "nothing changed since the last run";

/// Writes `in.txt` with an mtime a minute ago (inputs touched in the last two seconds are not
/// trusted by their stat, so no memo is written for them).
fn write_input(p: &Project, text: &str) {
    let path = p.path().join("in.txt");
    std::fs::write(&path, text).unwrap();
    let old = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn replayed(p: &Project, args: &[&str]) -> bool {
    let out = p.nasflow(&[&["run"], args].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(common::ran(&out).is_empty(), "{}", stderr(&out));
    stderr(&out).contains(REPLAYED)
}

#[test]
fn a_second_run_with_nothing_changed_is_replayed() {
    let p = Project::new(PIPELINE);
    write_input(&p, "one\n");
    assert_eq!(p.run_ok(&[]), set(&["a", "b"]));
    assert!(p.path().join("results/.noop").is_file());
    let out = p.nasflow(&["run"]);
    assert!(stderr(&out).contains(REPLAYED), "{}", stderr(&out));
    assert_eq!(common::summary(&out, "cached"), set(&["a", "b"]));
    assert!(stderr(&out).contains("] cached a\n"), "{}", stderr(&out));
    // Another target set, --set, -j: each its own fingerprint, the full path first.
    assert!(!replayed(&p, &["b"]));
    assert!(replayed(&p, &["b"]));
    assert!(!replayed(&p, &["-j", "1"]));
    assert!(replayed(&p, &["-j", "1"]));
}

#[test]
fn every_change_the_decisions_read_takes_the_full_path() {
    let p = Project::new(PIPELINE);
    write_input(&p, "one\n");
    p.run_ok(&[]);
    // A declared input rewritten with the same size and an old mtime: its ctime moved.
    write_input(&p, "two\n");
    assert_eq!(p.run_ok(&[]), set(&["a", "b"]));
    assert!(replayed(&p, &[]));
    // The pipeline edited.
    p.write_pipeline(&PIPELINE.replace("b.txt", "c.txt"));
    assert_eq!(p.run_ok(&[]), set(&["b"]));
    assert!(replayed(&p, &[]));
    // A blob gone (the record is then unusable): the full path reruns its stage.
    let blobs = common::files_under(&p.cache().join("blobs"));
    for b in &blobs {
        if std::fs::read(b).unwrap() == b"two\n" {
            std::fs::remove_file(b).unwrap();
        }
    }
    assert!(p.run_ok(&[]).contains("a"));
    assert!(replayed(&p, &[]));
    // A forced rerun (its record replaced) and a failed run leave no memo: the full path.
    assert_eq!(p.run_ok(&["--force", "b"]), set(&["b"]));
    assert!(!replayed(&p, &[]));
    assert!(replayed(&p, &[]));
    p.write_pipeline(&PIPELINE.replace("cat $NASFLOW_IN_A", "exit 3; cat $NASFLOW_IN_A"));
    assert_eq!(p.nasflow(&["run"]).status.code(), Some(1));
    assert!(!p.path().join("results/.noop").exists());
    // An input touched within the last two seconds is not trusted by its stat: no memo.
    p.write_pipeline(PIPELINE);
    std::fs::write(p.path().join("in.txt"), "three\n").unwrap();
    p.run_ok(&[]);
    assert!(!p.path().join("results/.noop").exists());
}
