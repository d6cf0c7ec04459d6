//! The Slurm executor against a real Slurm: a single-node cluster on localhost (munged,
//! slurmctld and slurmd from Debian's munge and slurm-wlm packages, which scripts/test.sh
//! installs), started by scripts/slurm-cluster.sh with a private configuration, ports and munge
//! socket, and stopped at the end. Item-level stages run as job arrays: results equal a local run's, a killed task
//! is retried, a task that keeps failing is reported with its log, Ctrl-C cancels the array and
//! a rerun continues, and a killed nasflow is restarted without computing anything twice.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{stderr, Project};
use serde_json::Value;

struct Cluster {
    dir: tempfile::TempDir,
}

fn find(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = ["/usr/sbin", "/usr/local/sbin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.exists())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-cluster.sh")
}

impl Cluster {
    /// Starts the cluster with scripts/slurm-cluster.sh; `None` (with the reason) where Slurm
    /// or munge is not installed.
    fn start() -> Option<Cluster> {
        let tools = [
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "squeue",
            "scancel",
            "sinfo",
        ];
        let missing: Vec<&str> = tools
            .iter()
            .copied()
            .filter(|t| find(t).is_none())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "SKIPPED: Slurm is not installed (missing {}); scripts/test.sh installs Debian's slurm-wlm and munge with apt when it runs as root",
                missing.join(", ")
            );
            return None;
        }
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: slurmd must run as root to start jobs; run the tests as root (as scripts/test.sh does in CI)");
            return None;
        }
        let cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = Command::new(script())
            .arg("start")
            .arg(cluster.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slurm-cluster.sh start failed:\n{}",
            stderr(&out)
        );
        Some(cluster)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn client(&self, tool: &str) -> Command {
        let mut c = Command::new(find(tool).unwrap());
        c.env("SLURM_CONF", self.conf());
        c
    }

    /// This user's jobs still queued or running: `JOB_TASK STATE NAME` lines.
    fn active_jobs(&self) -> Vec<String> {
        let out = self
            .client("squeue")
            .args(["--me", "--noheader", "--array", "--format=%i %T %j"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn nasflow(&self, p: &Project, args: &[&str]) -> Command {
        let mut c = p.cmd(args);
        c.env("SLURM_CONF", self.conf());
        c
    }

    fn run(&self, p: &Project, args: &[&str]) -> Output {
        self.nasflow(p, &[&["run"], args].concat())
            .output()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Six items; each writes its pid (its `nasflow slurm-task`) and a start line under marks/,
/// sleeps, and fails while marks/fail.INDEX exists.
fn cmd_pipeline(retries: u32, sleep: f64) -> String {
    format!(
        r#"[pipeline]
jobs = 2
[pipeline.executor]
kind = "slurm"
poll_seconds = 0.3
retries = {retries}
[stages.list]
kind = "cmd"
run = "seq 0 5 > $NASFLOW_OUT/items.jsonl"
[stages.work]
kind = "cmd"
foreach = "list"
run = '''
echo $PPID > marks/pid.$NASFLOW_ITEM_INDEX
echo start >> marks/log.$NASFLOW_ITEM_INDEX
sleep {sleep}
if [ -e marks/fail.$NASFLOW_ITEM_INDEX ]; then echo "boom on item $NASFLOW_ITEM_INDEX" >&2; exit 3; fi
echo "$NASFLOW_ITEM squared is $((NASFLOW_ITEM * NASFLOW_ITEM)) ($NASFLOW_THREADS thread)" > $NASFLOW_OUT/v.txt
'''
"#
    )
}

fn project(pipeline: &str) -> Project {
    let p = Project::new(pipeline);
    std::fs::create_dir_all(p.path().join("marks")).unwrap();
    p
}

/// How many times each item started.
fn starts(p: &Project) -> BTreeMap<usize, usize> {
    (0..6)
        .map(|i| {
            let log = std::fs::read_to_string(p.path().join(format!("marks/log.{i}")))
                .unwrap_or_default();
            (i, log.lines().count())
        })
        .collect()
}

fn published_items(p: &Project, stage: &str) -> usize {
    std::fs::read_dir(p.cache().join("items").join(stage))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The stage's output files (path → digest), without those matching `skip`.
fn files(p: &Project, stage: &str, skip: &str) -> BTreeMap<String, String> {
    let out = p.nasflow(&["show", stage, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let show: Value = serde_json::from_slice(&out.stdout).unwrap();
    show["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["digest"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(path, _)| skip.is_empty() || !path.contains(skip))
        .collect()
}

fn wait_until(what: &str, timeout_s: u64, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(timeout_s),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_ok(out: &Output) -> String {
    let err = stderr(out);
    assert!(out.status.success(), "nasflow run failed:\n{err}");
    err
}

#[test]
fn item_stages_run_as_slurm_job_arrays() {
    let Some(cluster) = Cluster::start() else {
        return;
    };

    // 1. Items on Slurm give what a local run gives; each is computed once, on 1 thread.
    let s = project(&cmd_pipeline(2, 0.5));
    let err = assert_ok(&cluster.run(&s, &[]));
    assert!(err.contains("6 to compute on Slurm"), "{err}");
    assert!(err.contains("submitted array job"), "{err}");
    assert!(starts(&s).values().all(|&n| n == 1), "{:?}", starts(&s));
    assert!(
        !s.cache().join("slurm").join("work").exists(),
        "state removed when done"
    );
    let l = project(&cmd_pipeline(2, 0.0));
    assert_ok(&cluster.run(&l, &["--executor", "local"]));
    assert_eq!(files(&s, "work", ""), files(&l, "work", ""));
    let item3 = std::fs::read_to_string(
        s.cache()
            .join("out/work")
            .read_dir()
            .unwrap()
            .flatten()
            .find(|e| e.file_name() != "items")
            .unwrap()
            .path()
            .join("items/00003/v.txt"),
    )
    .unwrap();
    assert_eq!(item3, "3 squared is 9 (1 thread)\n");
    // Cached items are never submitted.
    let err = assert_ok(&cluster.run(&s, &[]));
    assert!(!err.contains("submitted"), "{err}");

    // 2. A task killed while it runs is resubmitted, and its item published.
    let r = project(&cmd_pipeline(2, 3.0));
    let child = cluster
        .nasflow(&r, &["run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = r.path().join("marks/pid.1");
    wait_until("item 1 to start", 60, || pid_file.exists());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let out = child.wait_with_output().unwrap();
    let err = assert_ok(&out);
    assert!(err.contains("retry  work item 1 1: task"), "{err}");
    assert_eq!(starts(&r)[&1], 2, "{err}");
    assert_eq!(published_items(&r, "work"), 6);

    // 3. A task that keeps failing: reported with its log after the retries; the others kept.
    let f = project(&cmd_pipeline(1, 0.2));
    std::fs::write(f.path().join("marks/fail.4"), "").unwrap();
    let out = cluster.run(&f, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("item 4 4: Slurm task"), "{err}");
    assert!(err.contains("after 2 attempt(s)"), "{err}");
    assert!(
        err.contains("boom on item 4"),
        "the log's tail is in the report:\n{err}"
    );
    let log = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("log: "))
        .expect("a log path");
    assert!(std::fs::read_to_string(log)
        .unwrap()
        .contains("boom on item 4"));
    assert_eq!(starts(&f)[&4], 2);
    assert_eq!(published_items(&f, "work"), 5);
    std::fs::remove_file(f.path().join("marks/fail.4")).unwrap();
    let err = assert_ok(&cluster.run(&f, &[]));
    assert!(err.contains("1 to compute on Slurm, 5 cached"), "{err}");

    // 4. Ctrl-C cancels the array; a rerun computes only what was not published.
    let c = project(&cmd_pipeline(2, 2.0));
    let child = cluster
        .nasflow(&c, &["run"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("a first item", 60, || published_items(&c, "work") >= 1);
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("Ctrl-C: cancelled array job(s)"), "{err}");
    wait_until("the array to leave the queue", 30, || {
        cluster.active_jobs().is_empty()
    });
    let before = published_items(&c, "work");
    assert!(before < 6, "cancelled before the end");
    let err = assert_ok(&cluster.run(&c, &[]));
    assert!(
        err.contains(&format!(
            "{} to compute on Slurm, {before} cached",
            6 - before
        )),
        "{err}"
    );
    assert_eq!(published_items(&c, "work"), 6);

    // 5. A killed nasflow: the array runs on; a restart follows it and submits nothing again.
    let k = project(&cmd_pipeline(2, 2.0));
    let mut child = cluster
        .nasflow(&k, &["run"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("a first item", 60, || published_items(&k, "work") >= 1);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !cluster.active_jobs().is_empty(),
        "the array outlives nasflow"
    );
    let err = assert_ok(&cluster.run(&k, &[]));
    assert!(
        err.contains("still queued or running from an earlier nasflow"),
        "{err}"
    );
    assert!(
        !err.contains("submitted array job"),
        "nothing submitted again:\n{err}"
    );
    assert!(starts(&k).values().all(|&n| n == 1), "{:?}", starts(&k));
    assert_eq!(files(&k, "work", ""), files(&l, "work", ""));

    // 6. Networks trained and read out on Slurm equal those of a local run (same seed, one
    //    thread each): pretrain and extract on the synthetic images at tiny sizes.
    let tmp = tempfile::tempdir().unwrap();
    let space = common::enumerated_space(tmp.path());
    let nets = NETS.replace("SPACE", &space.to_string_lossy());
    let a = Project::new(&nets);
    let err = assert_ok(&cluster.run(&a, &["extract", "--executor", "slurm"]));
    assert!(err.contains("3 to compute on Slurm"), "{err}");
    let b = Project::new(&nets);
    assert_ok(&cluster.run(&b, &["extract", "-j", &cpus_for_one_thread()]));
    // metrics.json holds training times; everything else must be identical.
    let (pa, pb) = (
        files(&a, "pretrain", "metrics.json"),
        files(&b, "pretrain", "metrics.json"),
    );
    assert!(
        pa.keys().any(|k| k.ends_with("weights.safetensors")),
        "{pa:?}"
    );
    assert_eq!(pa, pb);
    assert_eq!(files(&a, "extract", ""), files(&b, "extract", ""));
}

/// `-j` such that a local run gives each item one thread, as `cpus_per_item = 1` does.
fn cpus_for_one_thread() -> String {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string()
}

const NETS: &str = r#"
[pipeline]
seed = 5
[pipeline.executor]
kind = "local"
cpus_per_item = 1
poll_seconds = 0.5
[stages.sample]
kind = "sample"
space = "SPACE"
cells = 200
train_nets = 2
valid_nets = 1
[stages.pretrain]
kind = "pretrain"
foreach = "sample"
init_channels = 4
stacks = 2
cells_per_stack = 1
epochs = 1
batch_size = 32
train_limit = 128
test_limit = 64
held_out = 32
[stages.extract]
kind = "extract"
foreach = "pretrain"
unseen = 20
"#;

/// Without Slurm's commands the item stage fails with what to do, and nothing else breaks.
#[test]
fn missing_sbatch_names_the_fix() {
    // A PATH with the shell tools the cmd stages use and no Slurm.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["sh", "seq", "sleep", "echo", "cat"] {
        if let Some(path) = find(tool) {
            std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
        }
    }
    let p = project(&cmd_pipeline(0, 0.0));
    let out = p.cmd(&["run"]).env("PATH", bin.path()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot run `sbatch`"), "{err}");
    assert!(err.contains("--executor local"), "{err}");
    assert!(!p.cache().join("items").join("work").exists());
    // The same pipeline runs locally on request.
    let out = p.cmd(&["run", "--executor", "local"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
