//! Running one job in a child process: a `cmd` stage's shell command, or a native kind in
//! `nasflow-worker`. The child writes into the staging directory; its stderr is kept for the
//! failure report.
//!
//! The `cmd` contract: `run` is executed by `sh -c` in the project directory with
//!
//! | variable               | value |
//! |------------------------|-------|
//! | `NASFLOW_OUT`          | the (empty) directory to write outputs into |
//! | `NASFLOW_PARAMS`       | a JSON file holding the stage's params table |
//! | `NASFLOW_IN_<DEP>`     | each upstream stage's output directory (name upper-cased, `-` as `_`) |
//! | `NASFLOW_STAGE`        | the stage name |
//! | `NASFLOW_SEED`         | the pipeline seed |
//! | `NASFLOW_DEVICE`       | the resolved device (`cpu`, `cuda:0`) |
//! | `NASFLOW_THREADS`, `OMP_NUM_THREADS` | the CPU threads this job may use |
//! | `NASFLOW_ITEM`, `NASFLOW_ITEM_INDEX` | for `foreach` stages: the item (JSON) and its index |
//!
//! A non-zero exit fails the stage.
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::job::{Job, PROGRESS_PREFIX};

/// How a job ended.
pub struct Finished {
    pub peak_rss_bytes: u64,
}

/// The environment variable that names a dependency's directory.
pub fn input_var(dep: &str) -> String {
    format!("NASFLOW_IN_{}", dep.to_uppercase().replace('-', "_"))
}

/// The worker binary: `$NASFLOW_WORKER`, or `nasflow-worker` beside the running `nasflow`.
pub fn worker_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NASFLOW_WORKER") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("nasflow"));
    exe.with_file_name("nasflow-worker")
}

/// Runs a `cmd` stage's command.
pub fn run_cmd(
    command: &str,
    job: &Job,
    project: &Path,
    staging: &Path,
) -> Result<Finished, String> {
    let params_file = staging.join("params.json");
    std::fs::write(
        &params_file,
        serde_json::to_vec_pretty(&job.params).expect("serializes"),
    )
    .map_err(|e| format!("{}: {e}", params_file.display()))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(project);
    cmd.env("NASFLOW_OUT", &job.out)
        .env("NASFLOW_PARAMS", &params_file)
        .env("NASFLOW_STAGE", &job.stage)
        .env("NASFLOW_SEED", job.seed.to_string())
        .env("NASFLOW_DEVICE", &job.device)
        .env("NASFLOW_THREADS", job.threads.to_string())
        .env("OMP_NUM_THREADS", job.threads.to_string());
    for (dep, dir) in &job.inputs {
        cmd.env(input_var(dep), dir);
    }
    if let Some((index, value)) = &job.item {
        cmd.env("NASFLOW_ITEM", value.to_string())
            .env("NASFLOW_ITEM_INDEX", index.to_string());
    }
    spawn_and_wait(cmd, staging, &|_, _| {})
}

/// Runs a native kind's job in `nasflow-worker`, reporting its progress lines.
pub fn run_worker(
    job: &Job,
    staging: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<Finished, String> {
    let job_file = staging.join("job.json");
    std::fs::write(
        &job_file,
        serde_json::to_vec_pretty(job).expect("serializes"),
    )
    .map_err(|e| format!("{}: {e}", job_file.display()))?;
    let mut cmd = Command::new(worker_path());
    cmd.arg("run")
        .arg(&job_file)
        .env("OMP_NUM_THREADS", job.threads.to_string());
    spawn_and_wait(cmd, staging, progress)
}

fn spawn_and_wait(
    mut cmd: Command,
    staging: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<Finished, String> {
    let stderr_path = staging.join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // SAFETY: prctl is async-signal-safe; it makes the child die with the thread that started it,
    // so a killed nasflow leaves no orphan still writing into a staging directory.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let program = cmd.get_program().to_string_lossy().to_string();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut captured = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let mut parts = line.split_whitespace();
        if parts.next() == Some(PROGRESS_PREFIX) {
            let nums: Vec<u64> = parts.filter_map(|p| p.parse().ok()).collect();
            if let [done, total] = nums[..] {
                progress(done, total);
            }
        } else if captured.len() < 64 * 1024 {
            captured.push_str(&line);
            captured.push('\n');
        }
    }
    let (status, rss) =
        wait4(child.id() as libc::pid_t).map_err(|e| format!("waiting for {program}: {e}"))?;
    drop(child);
    if status == 0 {
        return Ok(Finished {
            peak_rss_bytes: rss,
        });
    }
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let tail: Vec<&str> = err
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let why = if status > 0 {
        format!("exit code {status}")
    } else {
        format!("killed by signal {}", -status)
    };
    let mut report = why;
    if !tail.is_empty() {
        report.push_str(&format!(
            "\n    stderr (last {} lines):\n      {}",
            tail.len(),
            tail.join("\n      ")
        ));
    }
    if err.is_empty() && !captured.is_empty() {
        report.push_str(&format!(
            "\n    stdout:\n      {}",
            captured.trim_end().replace('\n', "\n      ")
        ));
    }
    Err(report)
}

/// Waits for a child and returns (exit code, or -signal; peak resident bytes).
fn wait4(pid: libc::pid_t) -> std::io::Result<(i32, u64)> {
    let mut status: libc::c_int = 0;
    // SAFETY: plain FFI call with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    Ok((code, usage.ru_maxrss as u64 * 1024))
}
