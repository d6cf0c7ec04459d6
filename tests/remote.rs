//! The directory remote (a cache on a shared filesystem): `run --remote`, `cache push/pull`,
//! corrupt blobs, and a remote that disappears mid-run, through the binary.
mod common;

use common::{set, stderr, Project};

const PIPELINE: &str = common::TWO_STAGES;

#[test]
fn a_second_machine_fetches_instead_of_computing() {
    let remote = tempfile::tempdir().unwrap();
    let r = remote.path().join("shared");
    let rs = r.to_str().unwrap();
    let a = Project::new(PIPELINE);
    assert_eq!(a.run_ok(&["--remote", rs]), set(&["a", "b"]));
    let b = Project::new(PIPELINE);
    let out = b.nasflow(&["run", "--remote", rs]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("fetched 2 records"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), set(&[]));
    // push/pull by hand: an edited pipeline pushes its new `b`; a third machine pulls it.
    let edited = PIPELINE.replace("echo b >>", "echo b2 >>");
    let c = Project::new(&edited);
    assert_eq!(c.run_ok(&[]), set(&["a", "b"]));
    let out = c.nasflow(&["cache", "push", rs]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploaded 1 records"),
        "{}",
        stderr(&out)
    );
    let d = Project::new(&edited);
    let out = d.nasflow(&["cache", "pull", rs]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(d.run_ok(&[]), set(&[]));
}

#[test]
fn corrupt_remote_blobs_are_rejected_and_computed_locally() {
    let remote = tempfile::tempdir().unwrap();
    let rs = remote.path().to_str().unwrap().to_string();
    Project::new(PIPELINE).run_ok(&["--remote", &rs]);
    for e in walkdir::WalkDir::new(remote.path().join("blobs")) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let mut perm = std::fs::metadata(e.path()).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(e.path(), perm).unwrap();
            // Same length: a longer blob is refused as it streams, before its digest.
            let len = std::fs::metadata(e.path()).unwrap().len() as usize;
            std::fs::write(e.path(), "x".repeat(len)).unwrap();
        }
    }
    let p = Project::new(PIPELINE);
    let out = p.nasflow(&["run", "--remote", &rs]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), set(&["a", "b"]));
    let out = Project::new(PIPELINE).nasflow(&["cache", "pull", &rs]);
    assert_eq!(out.status.code(), Some(1), "a failed pull exits 1");
}

#[test]
fn a_remote_that_goes_away_mid_run_leaves_a_local_result() {
    let remote = tempfile::tempdir().unwrap();
    let r = remote.path().join("shared");
    // `b` takes the shared directory away while the run is under way.
    let pipeline = format!(
        "{PIPELINE}[stages.c]\nkind = \"cmd\"\ndeps = [\"b\"]\nrun = \"rm -rf {} && echo c > $NASFLOW_OUT/c.txt\"\n",
        r.display()
    );
    let p = Project::new(&pipeline);
    let out = p.nasflow(&["run", "--remote", r.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not uploaded"), "{}", stderr(&out));
    assert_eq!(common::ran(&out), set(&["a", "b", "c"]));
    assert_eq!(p.run_ok(&[]), set(&[]), "the local cache has everything");
}
