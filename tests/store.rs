//! The store under a careless user and concurrent runs, through the binary: incomplete views,
//! views read while another run forces their stage, corruption followed downstream, stuck states,
//! and the small ones (a typo'd remote, a full disk, a read-only cache, what a killed nasflow
//! leaves running, errors said once).
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{set, stderr, stdout, Project};
use serde_json::Value;

const CHAIN: &str = "[stages.a]\nkind = \"cmd\"\nrun = \"echo a > $NASFLOW_OUT/a.txt; echo x > $NASFLOW_OUT/x.txt\"\n[stages.b]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"cat $NASFLOW_IN_A/*.txt > $NASFLOW_OUT/b.txt\"\n[stages.c]\nkind = \"cmd\"\ndeps = [\"b\"]\nrun = \"cat $NASFLOW_IN_B/b.txt > $NASFLOW_OUT/c.txt\"\n";

#[test]
fn an_incomplete_view_is_rebuilt_before_a_stage_reads_it() {
    let p = Project::new(CHAIN);
    p.run_ok(&[]);
    let a = p.out_dir("a");
    std::fs::remove_file(a.join("x.txt")).unwrap();
    std::fs::write(a.join("stray.txt"), "not a's").unwrap();
    assert_eq!(p.run_ok(&["--force", "b"]), set(&["b"]));
    let b = std::fs::read_to_string(p.out_dir("b").join("b.txt")).unwrap();
    assert_eq!(b, "a\nx\n", "b read a's whole view, and only it");
}

fn spawn(p: &Project, args: &[&str]) -> std::process::Child {
    p.cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_forced_run_never_replaces_a_view_another_run_is_reading() {
    let toml = "[stages.c]\nkind = \"cmd\"\nrun = \"echo c > $NASFLOW_OUT/c.txt\"\n[stages.b]\nkind = \"cmd\"\ndeps = [\"c\"]\nrun = \"sleep 3; cat $NASFLOW_IN_C/c.txt > $NASFLOW_OUT/b.txt\"\n";
    let p = Project::new(toml);
    p.run_ok(&["c"]);
    let reader = spawn(&p, &["run", "b"]);
    std::thread::sleep(Duration::from_millis(1500));
    let forcer = p.nasflow(&["run", "c", "--force", "c"]);
    assert!(forcer.status.success(), "{}", stderr(&forcer));
    let reader = reader.wait_with_output().unwrap();
    assert!(reader.status.success(), "{}", stderr(&reader));
    assert_eq!(
        std::fs::read_to_string(p.out_dir("b").join("b.txt")).unwrap(),
        "c\n"
    );
}

#[test]
fn twenty_rounds_of_two_runs_at_once_all_succeed() {
    // `up` is not deterministic: each forced rerun gives a new output digest, a new view.
    let toml = "[stages.up]\nkind = \"cmd\"\nrun = \"date +%N > $NASFLOW_OUT/u.txt\"\n[stages.down]\nkind = \"cmd\"\ndeps = [\"up\"]\nrun = \"sleep 0.2; cat $NASFLOW_IN_UP/u.txt > $NASFLOW_OUT/d.txt\"\n";
    let p = Project::new(toml);
    p.run_ok(&[]);
    for round in 0..20 {
        let a = spawn(&p, &["run"]);
        let b = spawn(&p, &["run", "--force", "up"]);
        for (who, out) in [
            ("plain", a.wait_with_output().unwrap()),
            ("forcing", b.wait_with_output().unwrap()),
        ] {
            assert!(
                out.status.success(),
                "round {round}, {who} run: {}",
                stderr(&out)
            );
        }
    }
    let d = std::fs::read_to_string(p.out_dir("down").join("d.txt")).unwrap();
    let u = std::fs::read_to_string(p.out_dir("up").join("u.txt")).unwrap();
    assert_eq!(d, u, "down is current with up");
}

fn blob_of(p: &Project, stage: &str) -> std::path::PathBuf {
    let r: Value = serde_json::from_slice(
        &std::fs::read(common::files_under(&p.cache().join("records").join(stage))[0].clone())
            .unwrap(),
    )
    .unwrap();
    let d = r["files"][0]["digest"].as_str().unwrap().to_string();
    p.cache().join("blobs").join(&d[..2]).join(&d[2..])
}

#[test]
fn verify_drops_what_was_computed_from_a_corrupt_blob_and_the_next_run_recomputes_it() {
    let p = Project::new(CHAIN);
    p.run_ok(&[]);
    std::fs::write(blob_of(&p, "a"), "bit rot").unwrap();
    let out = p.nasflow(&["cache", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 corrupt; 3 records dropped"),
        "{}",
        stdout(&out)
    );
    assert_eq!(p.run_ok(&[]), set(&["a", "b", "c"]));
    let c = std::fs::read_to_string(p.out_dir("c").join("c.txt")).unwrap();
    assert_eq!(c, "a\nx\n");
}

#[test]
fn a_record_that_does_not_match_its_digest_is_not_reused_and_verify_says_so() {
    let p = Project::new(CHAIN);
    p.run_ok(&[]);
    let rec = common::files_under(&p.cache().join("records/b"))[0].clone();
    let mut r: Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    r["files"][0]["digest"] = r["files"][0]["digest"]
        .as_str()
        .unwrap()
        .replace(|c: char| c.is_ascii_digit(), "0")
        .into();
    std::fs::write(&rec, serde_json::to_vec(&r).unwrap()).unwrap();
    assert_eq!(
        p.run_ok(&[]),
        set(&["b"]),
        "b recomputes; c is cut off (same outputs)"
    );
    let mut r: Value = serde_json::from_slice(&std::fs::read(&rec).unwrap()).unwrap();
    r["output_digest"] = "0".repeat(64).into();
    std::fs::write(&rec, serde_json::to_vec(&r).unwrap()).unwrap();
    let out = p.nasflow(&["cache", "verify"]);
    assert!(stdout(&out).contains("records dropped"), "{}", stdout(&out));
    assert!(
        !stdout(&out).contains("; 0 records dropped"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_garbled_item_record_is_recomputed_without_manual_steps() {
    let toml = "[stages.list]\nkind = \"cmd\"\nrun = \"printf '1\\n2\\n3\\n' > $NASFLOW_OUT/items.jsonl\"\n[stages.each]\nkind = \"cmd\"\nforeach = \"list\"\nrun = \"echo $NASFLOW_ITEM > $NASFLOW_OUT/i.txt\"\n[stages.next]\nkind = \"cmd\"\nforeach = \"each\"\nrun = \"cat $NASFLOW_IN_EACH/i.txt > $NASFLOW_OUT/n.txt\"\n";
    let p = Project::new(toml);
    p.run_ok(&[]);
    let item = common::files_under(&p.cache().join("items/each"))[0].clone();
    std::fs::write(&item, "{ garbled").unwrap();
    std::fs::write(p.cache().join("blobs/.DS_Store"), "stray").unwrap();
    let out = p.nasflow(&["run", "--force", "next"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [vec!["gc"], vec!["cache", "verify"], vec!["run"]] {
        let out = p.nasflow(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(p.run_ok(&[]), set(&[]));
}

#[test]
fn pulling_from_a_mistyped_directory_is_an_error_and_creates_nothing() {
    let p = Project::new(CHAIN);
    let typo = p.path().join("no-such-remote");
    let out = p.nasflow(&["cache", "pull", typo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!typo.exists());
}

#[test]
fn an_os_error_is_said_once() {
    let p = Project::new("[stages.a]\nkind = \"cmd\"\ninputs = [\"missing\"]\nrun = \"true\"\n");
    let err = stderr(&p.nasflow(&["run"]));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs of `size` mounted for the test (root only), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "none"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
    fn remount(&self, opt: &str) {
        let s = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(s.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_is_named() {
    let Some(fs) = (if is_root() { Tmpfs::mount("4m") } else { None }) else {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    };
    let toml = format!("[pipeline]\ncache = \"{}/cache\"\n[stages.a]\nkind = \"cmd\"\nrun = \"head -c 10000000 /dev/zero > $NASFLOW_OUT/big\"\n", fs.0.path().display());
    let p = Project::new(&toml);
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no space left on device, ENOSPC"), "{err}");
    assert!(err.contains(&fs.0.path().display().to_string()), "{err}");
}

#[test]
fn a_fully_cached_run_works_on_a_read_only_cache() {
    let Some(fs) = (if is_root() { Tmpfs::mount("16m") } else { None }) else {
        eprintln!("SKIPPED: mounting a tmpfs read-only needs root");
        return;
    };
    let toml = format!(
        "[pipeline]\ncache = \"{}/cache\"\n{CHAIN}",
        fs.0.path().display()
    );
    let p = Project::new(&toml);
    p.run_ok(&[]);
    fs.remount("ro");
    let out = p.nasflow(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(common::ran(&out), set(&[]));
    fs.remount("rw");
}

/// Whether a process is gone (or a zombie nobody reaped).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_for(path: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s.trim().to_string();
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nothing_a_stage_started_outlives_a_killed_nasflow() {
    for signal in [libc::SIGKILL, libc::SIGINT] {
        let p = Project::new(
            "[stages.a]\nkind = \"cmd\"\nrun = \"sleep 300 & echo $! > ../bg.pid; sleep 300\"\n",
        );
        std::fs::create_dir(p.path().join("proj")).unwrap();
        std::fs::rename(
            p.path().join("pipeline.toml"),
            p.path().join("proj/pipeline.toml"),
        )
        .unwrap();
        let mut cmd = p.cmd(&["-p", "proj/pipeline.toml", "run"]);
        // nasflow as a terminal starts it: SIGINT at its default, whatever this test inherited
        // (a harness started in the background by a shell ignores SIGINT, and so would nasflow).
        // SAFETY: signal is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let child = cmd.stderr(Stdio::null()).spawn().unwrap();
        let bg = wait_for(&p.path().join("bg.pid"));
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let start = Instant::now();
        while !dead(&bg) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "signal {signal}: the stage's background process {bg} survived"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut child = child;
        let _ = child.wait();
    }
}

#[test]
fn what_a_finished_stage_left_running_is_stopped() {
    let p = Project::new("[stages.a]\nkind = \"cmd\"\nrun = \"sleep 300 & echo $! > ../left.pid; echo done > $NASFLOW_OUT/a.txt\"\n");
    std::fs::create_dir(p.path().join("proj")).unwrap();
    std::fs::rename(
        p.path().join("pipeline.toml"),
        p.path().join("proj/pipeline.toml"),
    )
    .unwrap();
    let out = p.nasflow(&["-p", "proj/pipeline.toml", "run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left = wait_for(&p.path().join("left.pid"));
    let start = Instant::now();
    while !dead(&left) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "process {left} survived its stage"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
