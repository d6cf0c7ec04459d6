//! `results/`: a stable place in the project directory for the current outputs. After each run
//! `results/STAGE` (a variant's: `results/VARIANT/STAGE`) is a symbolic link to the stage's
//! current output view in the cache; a stage without a current result has no link. A run with
//! `--set` leaves the links alone (they show pipeline.toml's results, as a plain `show`,
//! `metrics` or `report` does) and prints where its own outputs are ([`tell`]). `gc` removes
//! the links whose targets it removed. The directory holds a `.gitignore` of `*`, so git ignores it,
//! and `.links`, what the links showed at the last refresh (an unchanged run touches nothing), and
//! `.noop`, the last plain run's memo for the no-op fast path ([`super::noop`]).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::project::Project;
use crate::engine::Engine;
use crate::schedule::StageOutcome;

pub const RESULTS: &str = "results";

/// The directory of a run's links: `results/` or `results/VARIANT/`.
fn dir_of(project: &Project, variant: Option<&str>) -> PathBuf {
    let root = project.p.root.join(RESULTS);
    match variant {
        Some(v) if !v.is_empty() => root.join(v.replace(['/', '\\'], "_")),
        _ => root,
    }
}

/// Points `results/[VARIANT/]STAGE` at the current output of each stage a run ended with.
pub fn refresh(
    project: &Project,
    engine: &Engine,
    outcomes: &[StageOutcome],
    variant: Option<&str>,
) -> Result<()> {
    let dir = dir_of(project, variant);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ignore = project.p.root.join(RESULTS).join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n").with_context(|| format!("writing {}", ignore.display()))?;
    }
    // What the links show, one line per stage; unchanged since the last refresh, and the links
    // are left alone (one read: the no-op path stays cheap).
    let state: String = (outcomes.iter())
        .map(|o| {
            let digest = o
                .record
                .as_ref()
                .map_or("-".into(), |r| r.output_digest.to_string());
            format!("{} {digest}\n", project.p.decl(o.stage).name)
        })
        .collect();
    let state_file = dir.join(".links");
    if std::fs::read_to_string(&state_file).is_ok_and(|s| s == state) {
        return Ok(());
    }
    for o in outcomes {
        let link = dir.join(&project.p.decl(o.stage).name);
        match &o.record {
            Some(r) => {
                // Views are named by output digest: a link that already points at the view's
                // directory, which exists, is current (two syscalls; the no-op path stays cheap).
                let v = engine.view_of(o.stage, r);
                let target =
                    std::path::absolute(engine.cache.view_dir(&v.stage, &v.digest, v.item))
                        .with_context(|| format!("the view of {}", link.display()))?;
                if std::fs::read_link(&link).is_ok_and(|t| t == target) && target.is_dir() {
                    continue;
                }
                engine.output_dir(o.stage, r)?;
                relink(&link, &target)?;
            }
            None => remove_link(&link)?,
        }
    }
    std::fs::write(&state_file, state)
        .with_context(|| format!("writing {}", state_file.display()))?;
    Ok(())
}

/// After a `--set` run: says that `results/` still shows pipeline.toml's results, and where this
/// run's outputs are.
pub fn tell(project: &Project, engine: &Engine, outcomes: &[StageOutcome]) {
    eprintln!(
        "note: --set run: results/ keeps showing pipeline.toml's results; this run's outputs:"
    );
    for o in outcomes {
        let Some(r) = &o.record else { continue };
        if let Ok(dir) = engine.output_dir(o.stage, r) {
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            eprintln!("  {:<16} {}", project.p.decl(o.stage).name, dir.display());
        }
    }
    eprintln!("  (`nasflow show STAGE`, `metrics`, `report` with the same --set read these)");
}

/// Replaces `link` with a symbolic link to `target`, atomically (a rename over it).
fn relink(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("linking {} to {}", tmp.display(), target.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("replacing {}", link.display()))?;
    Ok(())
}

/// Removes `path` if it is a symbolic link (never a directory or a file someone put there).
fn remove_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Removes the links under `results/` (and `results/VARIANT/`) whose targets are gone; returns
/// how many.
pub fn prune(root: &Path) -> Result<usize> {
    let mut removed = 0;
    let walk = walkdir::WalkDir::new(root.join(RESULTS))
        .min_depth(1)
        .max_depth(2);
    for entry in walk.into_iter().filter_map(|e| e.ok()) {
        let path = entry.path();
        if entry.path_is_symlink() && !path.exists() {
            remove_link(path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        // The next run relinks what it can.
        let walk = walkdir::WalkDir::new(root.join(RESULTS)).max_depth(2);
        for entry in walk.into_iter().filter_map(|e| e.ok()) {
            if entry.file_name() == ".links" {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relink_replaces_and_prune_drops_dangling_links() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let results = dir.path().join(RESULTS);
        std::fs::create_dir_all(results.join("v")).unwrap();
        let link = results.join("s");
        relink(&link, &a).unwrap();
        relink(&link, &b).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), b);
        relink(&results.join("v").join("s"), &a).unwrap();
        std::fs::write(results.join("keep.txt"), "mine").unwrap();
        std::fs::remove_dir(&a).unwrap();
        assert_eq!(prune(dir.path()).unwrap(), 1);
        assert!(link.exists() && !results.join("v").join("s").exists());
        assert!(results.join("keep.txt").exists(), "only links are removed");
        remove_link(&results.join("keep.txt")).unwrap();
        assert!(results.join("keep.txt").exists());
    }
}
