//! The second round of attacks on the trusted store (issue 25), one test per item, each against
//! the real binary: a stored file changed behind the cache's back, remotes that would fill the
//! disk or hold the run, a sibling reading a tampered input, redirects to `file://`, a malformed
//! pipeline.toml, credentials in URLs, a cache directory holding the user's own files, fetches
//! without bound, and the smaller ones. Every command that could hang runs under a deadline and
//! fails the test when it passes it.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{stderr, stdout, Project};
use serde_json::Value;

/// Runs `cmd`, killing it and failing the test if it is still running after `secs`.
fn within(mut cmd: Command, secs: u64) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes on threads so that a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let e = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            let e = String::from_utf8_lossy(&e.join().unwrap()).to_string();
            panic!("still running after {secs} s (killed); stderr:\n{e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
    }
}

/// A hostile HTTP server on a free local port: each request's first line goes to `answer`,
/// which writes whatever it likes to the connection. Its threads end with the test process.
fn serve(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                answer(first.trim(), &mut stream);
            });
        }
    });
    url
}

fn respond(stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// The request's path: `GET /a/b HTTP/1.1` -> `a/b`.
fn path_of(request: &str) -> String {
    let p = request.split_whitespace().nth(1).unwrap_or("/");
    p.trim_start_matches('/').to_string()
}

fn out_file(p: &Project, stage: &str, file: &str) -> String {
    let v: Value = serde_json::from_slice(&p.nasflow(&["show", stage, "--json"]).stdout).unwrap();
    std::fs::read_to_string(Path::new(v["out_dir"].as_str().unwrap()).join(file)).unwrap()
}

fn make_writable_and_write(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    perm.set_mode(0o644);
    std::fs::set_permissions(path, perm).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The one file under `cache/out/STAGE/*/`.
fn stored_view_file(p: &Project, stage: &str, file: &str) -> PathBuf {
    let dir = p.cache().join("out").join(stage);
    let view = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    view.join(file)
}

fn biggest_file_under(dir: &Path) -> u64 {
    common::files_under(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

const A_C: &str = "[stages.a]\nkind = \"cmd\"\nrun = \"echo hi > $NASFLOW_OUT/a.txt\"\n[stages.c]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"cat $NASFLOW_IN_A/a.txt > $NASFLOW_OUT/c.txt\"\n";

// 1. A stored file changed behind the cache's back: detected before use, quarantined, and
// recomputed in the same run; never looped on, never used (same size or not).
#[test]
fn a_stored_file_changed_behind_the_caches_back_is_recomputed_never_used() {
    for altered in ["different content, longer\n", "HI\n"] {
        let p = Project::new(A_C);
        p.run_ok(&["a"]);
        make_writable_and_write(&stored_view_file(&p, "a", "a.txt"), altered);
        let out = within(p.cmd(&["run", "c"]), 60);
        assert!(out.status.success(), "{altered:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("changed a: stored output a/a.txt changed"),
            "{}",
            stderr(&out)
        );
        assert_eq!(out_file(&p, "c", "c.txt"), "hi\n", "{altered:?}");
        assert_eq!(
            std::fs::read_dir(p.cache().join("quarantine"))
                .unwrap()
                .count(),
            1
        );
        let tmp = std::fs::read_dir(p.cache().join("tmp")).unwrap().count();
        assert!(tmp < 20, "{tmp} files in cache/tmp");
        assert!(stdout(&p.nasflow(&["cache", "verify"])).contains(", 0 corrupt"));
    }
}

/// Machine A computes `a` and `c` into a directory remote; returns it with a's blob path there.
fn pushed_remote(dir: &Path) -> (Project, PathBuf) {
    let a = Project::new(A_C);
    let out = a.nasflow(&["run", "--remote", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let blob = common::files_under(&dir.join("blobs"))
        .into_iter()
        .find(|f| std::fs::read(f).unwrap() == b"hi\n")
        .unwrap();
    (a, blob)
}

// 2. A remote cannot fill the disk: blob downloads stop at the size the record declares.
#[test]
fn remote_blobs_are_bounded_by_their_declared_size() {
    let remote = tempfile::tempdir().unwrap();
    let (_a, blob) = pushed_remote(remote.path());
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();
    let b = Project::new(A_C);
    let out = within(
        b.cmd(&["run", "--remote", remote.path().to_str().unwrap()]),
        60,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), common::set(&["a", "c"]));
    assert!(biggest_file_under(&b.cache()) < 1 << 20);

    // An HTTP remote that serves the records and an endless body for every blob.
    let store = remote.path().to_path_buf();
    let url = serve(move |req, s| {
        let path = path_of(req);
        if path.starts_with("blobs/") {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let zeros = vec![0u8; 1 << 16];
            while s.write_all(&zeros).is_ok() {}
        } else {
            match std::fs::read(store.join(&path)) {
                Ok(bytes) => respond(s, "200 OK", "", &bytes),
                Err(_) => respond(s, "404 Not Found", "", b""),
            }
        }
    });
    let c = Project::new(A_C);
    let out = within(c.cmd(&["run", "--remote", &url]), 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("longer than the"), "{}", stderr(&out));
    assert_eq!(common::ran(&out), common::set(&["a", "c"]));
    assert!(biggest_file_under(&c.cache()) < 1 << 20);
}

// 3. A result computed from an input that was tampered with while it ran is not published,
// and a record computed while a logged tampering went on is dropped by `cache verify`.
#[test]
fn a_sibling_of_a_stage_that_tampers_with_its_input_is_not_cached() {
    let toml = "[pipeline]\njobs = 2\n[stages.a]\nkind = \"cmd\"\nrun = \"echo hi > $NASFLOW_OUT/a.txt\"\n[stages.b]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"echo tampered >> $NASFLOW_IN_A/a.txt; echo b > $NASFLOW_OUT/b.txt\"\n[stages.d]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"sleep 1; cat $NASFLOW_IN_A/a.txt > $NASFLOW_OUT/d.txt\"\n";
    let p = Project::new(toml);
    let out = within(p.cmd(&["run", "-j", "2"]), 60);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        common::summary(&out, "FAILED").contains("d"),
        "d read the tampered bytes and must fail: {}",
        stderr(&out)
    );
    let log = std::fs::read_to_string(p.cache().join("tampered.jsonl")).unwrap();
    assert!(log.contains("\"blob\""), "{log}");
    // Past the logged window (and its second of slack) before d is computed again.
    std::thread::sleep(Duration::from_millis(2500));
    let out = within(p.cmd(&["run", "d"]), 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out_file(&p, "d", "d.txt"), "hi\n");
    assert!(p.nasflow(&["cache", "verify"]).status.success());
    assert_eq!(p.run_ok(&["d"]), common::set(&[]));
    assert_eq!(out_file(&p, "d", "d.txt"), "hi\n");

    // A stage that deletes cache/out under a running sibling: the sibling is not stored.
    let q = Project::new("");
    let wipe = format!(
        "[stages.a]\nkind = \"cmd\"\nrun = \"echo hi > $NASFLOW_OUT/a.txt\"\n[stages.x]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"sleep 0.3; rm -rf {cache}/out; echo x > $NASFLOW_OUT/x.txt\"\n[stages.y]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"sleep 1; cat $NASFLOW_IN_A/a.txt > $NASFLOW_OUT/y.txt 2>/dev/null; true\"\n",
        cache = q.cache().display()
    );
    q.write_pipeline(&wipe);
    let out = within(q.cmd(&["run", "-j", "2"]), 60);
    assert!(
        stderr(&out).contains("removed or altered"),
        "{}",
        stderr(&out)
    );
    // y normally reads after x's removal and must fail. On a loaded machine its start (which
    // rebuilds a missing input view) can come after the removal: then it read whole inputs, and
    // a stored result must be the right one.
    if !common::summary(&out, "FAILED").contains("y") {
        assert_eq!(out_file(&q, "y", "y.txt"), "hi\n", "{}", stderr(&out));
    }
}

#[test]
fn cache_verify_drops_what_ran_while_a_logged_tampering_went_on() {
    let p = Project::new(A_C);
    p.run_ok(&[]);
    let blob = common::files_under(&p.cache().join("blobs"))
        .into_iter()
        .find(|f| std::fs::read(f).unwrap() == b"hi\n")
        .unwrap();
    let digest = format!(
        "{}{}",
        blob.parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy(),
        blob.file_name().unwrap().to_string_lossy()
    );
    // Another process found a's blob written into during c's run (its log), and a's result
    // has since been recomputed: the blob is whole again, but c may have read the bad bytes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let event = format!(
        "{{\"blob\":\"{digest}\",\"found_by\":\"other/x\",\"from_unix\":{},\"to_unix\":{}}}\n",
        now - 600.0,
        now
    );
    std::fs::write(p.cache().join("tampered.jsonl"), event).unwrap();
    let v = stdout(&p.nasflow(&["cache", "verify"]));
    assert!(v.contains("1 records dropped"), "{v}");
    // Past the window (and its second of slack) before c is computed again.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(p.run_ok(&[]), common::set(&["c"]));
    // The window is in the past now: nothing more is dropped.
    assert!(stdout(&p.nasflow(&["cache", "verify"])).contains("0 records dropped"));
}

// 4. A redirect to file:// is refused, never a panic.
#[test]
fn a_redirect_to_a_file_url_is_refused_without_a_panic() {
    let url = serve(|_, s| respond(s, "302 Found", "Location: file:///etc/passwd\r\n", b""));
    let p = Project::new(A_C);
    let out = within(p.cmd(&["run", "--remote", &url]), 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only http and https redirects"),
        "{}",
        stderr(&out)
    );
    let mut env = p.cmd(&["run"]);
    env.env("NASFLOW_REMOTE", &url);
    let out = within(env, 60);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = within(p.cmd(&["cache", "pull", &url]), 60);
    assert_ne!(out.status.code(), Some(101), "{}", stderr(&out));
    let fetch = format!(
        "[stages.f]\nkind = \"fetch\"\nurl = \"{url}/f.bin\"\nsha256 = \"{}\"\n",
        "0".repeat(64)
    );
    let f = Project::new(&fetch);
    let out = within(f.cmd(&["run"]), 60);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only http and https redirects"),
        "{}",
        stderr(&out)
    );
}

// 5. The malformed pipeline.toml that panicked toml_edit: an error (exit 2), never a panic.
#[test]
fn a_malformed_pipeline_that_panicked_the_toml_parser_is_an_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions/pipeline_toml");
    let bytes = std::fs::read(dir.join("toml-edit-spans-panic.toml")).unwrap();
    let p = Project::new("");
    std::fs::write(p.path().join("pipeline.toml"), bytes).unwrap();
    for args in [&["plan"][..], &["run"], &["status"]] {
        let out = within(p.cmd(args), 30);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("invalid TOML"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

// 6. Slow or odd remotes never hold a run beyond a bounded, documented time.
#[test]
fn a_fifo_or_a_stalling_server_does_not_hold_the_run() {
    let remote = tempfile::tempdir().unwrap();
    let (_a, _) = pushed_remote(remote.path());
    let record = common::files_under(&remote.path().join("records"))
        .into_iter()
        .find(|f| f.to_string_lossy().contains("/a/"))
        .unwrap();
    std::fs::remove_file(&record).unwrap();
    let fifo = std::ffi::CString::new(record.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let b = Project::new(A_C);
    let out = within(
        b.cmd(&["run", "--remote", remote.path().to_str().unwrap()]),
        60,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(common::ran(&out), common::set(&["a", "c"]));

    // Every request stalls 100 s: with a 2 s timeout the remote is switched off at the first
    // one, and the run goes on locally.
    let url = serve(|_, s| {
        std::thread::sleep(Duration::from_secs(100));
        respond(s, "404 Not Found", "", b"");
    });
    let c = Project::new(A_C);
    let mut cmd = c.cmd(&["run", "--remote", &url]);
    cmd.env("NASFLOW_REMOTE_TIMEOUT", "2");
    let start = Instant::now();
    let out = within(cmd, 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(
        stderr(&out).contains("the remote is off"),
        "{}",
        stderr(&out)
    );
    assert_eq!(common::ran(&out), common::set(&["a", "c"]));
}

// 7. Credentials in URLs are never printed or stored.
#[test]
fn credentials_in_urls_are_redacted_everywhere() {
    const SECRET: &str = "s3cr3tpw";
    let payload = b"payload\n".to_vec();
    let sha = {
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p");
        std::fs::write(&f, &payload).unwrap();
        let o = Command::new("sha256sum").arg(&f).output().unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let body = payload.clone();
    let url = serve(move |req, s| {
        if req.contains("/remote/") {
            respond(s, "500 Internal Server Error", "", b"");
        } else {
            respond(s, "200 OK", "", &body);
        }
    });
    let with_secret = url.replace("http://", &format!("http://user:{SECRET}@"));
    let p = Project::new(A_C);
    let out = within(
        p.cmd(&["run", "--remote", &format!("{with_secret}/remote/")]),
        60,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = format!("{}{}", stderr(&out), stdout(&out));
    assert!(printed.contains("***@127.0.0.1"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");

    let fetch = format!(
        "[stages.f]\nkind = \"fetch\"\nurl = \"{with_secret}/data/f.bin\"\nsha256 = \"{sha}\"\n"
    );
    let f = Project::new(&fetch);
    let out = within(f.cmd(&["run"]), 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!format!("{}{}", stderr(&out), stdout(&out)).contains(SECRET));
    for args in [&["show", "f"][..], &["log", "f"], &["show", "f", "--json"]] {
        let o = f.nasflow(args);
        assert!(
            !format!("{}{}", stderr(&o), stdout(&o)).contains(SECRET),
            "{args:?}"
        );
    }
    let bundle = f.path().join("b.tar");
    assert!(f
        .nasflow(&["cache", "export", bundle.to_str().unwrap()])
        .status
        .success());
    let bytes = std::fs::read(&bundle).unwrap();
    assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    for file in common::files_under(&f.cache()) {
        let bytes = std::fs::read(&file).unwrap();
        let leaked = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!leaked, "{} holds the password", file.display());
    }
}

// 8. The cache is a directory nasflow made: never one holding the user's own files.
#[test]
fn a_cache_directory_holding_the_users_files_is_refused() {
    let toml = "[pipeline]\ncache = \".\"\n[stages.a]\nkind = \"cmd\"\nrun = \"echo a > $NASFLOW_OUT/a.txt\"\n";
    let p = Project::new(toml);
    std::fs::create_dir_all(p.path().join("tmp/otherhost-123-work")).unwrap();
    std::fs::write(p.path().join("tmp/notes.txt"), "mine").unwrap();
    for args in [&["run"][..], &["gc"]] {
        let out = within(p.cmd(args), 30);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&out).contains("not a nasflow cache directory"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        std::fs::read_to_string(p.path().join("tmp/notes.txt")).unwrap(),
        "mine"
    );
    assert!(p.path().join("tmp/otherhost-123-work").is_dir());
    let root = Project::new(&toml.replace("cache = \".\"", "cache = \"/\""));
    let out = within(root.cmd(&["run"]), 30);
    assert!(
        stderr(&out).contains("filesystem's root"),
        "{}",
        stderr(&out)
    );
    // A cache from before the marker (nasflow's layout only) keeps working and is adopted.
    let old = Project::new(A_C);
    old.run_ok(&[]);
    std::fs::remove_file(old.cache().join("CACHEDIR.TAG")).unwrap();
    assert_eq!(old.run_ok(&[]), common::set(&[]));
    assert!(old.cache().join("CACHEDIR.TAG").is_file());
}

// 9. fetch has a size bound and a deadline.
#[test]
fn fetch_stops_at_max_size_and_at_its_deadline() {
    let zero = format!(
        "[stages.f]\nkind = \"fetch\"\nurl = \"file:///dev/zero\"\nname = \"z.bin\"\nsha256 = \"{}\"\nmax_size = 1000000\n",
        "0".repeat(64)
    );
    let p = Project::new(&zero);
    let out = within(p.cmd(&["run"]), 30);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file") || stderr(&out).contains("max_size"));
    assert!(biggest_file_under(&p.cache()) < 2_000_000);

    let big = tempfile::tempdir().unwrap();
    let file = big.path().join("big.bin");
    std::fs::write(&file, vec![1u8; 3_000_000]).unwrap();
    let p = Project::new(&zero.replace("file:///dev/zero", &format!("file://{}", file.display())));
    let out = within(p.cmd(&["run"]), 30);
    assert!(
        stderr(&out).contains("larger than `max_size`"),
        "{}",
        stderr(&out)
    );
    assert!(biggest_file_under(&p.cache()) < 2_000_000);

    // A server that trickles one byte every 2 s, against `timeout = 3`.
    let url = serve(|_, s| {
        let _ =
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n");
        for _ in 0..1000 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    let slow = format!(
        "[stages.f]\nkind = \"fetch\"\nurl = \"{url}/t.bin\"\nsha256 = \"{}\"\ntimeout = 3\n",
        "0".repeat(64)
    );
    let p = Project::new(&slow);
    let start = Instant::now();
    let out = within(p.cmd(&["run"]), 60);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(stderr(&out).contains("timeout"), "{}", stderr(&out));
}

// 10. The smaller ones: a nondeterministic stage is named, a fetch param error points at the
// param, a foreach stage over no items says so.
#[test]
fn nondeterminism_param_places_and_empty_item_lists_are_reported() {
    let toml = "[stages.clock]\nkind = \"cmd\"\nrun = \"date +%s%N > $NASFLOW_OUT/t.txt\"\n";
    let p = Project::new(toml);
    p.run_ok(&[]);
    let out = p.nasflow(&["run", "--force", "clock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`clock` is not deterministic"),
        "{}",
        stderr(&out)
    );
    let why = stdout(&p.nasflow(&["why", "clock"]));
    assert!(why.contains("not deterministic"), "{why}");

    let bad = format!(
        "[stages.f]\nkind = \"fetch\"\nurl = \"https://example.org/x\"\nsha256 = \"{}\"\nname = \".hidden\"\n",
        "0".repeat(64)
    );
    let p = Project::new(&bad);
    let e = stderr(&p.nasflow(&["plan"]));
    assert!(e.contains("pipeline.toml:5:"), "{e}");
    assert!(e.contains("`name`"), "{e}");

    let empty = "[stages.list]\nkind = \"cmd\"\nrun = \": > $NASFLOW_OUT/items.jsonl\"\n[stages.each]\nkind = \"cmd\"\nforeach = \"list\"\nrun = \"echo $NASFLOW_ITEM > $NASFLOW_OUT/i.txt\"\n";
    let p = Project::new(empty);
    let out = p.nasflow(&["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        common::summary(&out, "no").contains("each"),
        "{}",
        stderr(&out)
    );
    assert!(!common::ran(&out).contains("each"));
}
