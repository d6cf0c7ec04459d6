//! The `fetch` kind against a real HTTP server (nginx, which serves Range requests; installed by
//! scripts/test.sh): a good download, a generated tar.gz unpacked, a wrong checksum, a 404, a
//! server that dies mid-file and a resume from another server, a local path with the same key,
//! and gc removing an abandoned partial download.
mod common;
#[path = "support/nginx.rs"]
mod nginx;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{set, stderr, stdout, Project};

/// A file of `n` bytes that compresses badly (so that sizes mean bytes on the wire).
fn noise(path: &Path, n: usize) {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn pipeline(url: &str, sha: &str, extra: &str) -> String {
    format!(
        r#"
[stages.data]
kind = "fetch"
url = "{url}"
sha256 = "{sha}"
{extra}

[stages.count]
kind = "cmd"
deps = ["data"]
run = "cd $NASFLOW_IN_DATA && find . -type f | sort | xargs wc -c > $NASFLOW_OUT/sizes.txt"
"#
    )
}

/// The directory of a stage's current output.
fn key(p: &Project) -> String {
    let out = p.nasflow(&["cache", "key", "data"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn partial_files(p: &Project) -> Vec<PathBuf> {
    common::files_under(&p.cache().join("partial"))
}

#[test]
fn download_then_a_local_copy_gives_the_same_key_and_reruns_nothing() {
    let Some(server) = nginx::start(Default::default()) else {
        return;
    };
    let file = server.store().join("data.bin");
    noise(&file, 300_000);
    let sha = sha256(&file);
    let p = Project::new(&pipeline(&format!("{}/data.bin", server.base()), &sha, ""));
    assert_eq!(p.run_ok(&[]), set(&["data", "count"]));
    let got = p.out_dir("data").join("data.bin");
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&file).unwrap());
    assert!(
        partial_files(&p).is_empty(),
        "a finished download leaves no partial file"
    );
    let remote_key = key(&p);

    // The same file from a local path (relative to the pipeline file): same key, nothing reruns.
    std::fs::create_dir(p.path().join("mirror")).unwrap();
    std::fs::copy(&file, p.path().join("mirror/data.bin")).unwrap();
    p.write_pipeline(&pipeline("mirror/data.bin", &sha, ""));
    assert_eq!(key(&p), remote_key);
    assert_eq!(p.run_ok(&[]), set(&[]));

    // In a fresh cache the local copy computes the same result under the same key.
    let q = Project::new(&pipeline(
        &format!("file://{}", p.path().join("mirror/data.bin").display()),
        &sha.to_uppercase(),
        "",
    ));
    assert_eq!(
        key(&q),
        remote_key,
        "the digest's case does not change the key"
    );
    assert_eq!(q.run_ok(&[]), set(&["data", "count"]));
    assert_eq!(
        std::fs::read(q.out_dir("count").join("sizes.txt")).unwrap(),
        std::fs::read(p.out_dir("count").join("sizes.txt")).unwrap()
    );
}

#[test]
fn a_tar_gz_is_unpacked_into_the_outputs() {
    let Some(server) = nginx::start(Default::default()) else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("cifar-10-batches-bin")).unwrap();
    noise(
        &src.path().join("cifar-10-batches-bin/data_batch_1.bin"),
        30_730,
    );
    std::fs::write(src.path().join("cifar-10-batches-bin/readme.html"), "hi").unwrap();
    let archive = server.store().join("cifar-10-binary.tar.gz");
    let made = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(src.path())
        .arg("cifar-10-batches-bin")
        .status()
        .unwrap();
    assert!(made.success());
    let p = Project::new(&pipeline(
        &format!("{}/cifar-10-binary.tar.gz", server.base()),
        &sha256(&archive),
        "unpack = true",
    ));
    assert_eq!(p.run_ok(&[]), set(&["data", "count"]));
    let sizes = std::fs::read_to_string(p.out_dir("count").join("sizes.txt")).unwrap();
    assert!(
        sizes.contains("30730 ./cifar-10-batches-bin/data_batch_1.bin")
            && sizes.contains("2 ./cifar-10-batches-bin/readme.html")
            && !sizes.contains("tar.gz"),
        "{sizes}"
    );
}

#[test]
fn a_wrong_checksum_or_a_404_stores_nothing() {
    let Some(server) = nginx::start(Default::default()) else {
        return;
    };
    let file = server.store().join("data.bin");
    noise(&file, 100_000);
    let actual = sha256(&file);
    let wrong = "0".repeat(64);
    let p = Project::new(&pipeline(
        &format!("{}/data.bin", server.base()),
        &wrong,
        "",
    ));
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("expected sha256 {wrong}, got sha256 {actual}"))
            && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!p.cache().join("records/data").exists(), "no record");
    assert!(
        partial_files(&p).is_empty(),
        "the bad file is not kept to resume from"
    );

    p.write_pipeline(&pipeline(
        &format!("{}/missing.bin", server.base()),
        &actual,
        "",
    ));
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("answered 404"), "{}", stderr(&out));
    assert!(!p.cache().join("records/data").exists());

    // Checked when the pipeline is loaded, not when the stage runs.
    p.write_pipeline(&pipeline("x.bin", "abc", ""));
    let out = p.nasflow(&["plan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("64 hex digits"), "{}", stderr(&out));
}

#[test]
fn a_download_cut_off_mid_file_resumes_from_another_server() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("big.bin");
    noise(&file, 2_000_000);
    let sha = sha256(&file);
    let Some(mut slow) = nginx::start(nginx::Options {
        root: Some(root.path().to_path_buf()),
        limit_rate: Some("200k".into()),
        ..Default::default()
    }) else {
        return;
    };
    let p = Project::new(&pipeline(&format!("{}/big.bin", slow.base()), &sha, ""));
    let child = p
        .cmd(&["run"])
        .env("NASFLOW_PROGRESS_SECONDS", "0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until part of the file has arrived, then take the server down.
    let started = Instant::now();
    let have = loop {
        let n: u64 = partial_files(&p)
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        if n >= 300_000 {
            break n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no bytes arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    slow.stop();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("run again to resume from byte"), "{err}");
    assert!(
        err.contains("MB/s") && err.contains("KiB"),
        "progress in bytes with the rate: {err}"
    );
    let kept = partial_files(&p);
    assert_eq!(kept.len(), 1, "the partial file is kept: {kept:?}");
    let kept_bytes = std::fs::metadata(&kept[0]).unwrap().len();
    assert!(kept_bytes >= have && kept_bytes < 2_000_000);

    // A sweep of stale temp files leaves it alone; another server (a mirror) finishes it.
    let fast = nginx::start(nginx::Options {
        root: Some(root.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    p.write_pipeline(&pipeline(&format!("{}/big.bin", fast.base()), &sha, ""));
    assert_eq!(p.run_ok(&[]), set(&["data", "count"]));
    let log = fast.access_log();
    assert!(
        log.contains(&format!(
            "206 {} \"bytes={kept_bytes}-\"",
            2_000_000 - kept_bytes
        )),
        "{log}"
    );
    assert_eq!(
        std::fs::read(p.out_dir("data").join("big.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let out = p.nasflow(&["log", "data", "--file", "fetch.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `nasflow log --file` prints a `==> fetch.json <==` header first.
    let text = stdout(&out);
    let facts: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    assert_eq!(facts["resumed_from"], kept_bytes);
    assert_eq!(facts["bytes_fetched"], 2_000_000 - kept_bytes);
    assert!(partial_files(&p).is_empty());
}

#[test]
fn gc_removes_an_abandoned_partial_download_only() {
    let p = Project::new(common::TWO_STAGES);
    p.run_ok(&[]);
    let old = p.cache().join("partial/data").join("a".repeat(64));
    let fresh = p.cache().join("partial/data").join("b".repeat(64));
    for d in [&old, &fresh] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("big.bin.part"), vec![1u8; 1000]).unwrap();
    }
    let touched = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(old.join("big.bin.part"))
        .status()
        .unwrap();
    assert!(touched.success());
    let out = p.nasflow(&["gc"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 partial downloads"),
        "{}",
        stdout(&out)
    );
    assert!(!old.exists() && fresh.exists());
}
