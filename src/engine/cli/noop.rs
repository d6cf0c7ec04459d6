//! The no-op fast path: `nasflow run` twice with nothing changed answers the second time from a
//! memo of the first, without parsing pipeline.toml or any record (as ninja answers "no work to
//! do" from its logs). The memo (`results/.noop`) is written after a run in which every stage of
//! the closure ended cached or ran; it holds a fingerprint of everything the decisions read that
//! is not in the cache, and the identity (`stat`) of everything they read that is:
//!
//! - the fingerprint: this binary (its inode and mtime), the pipeline file's path and bytes, the
//!   targets, `--set`, `-j`, `--executor`, and every `NASFLOW_*` variable;
//! - each stage record read (device, inode, size, mtime and ctime: a rewrite or replacement
//!   moves one of them), each output blob (it must exist, as the decision requires), and each
//!   declared input file (as the stat cache compares them; a directory input or one modified in
//!   the last two seconds, as git's racy-clean rule, makes the run not memoized).
//!
//! A replay checks all of that (a `stat` each) and prints what the run would have printed. Any
//! difference, and any run with `--force`, `--dry-run`, a remote, a variant or a sweep, takes the
//! full path. `results/` must show the same results, else the full path refreshes it.
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::project::Project;
use super::run::RunArgs;
use crate::config::StageId;
use crate::engine::Engine;
use crate::schedule::{StageOutcome, Status};

/// The memo's name under `results/`.
pub const MEMO: &str = ".noop";
const FORMAT: &str = "nasflow-noop 1";
/// Inputs modified this recently are not trusted by their stat (git's racy-clean rule).
const RACY_NS: i128 = 2_000_000_000;

/// What identifies a file: device, inode, size, mtime and ctime (ns).
fn identity(m: &std::fs::Metadata) -> String {
    format!(
        "{} {} {} {} {}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128
    )
}

/// Whether a run with these arguments may be memoized or replayed.
fn eligible(a: &RunArgs) -> bool {
    a.force.is_empty()
        && !a.dry_run
        && a.remote.is_none()
        && a.sets.variant.is_empty()
        && !a.sets.variants
}

/// The fingerprint of what the decisions read outside the cache (see the module's doc), from
/// the pipeline file's bytes.
fn fingerprint(file: &Path, text: &[u8], a: &RunArgs) -> Option<String> {
    let exe = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
    let mut h = blake3::Hasher::new();
    let mut put = |s: &str| {
        h.update(s.as_bytes());
        h.update(b"\0");
    };
    put(FORMAT);
    put(&identity(&exe));
    put(&std::path::absolute(file).ok()?.to_string_lossy());
    put(&a.targets.join("\0"));
    for o in &a.sets.sets {
        put(&o.raw);
    }
    put(&format!("{:?} {:?}", a.jobs, a.executor));
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("NASFLOW_"))
        .collect();
    env.sort();
    for (k, v) in env {
        put(&k);
        put(&v);
    }
    h.update(text);
    Some(h.finalize().to_hex().to_string())
}

fn memo_path(root: &Path) -> PathBuf {
    root.join(super::results::RESULTS).join(MEMO)
}

/// Replays a memoized no-op run, if everything it read is unchanged; `None` takes the full path.
pub fn replay(file: &Path, a: &RunArgs) -> Option<ExitCode> {
    if !eligible(a) {
        return None;
    }
    let start = Instant::now();
    let text = std::fs::read(file).ok()?;
    let root = std::path::absolute(file).ok()?.parent()?.to_path_buf();
    let memo = std::fs::read_to_string(memo_path(&root)).ok()?;
    let mut lines = memo.lines();
    if lines.next()? != FORMAT || lines.next()? != fingerprint(file, &text, a)? {
        return None;
    }
    let cache_dir = PathBuf::from(lines.next()?.strip_prefix("cache ")?);
    let links = std::fs::read_to_string(root.join(super::results::RESULTS).join(".links")).ok()?;
    let mut stages: Vec<(usize, &str, &str)> = Vec::new();
    for line in lines {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "S" => {
                let mut w = rest.splitn(3, ' ');
                let index = w.next()?.parse().ok()?;
                stages.push((index, w.next()?, w.next()?));
            }
            "B" => std::fs::symlink_metadata(rest)
                .ok()
                .filter(|m| m.is_file())
                .map(|_| ())?,
            "F" => {
                let (path, id) = rest.split_once('\t')?;
                (identity(&std::fs::metadata(path).ok()?) == id).then_some(())?;
            }
            _ => return None,
        }
    }
    // results/ must show these results (else the full path refreshes it).
    let mut by_index = stages.clone();
    by_index.sort_by_key(|s| s.0);
    let state: String = by_index
        .iter()
        .map(|(_, n, d)| format!("{n} {d}\n"))
        .collect();
    if state != links {
        return None;
    }
    // The store lock, shared, as a run takes it: not while gc or verify run.
    let cache = crate::cache::Cache::open(&cache_dir).ok()?;
    let _store = super::project::store_lock(&cache, false).ok()?;
    print_replay(&stages, &by_index, start);
    let results = root.join(super::results::RESULTS);
    let summaries: Vec<(String, PathBuf)> = (stages.iter())
        .map(|(_, n, _)| {
            let path = results.join(n).join(nasflow_contract::layout::SUMMARY);
            (n.to_string(), path)
        })
        .collect();
    super::headline::print(&summaries);
    eprint!("{}", super::run::next_steps(&root));
    Some(ExitCode::SUCCESS)
}

/// What the full path prints for a run in which every stage was cached.
fn print_replay(order: &[(usize, &str, &str)], by_index: &[(usize, &str, &str)], start: Instant) {
    use std::fmt::Write as _;
    let ui = crate::progress::Ui::new();
    let mut text = String::new();
    for (_, name, _) in order {
        text.push_str(&ui.format_line(&format!("cached {name}")));
    }
    let _ = writeln!(
        text,
        "summary: 0 ran, {} cached, 0 failed ({:.2}s; nothing changed since the last run)",
        order.len(),
        start.elapsed().as_secs_f64()
    );
    for (_, name, _) in by_index {
        let _ = writeln!(text, "{}", super::run::stage_line(name, "cached", ""));
    }
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// After a run: writes the memo if every stage of the closure is cached or ran and nothing it
/// read outside the cache is racy or a directory; else removes any memo. Best effort.
pub fn remember(
    project: &Project,
    engine: &Engine,
    a: &RunArgs,
    text_before: &[u8],
    outcomes: &[StageOutcome],
) {
    let path = memo_path(&project.p.root);
    let _ = std::fs::remove_file(&path);
    if !eligible(a) {
        return;
    }
    let Some(memo) = memo_text(project, engine, a, text_before, outcomes) else {
        return;
    };
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    if std::fs::write(&tmp, memo).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

fn memo_text(
    project: &Project,
    engine: &Engine,
    a: &RunArgs,
    text_before: &[u8],
    outcomes: &[StageOutcome],
) -> Option<String> {
    use std::fmt::Write as _;
    let file = &project.p.file;
    // The file the run loaded must be the one fingerprinted: unchanged since before the run.
    let text = std::fs::read(file).ok()?;
    if text != text_before {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as i128;
    let mut memo = format!(
        "{FORMAT}\n{}\ncache {}\n",
        fingerprint(file, &text, a)?,
        one_line(engine.cache.root())?
    );
    for o in outcomes {
        let ok = matches!(o.status, Status::Cached | Status::Ran | Status::NoItems);
        let r = o.record.as_ref().filter(|_| ok)?;
        let name = engine.name(o.stage);
        let record = engine.cache.record_path(name, &r.key);
        let _ = writeln!(
            memo,
            "F {}\t{}",
            one_line(&record)?,
            identity(&std::fs::metadata(&record).ok()?)
        );
        for f in &r.files {
            let _ = writeln!(memo, "B {}", one_line(&engine.cache.blob_path(&f.digest))?);
        }
        for input in engine.declared_inputs(o.stage) {
            let m = std::fs::metadata(&input).ok()?;
            let mtime = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
            if !m.is_file() || now - mtime < RACY_NS {
                return None;
            }
            let _ = writeln!(memo, "F {}\t{}", one_line(&input)?, identity(&m));
        }
    }
    // Stages in the order they were decided (closure order), for the replayed lines.
    let order = project.closure(&a.targets).ok()?;
    let by_stage: std::collections::HashMap<StageId, &StageOutcome> =
        outcomes.iter().map(|o| (o.stage, o)).collect();
    for i in order {
        let r = by_stage.get(&i)?.record.as_ref()?;
        let _ = writeln!(memo, "S {i} {} {}", engine.name(i), r.output_digest);
    }
    Some(memo)
}

/// A path as one line of the memo (a path with a line break or a tab is not memoized).
fn one_line(p: &Path) -> Option<String> {
    let s = p.to_str()?;
    (!s.contains(['\n', '\t'])).then(|| s.to_string())
}
