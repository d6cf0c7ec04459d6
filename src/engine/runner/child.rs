//! Running one job in a child process: a `cmd` stage's shell command, or a native kind in
//! `nasflow-worker`. The child's stdout (but for progress lines) and stderr go to
//! `stdout.log` and `stderr.log` in the job's provenance directory.
//!
//! The `cmd` contract: `run` is executed by `sh -c` in the project directory with
//!
//! | variable               | value |
//! |------------------------|-------|
//! | `NASFLOW_OUT`          | the (empty) directory to write outputs into |
//! | `NASFLOW_PROVENANCE`   | a directory for what varies from run to run (timings, logs): kept with the record, not part of the output digest |
//! | `NASFLOW_PARAMS`       | a JSON file holding the stage's params table |
//! | `NASFLOW_IN_<DEP>`     | each upstream stage's output directory (name upper-cased, `-` as `_`) |
//! | `NASFLOW_STAGE`        | the stage name |
//! | `NASFLOW_SEED`         | the pipeline seed |
//! | `NASFLOW_DEVICE`       | the resolved device (`cpu`, `cuda:0`) |
//! | `NASFLOW_THREADS`, `OMP_NUM_THREADS` | the CPU threads this job may use |
//! | `NASFLOW_ITEM`, `NASFLOW_ITEM_INDEX` | for `foreach` stages: the item (JSON) and its index |
//!
//! A non-zero exit fails the stage.
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use nasflow_contract::job::parse_progress;
use nasflow_contract::layout::{STDERR_LOG, STDOUT_LOG, WORKER_FACTS};
use nasflow_contract::{Job, Probe, Progress};

use super::pool::{Ended, Placement, Pool, Worker};
use super::{Exit, Finished, RunFailure, Runner};

/// Lines of a failed job's output quoted in its failure report.
const TAIL: usize = 20;

/// Runs jobs as child processes: `cmd` stages one process a job, native kinds in persistent
/// `nasflow-worker serve` processes ([`super::pool`]), or one `nasflow-worker run` a job with
/// `NASFLOW_WORKERS=per-job`. Each process runs under `nasflow supervise`
/// ([`super::supervise`]) where the `nasflow` binary is at hand, so that nothing it starts
/// outlives it or nasflow; without a supervisor (tests), native jobs get a process each.
pub struct ChildProcess {
    probe: OnceLock<Result<Probe, String>>,
    supervisor: Option<PathBuf>,
    pool: Option<Pool<Worker>>,
}

impl Default for ChildProcess {
    fn default() -> Self {
        ChildProcess::new()
    }
}

/// `NASFLOW_WORKERS`: `persistent` (the default: a worker process per job slot), `per-job` (a
/// fresh process per job), or `shared:K` (one worker process per placement serving up to K jobs
/// at once, a thread and a CUDA stream each: with `gpu_slots = K`, the jobs of one GPU share one
/// process and CUDA context).
pub const WORKERS_VAR: &str = "NASFLOW_WORKERS";

/// How native jobs get their processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workers {
    PerJob,
    Persistent,
    Shared(usize),
}

impl Workers {
    fn from_env() -> Workers {
        match std::env::var(WORKERS_VAR).as_deref() {
            Ok("per-job") => Workers::PerJob,
            Ok(v) => match v.strip_prefix("shared:").map(str::parse::<usize>) {
                Some(Ok(k)) if k >= 1 => Workers::Shared(k),
                _ => Workers::Persistent,
            },
            Err(_) => Workers::Persistent,
        }
    }
}

impl ChildProcess {
    pub fn new() -> ChildProcess {
        let exe = std::env::current_exe().ok();
        let supervisor = std::env::var_os("NASFLOW_SUPERVISOR")
            .map(PathBuf::from)
            .or_else(|| exe.filter(|e| e.file_stem().is_some_and(|n| n == "nasflow")));
        let pool = match (&supervisor, Workers::from_env()) {
            (Some(sup), Workers::Persistent) => {
                let sup = sup.clone();
                Some(Pool::new(move |p| Ok(vec![spawn_worker(&sup, p)?])))
            }
            (Some(sup), Workers::Shared(k)) => {
                let sup = sup.clone();
                Some(Pool::new(move |p| spawn_channels(&sup, p, k)))
            }
            _ => None,
        };
        ChildProcess {
            probe: OnceLock::new(),
            supervisor,
            pool,
        }
    }
}

/// The command of a supervised `nasflow-worker serve` for jobs of this placement (with
/// `--channels K` when given), and the watchdog's ends.
fn worker_serve(
    supervisor: &Path,
    placement: Placement,
    channels: Option<usize>,
) -> std::io::Result<(Command, std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::AsRawFd;
    let mut cmd = Command::new(worker_path());
    cmd.arg("serve")
        .env("OMP_NUM_THREADS", placement.threads.to_string());
    if let Some(k) = channels {
        cmd.arg("--channels").arg(k.to_string());
    }
    if let Some(g) = placement.gpu {
        cmd.env("CUDA_VISIBLE_DEVICES", g.to_string())
            .env("NASFLOW_GPU", g.to_string());
    }
    let (read, write) = super::pool::pipe()?;
    // Above the channels' descriptor numbers (3 .. 3 + 2K), which are placed over whatever
    // the child has there.
    let read = match channels {
        Some(k) => super::pool::high(&read, 3 + 2 * k as i32)?,
        None => read,
    };
    let sup = supervised(&cmd, supervisor, read.as_raw_fd());
    Ok((sup, read, write))
}

/// A supervised `nasflow-worker serve` for jobs of this placement.
fn spawn_worker(supervisor: &Path, placement: Placement) -> std::io::Result<Worker> {
    let (cmd, read, write) = worker_serve(supervisor, placement, None)?;
    let worker = Worker::start(cmd, Some(write));
    drop(read);
    worker
}

/// A supervised `nasflow-worker serve --channels K`: K channels of one process.
fn spawn_channels(
    supervisor: &Path,
    placement: Placement,
    k: usize,
) -> std::io::Result<Vec<Worker>> {
    let (cmd, read, write) = worker_serve(supervisor, placement, Some(k))?;
    let channels = Worker::start_channels(cmd, Some(write), k);
    drop(read);
    channels
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

impl Runner for ChildProcess {
    fn probe(&self) -> Result<Probe, RunFailure> {
        self.probe
            .get_or_init(|| probe_worker().map_err(|e| e.to_string()))
            .clone()
            .map_err(RunFailure::Probe)
    }

    fn run(
        &self,
        job: &Job,
        staging: &Path,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Finished, RunFailure> {
        let cmd = match (&job.command, &self.pool) {
            (Some(command), _) => cmd_command(command, job, staging)?,
            (None, Some(pool)) => return serve_in_pool(pool, job, staging, progress),
            (None, None) => worker_command(job, staging)?,
        };
        let finished = spawn_and_wait(cmd, self.supervisor.as_deref(), &job.provenance, progress)?;
        Ok(Finished {
            libtorch: worker_facts(&job.provenance).map(|p| p.libtorch),
            ..finished
        })
    }
}

/// A native kind's job on a persistent worker: see [`super::pool`] for what is guaranteed.
fn serve_in_pool(
    pool: &Pool<Worker>,
    job: &Job,
    staging: &Path,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Finished, RunFailure> {
    let job_file = write_job_file(job, staging)?;
    let placement = Placement {
        gpu: job.gpu,
        threads: job.threads,
    };
    let fresh_start = || {
        for dir in [&job.out, &job.provenance] {
            std::fs::remove_dir_all(dir)?;
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    };
    let ended = pool
        .run(placement, &job_file, &fresh_start, progress)
        .map_err(|source| RunFailure::Spawn {
            program: worker_path().display().to_string(),
            source,
            help: Some("build it with `cargo build --release` (it sits beside nasflow)"),
        })?;
    let failed = |exit: Exit| RunFailure::Exited {
        exit,
        stderr_tail: last_lines(&job.provenance.join(STDERR_LOG), TAIL),
        stdout_tail: last_lines(&job.provenance.join(STDOUT_LOG), TAIL),
        log: None,
    };
    match ended {
        Ended::Served(served, by) if served.ok => Ok(Finished {
            peak_rss_bytes: served.peak_rss_bytes,
            libtorch: worker_facts(&job.provenance).map(|p| p.libtorch),
            worker: Some(by),
        }),
        Ended::Served(..) => Err(failed(Exit::Failed)),
        Ended::Died { exit, first } => {
            let note = format!(
                "nasflow: the worker serving this job died ({first}); started again in a fresh worker, which died too ({exit})"
            );
            let _ = append_line(&job.provenance.join(STDERR_LOG), &note);
            Err(failed(exit))
        }
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

fn worker_facts(provenance: &Path) -> Option<Probe> {
    serde_json::from_slice(&std::fs::read(provenance.join(WORKER_FACTS)).ok()?).ok()
}

/// Asks `nasflow-worker probe` which CUDA devices the worker can use.
fn probe_worker() -> Result<Probe, RunFailure> {
    let worker = worker_path();
    let out = Command::new(&worker)
        .arg("probe")
        .output()
        .map_err(|source| RunFailure::Spawn {
            program: worker.display().to_string(),
            source,
            help: Some("build it with `cargo build --release` (it sits beside nasflow)"),
        })?;
    if !out.status.success() {
        return Err(RunFailure::Probe(format!(
            "{} probe failed: {}",
            worker.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| RunFailure::Probe(format!("{} probe: {e}", worker.display())))
}

/// A `cmd` stage's command, with the contract's environment.
fn cmd_command(command: &str, job: &Job, staging: &Path) -> Result<Command, RunFailure> {
    let params_file = staging.join("params.json");
    let params = serde_json::to_vec_pretty(&job.params).expect("params serialize");
    std::fs::write(&params_file, params).map_err(RunFailure::io(&params_file))?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(&job.project);
    cmd.env("NASFLOW_OUT", &job.out)
        .env("NASFLOW_PROVENANCE", &job.provenance)
        .env("NASFLOW_RESUME", &job.resume)
        .env("NASFLOW_PARAMS", &params_file)
        .env("NASFLOW_STAGE", &job.stage)
        .env("NASFLOW_SEED", job.seed.to_string())
        .env("NASFLOW_DEVICE", job.device.to_string())
        .env("NASFLOW_THREADS", job.threads.to_string())
        .env("OMP_NUM_THREADS", job.threads.to_string());
    for (dep, dir) in job.inputs.iter() {
        cmd.env(input_var(dep), dir);
    }
    place(&mut cmd, job);
    if let Some(item) = &job.item {
        cmd.env("NASFLOW_ITEM", item.value.to_string())
            .env("NASFLOW_ITEM_INDEX", item.index.to_string());
    }
    Ok(cmd)
}

/// The job as `job.json` in its staging directory, for the worker to read.
fn write_job_file(job: &Job, staging: &Path) -> Result<PathBuf, RunFailure> {
    let job_file = staging.join("job.json");
    let text = serde_json::to_vec_pretty(job).expect("job serializes");
    std::fs::write(&job_file, text).map_err(RunFailure::io(&job_file))?;
    Ok(job_file)
}

/// `nasflow-worker run JOB.json` for a native kind's job.
fn worker_command(job: &Job, staging: &Path) -> Result<Command, RunFailure> {
    let job_file = write_job_file(job, staging)?;
    let mut cmd = Command::new(worker_path());
    cmd.arg("run")
        .arg(&job_file)
        .env("OMP_NUM_THREADS", job.threads.to_string());
    place(&mut cmd, job);
    Ok(cmd)
}

/// A job placed on a GPU sees that GPU alone (`CUDA_VISIBLE_DEVICES`), and its index as
/// `NASFLOW_GPU`.
fn place(cmd: &mut Command, job: &Job) {
    if let Some(g) = job.gpu {
        cmd.env("CUDA_VISIBLE_DEVICES", g.to_string())
            .env("NASFLOW_GPU", g.to_string());
    }
}

/// `cmd` to run under `nasflow supervise` with the read end of the watchdog pipe.
fn supervised(cmd: &Command, supervisor: &Path, watchdog: libc::c_int) -> Command {
    let mut s = Command::new(supervisor);
    s.arg("supervise")
        .arg("--watchdog-fd")
        .arg(watchdog.to_string())
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        s.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    // SAFETY: fcntl is async-signal-safe; the watchdog's read end is the one fd handed on.
    unsafe {
        s.pre_exec(move || {
            libc::fcntl(watchdog, libc::F_SETFD, 0);
            Ok(())
        });
    }
    s
}

/// Starts the child (supervised when a supervisor is given) with its output in `provenance/`,
/// relays its progress lines, waits.
fn spawn_and_wait(
    cmd: Command,
    supervisor: Option<&Path>,
    provenance: &Path,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Finished, RunFailure> {
    use std::os::fd::AsRawFd;
    let mut watchdog_write = None;
    let mut cmd = match supervisor {
        Some(sup) => {
            let (r, w) = super::pool::pipe().map_err(RunFailure::io(sup))?;
            let s = supervised(&cmd, sup, r.as_raw_fd());
            watchdog_write = Some((r, w));
            s
        }
        None => cmd,
    };
    let stderr_path = provenance.join(STDERR_LOG);
    let stdout_path = provenance.join(STDOUT_LOG);
    let stderr = std::fs::File::create(&stderr_path).map_err(RunFailure::io(&stderr_path))?;
    let mut stdout_log =
        std::fs::File::create(&stdout_path).map_err(RunFailure::io(&stdout_path))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    if watchdog_write.is_none() {
        // Unsupervised (no nasflow binary at hand: tests): the child at least dies with the
        // thread that started it. A supervisor must not: it kills the job's group then.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let program = cmd.get_program().to_string_lossy().to_string();
    let mut child = cmd.spawn().map_err(|source| RunFailure::Spawn {
        program: program.clone(),
        source,
        help: None,
    })?;
    // Only the write end stays here, until the job has ended (see `supervise`).
    let _watchdog = watchdog_write.map(|(read, write)| {
        drop(read);
        write
    });
    let stdout = child.stdout.take().expect("piped");
    let mut tail: VecDeque<String> = VecDeque::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(p) = parse_progress(&line) {
            progress(&p);
            continue;
        }
        let _ = writeln!(stdout_log, "{line}");
        tail.push_back(line);
        if tail.len() > TAIL {
            tail.pop_front();
        }
    }
    let (status, rss) = wait4(child.id() as libc::pid_t).map_err(|source| RunFailure::Io {
        path: PathBuf::from(&program),
        source,
    })?;
    drop(child);
    match status {
        Exit::Code(0) => Ok(Finished {
            peak_rss_bytes: rss,
            libtorch: None,
            worker: None,
        }),
        exit => Err(RunFailure::Exited {
            exit,
            stderr_tail: last_lines(&stderr_path, TAIL),
            stdout_tail: tail.into(),
            log: None,
        }),
    }
}

fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Waits for a child and returns how it ended and its peak resident bytes.
fn wait4(pid: libc::pid_t) -> std::io::Result<(Exit, u64)> {
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
    let exit = if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    };
    Ok((exit, usage.ru_maxrss as u64 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasflow_contract::DeviceSpec;

    fn job(gpu: Option<usize>) -> Job {
        Job {
            kind: "pretrain".into(),
            stage: "s".into(),
            command: None,
            project: "/p".into(),
            params: Default::default(),
            inputs: Default::default(),
            item: None,
            out: "/o".into(),
            provenance: "/v".into(),
            resume: "/r".into(),
            seed: 1,
            device: DeviceSpec::Cuda(0),
            gpu,
            threads: 2,
        }
    }

    fn env(c: &Command, name: &str) -> Option<String> {
        c.get_envs()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v)
            .map(|v| v.to_string_lossy().into_owned())
    }

    #[test]
    fn a_placed_job_sees_its_gpu_alone_and_an_unplaced_one_sees_all() {
        let dir = tempfile::tempdir().unwrap();
        let w = worker_command(&job(Some(1)), dir.path()).unwrap();
        assert_eq!(env(&w, "CUDA_VISIBLE_DEVICES").as_deref(), Some("1"));
        assert_eq!(env(&w, "NASFLOW_GPU").as_deref(), Some("1"));
        let written: Job =
            serde_json::from_slice(&std::fs::read(dir.path().join("job.json")).unwrap()).unwrap();
        assert_eq!(
            (written.device, written.gpu),
            (DeviceSpec::Cuda(0), Some(1))
        );
        let c = cmd_command("true", &job(Some(0)), dir.path()).unwrap();
        assert_eq!(env(&c, "CUDA_VISIBLE_DEVICES").as_deref(), Some("0"));
        assert_eq!(env(&c, "NASFLOW_DEVICE").as_deref(), Some("cuda:0"));
        assert_eq!(env(&c, "NASFLOW_RESUME").as_deref(), Some("/r"));
        let unplaced = worker_command(&job(None), dir.path()).unwrap();
        assert_eq!(env(&unplaced, "CUDA_VISIBLE_DEVICES"), None);
    }
}
