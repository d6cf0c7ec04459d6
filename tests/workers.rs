//! Persistent workers (`nasflow-worker serve`), through the binary: items of a native stage are
//! served by one worker process per job slot, give the outputs one process per item gives, and a
//! worker's crash or an item's failure costs only that item.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{stderr, Project};
use serde_json::Value;

/// Eight NB101 networks (drawn by `sample`), the items `pretrain` trains.
const NETWORKS: &str = include_str!("data/eight-networks.jsonl");

/// `nets` lists the networks of `nets.jsonl` in the project; `pretrain` trains each, tiny.
fn pipeline(jobs: usize, epochs: usize) -> String {
    format!(
        r#"
[pipeline]
seed = 3
jobs = {jobs}
[stages.nets]
kind = "cmd"
run = "cp nets.jsonl $NASFLOW_OUT/items.jsonl"
[stages.pretrain]
kind = "pretrain"
foreach = "nets"
init_channels = 4
stacks = 1
cells_per_stack = 1
epochs = {epochs}
batch_size = 32
train_limit = 128
test_limit = 64
held_out = 32
"#
    )
}

/// The first `n` of [`NETWORKS`].
fn first_networks(n: usize) -> String {
    NETWORKS.lines().take(n).collect::<Vec<_>>().join("\n")
}

fn project(jobs: usize, epochs: usize, networks: &str) -> Project {
    let p = Project::new(&pipeline(jobs, epochs));
    std::fs::write(p.path().join("nets.jsonl"), networks).unwrap();
    p
}

/// Each published pretrain item record: (output digest, its provenance).
fn item_records(p: &Project) -> Vec<(String, Value)> {
    let dir = p.cache().join("items/pretrain");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let r: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        out.push((
            r["output_digest"].as_str().unwrap().to_string(),
            r["provenance"].clone(),
        ));
    }
    out
}

fn digests(p: &Project) -> BTreeSet<String> {
    item_records(p).into_iter().map(|(d, _)| d).collect()
}

#[test]
fn items_are_served_by_one_worker_per_job_slot_with_the_outputs_of_one_process_per_item() {
    let pooled = project(2, 1, NETWORKS);
    pooled.run_ok(&["pretrain"]);
    let records = item_records(&pooled);
    assert_eq!(records.len(), 8);
    let mut served: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (_, prov) in &records {
        let w = &prov["worker"];
        served
            .entry(w["pid"].as_u64().expect("worker pid"))
            .or_default()
            .push(w["served_before"].as_u64().unwrap());
    }
    assert_eq!(served.len(), 2, "two workers for jobs = 2: {served:?}");
    for counts in served.values_mut() {
        counts.sort();
        // Each worker counted the items it served, one after another.
        assert_eq!(*counts, (0..counts.len() as u64).collect::<Vec<_>>());
    }

    let per_job = project(2, 1, NETWORKS);
    let out = per_job
        .cmd(&["run", "pretrain"])
        .env("NASFLOW_WORKERS", "per-job")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(item_records(&per_job)
        .iter()
        .all(|(_, prov)| prov.get("worker").is_none()));
    assert_eq!(digests(&per_job), digests(&pooled));
}

#[test]
fn with_shared_workers_one_process_serves_the_job_slots_at_once_with_the_same_outputs() {
    let shared = project(2, 1, NETWORKS);
    let out = shared
        .cmd(&["run", "pretrain"])
        .env("NASFLOW_WORKERS", "shared:2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records = item_records(&shared);
    assert_eq!(records.len(), 8);
    let pids: BTreeSet<u64> = records
        .iter()
        .map(|(_, prov)| prov["worker"]["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "one process for both slots: {pids:?}");
    let mut counts: Vec<u64> = records
        .iter()
        .map(|(_, prov)| prov["worker"]["served_before"].as_u64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        (0..8).collect::<Vec<_>>(),
        "the process counts every job"
    );

    let per_job = project(2, 1, NETWORKS);
    let out = per_job
        .cmd(&["run", "pretrain"])
        .env("NASFLOW_WORKERS", "per-job")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(digests(&per_job), digests(&shared));
}

#[test]
fn a_failing_item_fails_alone_and_its_worker_serves_the_next() {
    let mut lines: Vec<&str> = NETWORKS.lines().take(3).collect();
    lines[1] = r#"{"hash":"0","matrix":[[0]],"ops":["input"]}"#;
    let p = project(1, 1, &(lines.join("\n") + "\n"));
    let out = p.nasflow(&["run", "pretrain"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("1 item(s) failed"), "{err}");
    assert!(err.contains("item 1"), "{err}");
    let records = item_records(&p);
    assert_eq!(records.len(), 2, "the other two items are published");
    let workers: Vec<(u64, u64)> = records
        .iter()
        .map(|(_, prov)| {
            (
                prov["worker"]["pid"].as_u64().unwrap(),
                prov["worker"]["served_before"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        workers[0].0, workers[1].0,
        "one worker served both: {workers:?}"
    );
    let mut counts: Vec<u64> = workers.iter().map(|w| w.1).collect();
    counts.sort();
    assert_eq!(counts, [0, 2], "it served the failed item in between");
}

/// The pids of the `nasflow-worker serve` processes descending from `root`.
fn workers_under(root: u32) -> BTreeSet<u32> {
    let mut parent = BTreeMap::new();
    let mut serving = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        parent.insert(pid, ppid);
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"nasflow-worker"))
            && args.get(1) == Some(&&b"serve"[..])
        {
            serving.insert(pid);
        }
    }
    serving
        .into_iter()
        .filter(|&pid| {
            let mut p = pid;
            for _ in 0..64 {
                match parent.get(&p) {
                    Some(&pp) if pp == root => return true,
                    Some(&pp) if pp > 1 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Runs `nasflow run pretrain` and SIGKILLs the first `kills` workers that appear, each as soon
/// as it is seen (it was started for an item, which it is serving). Returns the run's output.
fn run_killing_workers(p: &Project, kills: usize) -> std::process::Output {
    run_killing_workers_with(p, kills, "persistent")
}

fn run_killing_workers_with(p: &Project, kills: usize, workers: &str) -> std::process::Output {
    let child = p
        .cmd(&["run", "pretrain"])
        .env("NASFLOW_WORKERS", workers)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let root = child.id();
    let mut killed = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while killed.len() < kills && Instant::now() < deadline {
        for pid in workers_under(root) {
            if killed.len() < kills && killed.insert(pid) {
                // SAFETY: signalling a process this test's nasflow started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(killed.len(), kills, "saw {kills} workers to kill");
    child.wait_with_output().unwrap()
}

#[test]
fn a_worker_killed_mid_item_costs_that_item_one_retry() {
    let p = project(1, 2, &first_networks(3));
    p.run_ok(&["nets"]);
    let out = run_killing_workers(&p, 1);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = item_records(&p);
    assert_eq!(records.len(), 3);
    let retried: Vec<&Value> = records
        .iter()
        .map(|(_, prov)| &prov["worker"])
        .filter(|w| w.get("retried_after").is_some())
        .collect();
    assert_eq!(retried.len(), 1, "{records:?}");
    assert_eq!(retried[0]["retried_after"], "killed by signal 9 (SIGKILL)");
    assert_eq!(retried[0]["served_before"], 0, "in a fresh worker");
}

#[test]
fn a_worker_killed_twice_fails_that_item_with_the_signal_and_the_rest_finish() {
    let p = project(1, 2, &first_networks(3));
    p.run_ok(&["nets"]);
    let out = run_killing_workers(&p, 2);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("1 item(s) failed"), "{err}");
    assert!(err.contains("killed by signal 9 (SIGKILL)"), "{err}");
    assert_eq!(item_records(&p).len(), 2, "no record for the lost item");
    assert_eq!(
        std::fs::read_dir(p.cache().join("records/pretrain")).map_or(0, |d| d.count()),
        0,
        "no stage record while an item is missing"
    );
    let again = p.nasflow(&["run", "pretrain"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("items  pretrain: 1 to compute, 2 cached"),
        "{}",
        stderr(&again)
    );
    assert_eq!(item_records(&p).len(), 3);
}

#[test]
fn a_shared_worker_killed_mid_item_costs_its_items_one_retry() {
    let p = project(2, 2, &first_networks(4));
    p.run_ok(&["nets"]);
    let out = run_killing_workers_with(&p, 1, "shared:2");
    assert!(out.status.success(), "{}", stderr(&out));
    let records = item_records(&p);
    assert_eq!(records.len(), 4);
    let retried = records
        .iter()
        .filter(|(_, prov)| prov["worker"].get("retried_after").is_some())
        .count();
    assert!((1..=2).contains(&retried), "{records:?}");
}
