//! A hostile teammate and a careless user against the real binary: records whose paths climb out
//! of the cache or are absolute, digests that point at local files or panic a slice, item keys
//! that name files elsewhere, delivered by a directory remote, an HTTP remote and a bundle; and
//! stages that write through their inputs or store links to outside files. Each time: nothing
//! outside the cache changes (a sentinel tree is hashed before and after), nothing exits 101, and
//! the consumer's run completes with the right outputs.
mod common;
#[path = "support/nginx.rs"]
mod nginx;

use std::path::{Path, PathBuf};

use common::{stderr, stdout, Project};
use serde_json::{json, Value};

/// `a` writes "a", `b` appends "b"; `list` has two items that `each` copies.
const PIPELINE: &str = r#"
[stages.a]
kind = "cmd"
run = "echo a > $NASFLOW_OUT/out.txt"
[stages.b]
kind = "cmd"
deps = ["a"]
run = "cat $NASFLOW_IN_A/out.txt > $NASFLOW_OUT/out.txt; echo b >> $NASFLOW_OUT/out.txt"
[stages.list]
kind = "cmd"
run = "printf '1\n2\n' > $NASFLOW_OUT/items.jsonl"
[stages.each]
kind = "cmd"
foreach = "list"
run = "echo $NASFLOW_ITEM > $NASFLOW_OUT/item.txt"
"#;

/// A directory outside every cache, and a digest of everything in it (names, bytes, modes).
struct Sentinel {
    dir: tempfile::TempDir,
}

impl Sentinel {
    fn new() -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), "keep").unwrap();
        std::fs::write(dir.path().join("secret"), "secret").unwrap();
        Sentinel { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn digest(&self) -> String {
        use std::os::unix::fs::PermissionsExt;
        let mut h = blake3::Hasher::new();
        for f in common::files_under(self.path()) {
            h.update(f.to_string_lossy().as_bytes());
            h.update(&std::fs::read(&f).unwrap());
            let mode = std::fs::metadata(&f).unwrap().permissions().mode();
            h.update(&mode.to_le_bytes());
        }
        h.finalize().to_hex().to_string()
    }
    /// A relative path from deep inside a cache to `name` here, through `..`.
    fn climb(&self, name: &str) -> String {
        format!("{}{}/{name}", "../".repeat(30), self.path().display()).replace("//", "/")
    }
}

/// The output digest nasflow computes over a manifest, so that a forged record is consistent.
fn manifest_digest(files: &[Value]) -> String {
    let mut entries: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["digest"].as_str().unwrap().into(),
            )
        })
        .collect();
    entries.sort();
    let mut h = blake3::Hasher::new();
    for (p, d) in entries {
        h.update(p.as_bytes());
        h.update(b"\0");
        h.update(d.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// An attack: what it is, the stage whose record it edits, the edit.
type Attack = (&'static str, &'static str, Box<dyn Fn(&mut Value)>);

/// The attacks, each an edit of a stage record.
fn attacks(s: &Sentinel) -> Vec<Attack> {
    let climb = s.climb("x");
    let abs = s.path().join("x").display().to_string();
    let read = s.climb("secret");
    let escape = s.path().join("evil").display().to_string();
    let path = |p: String| {
        Box::new(move |r: &mut Value| r["files"][0]["path"] = json!(p)) as Box<dyn Fn(&mut Value)>
    };
    let digest = |d: String| {
        Box::new(move |r: &mut Value| r["files"][0]["digest"] = json!(d)) as Box<dyn Fn(&mut Value)>
    };
    vec![
        ("a path climbing out", "a", path(climb)),
        ("an absolute path", "a", path(abs)),
        ("a digest naming a local file", "a", digest(read)),
        ("a one-character digest", "a", digest("a".into())),
        (
            "a non-ASCII digest",
            "a",
            digest(format!("é{}", "0".repeat(62))),
        ),
        (
            "an item key naming a file elsewhere",
            "each",
            Box::new(move |r: &mut Value| r["items"][0]["key"] = json!(escape)),
        ),
    ]
}

/// Applies `edit` to a record file and makes its output digest agree with its files again.
fn forge(record: &Path, edit: &dyn Fn(&mut Value)) {
    let mut r: Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    edit(&mut r);
    r["output_digest"] = json!(manifest_digest(r["files"].as_array().unwrap()));
    std::fs::write(record, serde_json::to_vec_pretty(&r).unwrap()).unwrap();
}

fn record_in(store: &Path, stage: &str) -> PathBuf {
    common::files_under(&store.join("records").join(stage)).remove(0)
}

/// The consumer's side: no panic, a run that completes with the right outputs, the sentinel
/// unchanged.
fn assert_consumer_is_safe(
    c: &Project,
    out: &std::process::Output,
    s: &Sentinel,
    before: &str,
    what: &str,
) {
    assert_ne!(
        out.status.code(),
        Some(101),
        "{what}: panicked\n{}",
        stderr(out)
    );
    let run = c.nasflow(&["run"]);
    assert!(run.status.success(), "{what}: {}", stderr(&run));
    let v: Value = serde_json::from_slice(&c.nasflow(&["show", "b", "--json"]).stdout).unwrap();
    let b =
        std::fs::read_to_string(Path::new(v["out_dir"].as_str().unwrap()).join("out.txt")).unwrap();
    assert_eq!(b, "a\nb\n", "{what}");
    assert_eq!(
        s.digest(),
        before,
        "{what}: something outside the cache changed"
    );
    assert!(!s.path().join("evil.json").exists(), "{what}");
}

#[test]
fn hostile_records_from_a_directory_remote_change_nothing_outside_the_cache() {
    let s = Sentinel::new();
    let before = s.digest();
    for (what, stage, edit) in attacks(&s) {
        let remote = tempfile::tempdir().unwrap();
        let rs = remote.path().to_str().unwrap();
        let p = Project::new(PIPELINE);
        assert!(p.nasflow(&["run", "--remote", rs]).status.success());
        forge(&record_in(remote.path(), stage), &edit);
        let c = Project::new(PIPELINE);
        let out = c.nasflow(&["run", "--remote", rs]);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("rejected"),
            "{what}: {}",
            stderr(&out)
        );
        assert_consumer_is_safe(&c, &out, &s, &before, what);
        let pull = Project::new(PIPELINE).nasflow(&["cache", "pull", rs]);
        assert_consumer_is_safe(&c, &pull, &s, &before, what);
    }
}

#[test]
fn hostile_records_from_an_http_remote_change_nothing_outside_the_cache() {
    let Some(server) = nginx::start(Default::default()) else {
        return;
    };
    let s = Sentinel::new();
    let before = s.digest();
    let p = Project::new(PIPELINE);
    let out = p.nasflow(&["run", "--remote", &server.url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = server.store().join("cache");
    for (what, stage, edit) in attacks(&s) {
        let record = record_in(&store, stage);
        let honest = std::fs::read(&record).unwrap();
        forge(&record, &edit);
        let c = Project::new(PIPELINE);
        let out = c.nasflow(&["run", "--remote", &server.url]);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("rejected"),
            "{what}: {}",
            stderr(&out)
        );
        assert_consumer_is_safe(&c, &out, &s, &before, what);
        std::fs::write(&record, honest).unwrap();
    }
}

/// Rewrites a bundle with `edit` applied to the record of `stage`.
fn forge_bundle(bundle: &Path, stage: &str, edit: &dyn Fn(&mut Value)) -> PathBuf {
    let forged = bundle.with_extension("forged.tar");
    let mut out = tar::Builder::new(std::fs::File::create(&forged).unwrap());
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if name.starts_with(&format!("records/{stage}/")) {
            let mut r: Value = serde_json::from_slice(&bytes).unwrap();
            edit(&mut r);
            r["output_digest"] = json!(manifest_digest(r["files"].as_array().unwrap()));
            bytes = serde_json::to_vec(&r).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append_data(&mut h, &name, bytes.as_slice()).unwrap();
    }
    // Entries a bundle may not hold at all: names that climb out of the cache.
    let evil = format!("{}x", "../".repeat(8));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_cksum();
    let _ = out.append_data(&mut h, &evil, &b"evil"[..]);
    out.finish().unwrap();
    forged
}

#[test]
fn hostile_bundles_change_nothing_outside_the_cache() {
    let s = Sentinel::new();
    let before = s.digest();
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    let bundle = p.path().join("bundle.tar");
    assert!(p
        .nasflow(&["cache", "export", bundle.to_str().unwrap()])
        .status
        .success());
    for (what, stage, edit) in attacks(&s) {
        let forged = forge_bundle(&bundle, stage, &edit);
        let c = Project::new(PIPELINE);
        let out = c.nasflow(&["cache", "import", forged.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("rejected"),
            "{what}: {}",
            stderr(&out)
        );
        assert_consumer_is_safe(&c, &out, &s, &before, what);
    }
}

#[test]
fn garbage_in_the_local_store_never_panics_a_command() {
    let s = Sentinel::new();
    let p = Project::new(PIPELINE);
    p.run_ok(&[]);
    let record = record_in(&p.cache(), "a");
    let remote = tempfile::tempdir().unwrap();
    let bundle = p.path().join("b.tar");
    let rs = remote.path().to_str().unwrap();
    assert!(p
        .nasflow(&["cache", "export", bundle.to_str().unwrap()])
        .status
        .success());
    for (what, _, edit) in attacks(&s).into_iter().filter(|a| a.1 == "a") {
        forge(&record, &edit);
        std::fs::write(p.cache().join("blobs").join(".DS_Store"), "stray").unwrap();
        for args in [
            vec!["plan"],
            vec!["status"],
            vec!["show", "a"],
            vec!["why", "b"],
            vec!["cache", "verify"],
            vec!["gc"],
            vec!["cache", "push", rs],
            vec!["cache", "pull", rs],
            vec!["cache", "import", bundle.to_str().unwrap()],
            vec!["run"],
        ] {
            let out = p.nasflow(&args);
            assert_ne!(
                out.status.code(),
                Some(101),
                "{what}, {args:?}: {}",
                stderr(&out)
            );
        }
        let v: Value = serde_json::from_slice(&p.nasflow(&["show", "b", "--json"]).stdout).unwrap();
        let b = std::fs::read_to_string(Path::new(v["out_dir"].as_str().unwrap()).join("out.txt"))
            .unwrap();
        assert_eq!(b, "a\nb\n", "{what}");
    }
}

#[test]
fn a_stage_that_writes_into_its_input_fails_and_the_input_is_recomputed() {
    let toml = "[stages.a]\nkind = \"cmd\"\nrun = \"echo a > $NASFLOW_OUT/a.txt\"\n[stages.b]\nkind = \"cmd\"\ndeps = [\"a\"]\nrun = \"echo tampered >> $NASFLOW_IN_A/a.txt; touch -d 2000-01-01 $NASFLOW_IN_A/a.txt; echo b > $NASFLOW_OUT/b.txt\"\n";
    let p = Project::new(toml);
    let out = p.nasflow(&["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrote into its inputs (a/a.txt)"),
        "{}",
        stderr(&out)
    );
    // An honest b: a's result is recomputed (its blob was taken out) and b reads the right bytes.
    let honest = "cat $NASFLOW_IN_A/a.txt > $NASFLOW_OUT/b.txt; echo b >> $NASFLOW_OUT/b.txt";
    p.write_pipeline(&toml.replace(
        "echo tampered >> $NASFLOW_IN_A/a.txt; touch -d 2000-01-01 $NASFLOW_IN_A/a.txt; echo b > $NASFLOW_OUT/b.txt",
        honest,
    ));
    assert_eq!(p.run_ok(&[]), common::set(&["a", "b"]));
    let v: Value = serde_json::from_slice(&p.nasflow(&["show", "b", "--json"]).stdout).unwrap();
    let b =
        std::fs::read_to_string(Path::new(v["out_dir"].as_str().unwrap()).join("b.txt")).unwrap();
    assert_eq!(b, "a\nb\n");
    assert!(stdout(&p.nasflow(&["cache", "verify"])).contains(", 0 corrupt"));
}

#[test]
fn an_output_linked_to_an_outside_file_is_copied_into_the_store() {
    let s = Sentinel::new();
    let outside = s.path().join("x");
    let toml = format!(
        "[stages.a]\nkind = \"cmd\"\nrun = \"ln {} $NASFLOW_OUT/x\"\n",
        outside.display()
    );
    let p = Project::new(&toml);
    p.run_ok(&[]);
    let before = std::fs::metadata(&outside).unwrap().permissions();
    assert!(!before.readonly(), "the outside file is not made read-only");
    std::fs::write(&outside, "changed later").unwrap();
    let verify = stdout(&p.nasflow(&["cache", "verify"]));
    assert!(
        verify.contains(", 0 corrupt"),
        "the blob is not the outside file: {verify}"
    );
}
