//! `nasflow-worker`: runs one job of a native stage kind for the `nasflow` engine.
//!
//!   nasflow-worker run JOB.json   run the job; progress on stdout, errors on stderr, exit 1 on failure
//!   nasflow-worker serve          run jobs one after another: a job file's path a line on stdin,
//!                                 progress and an end-of-job line on stdout (`job::SERVED_PREFIX`);
//!                                 each job's own output goes to its provenance directory
//!   nasflow-worker serve --channels K
//!                                 the same protocol on K channels at once (fds 3+2k in, 4+2k
//!                                 out), a thread and a CUDA stream each: several networks
//!                                 in one process (see `multiplex`)
//!   nasflow-worker probe          print the CUDA devices this binary can use, as JSON
//!
//! This is the one binary that links libtorch; the engine starts it as a child process. Its
//! computations come from the same registration list as the engine's declarations.
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

use nasflow_contract::job::{progress_line, served_line, Served};
use nasflow_contract::layout::{STDERR_LOG, STDOUT_LOG, WORKER_FACTS};
use nasflow_contract::{Computations, Job, Probe, Progress, StageError};

fn main() -> ExitCode {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("probe") => {
            println!("{}", serde_json::to_string(&probe()).expect("serializes"));
            ExitCode::SUCCESS
        }
        Some("serve") if args.len() == 2 => serve(),
        Some("serve") if args.len() == 4 && args[2] == "--channels" => match args[3].parse() {
            Ok(k) if k >= 1 => multiplex::serve(k),
            _ => {
                eprintln!("nasflow-worker serve --channels K: K is a count of 1 or more");
                ExitCode::from(2)
            }
        },
        Some("run") if args.len() == 3 => match run(&args[2]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("usage: nasflow-worker run JOB.json | nasflow-worker serve | nasflow-worker probe\n(started by `nasflow run`; not meant to be run by hand)");
            ExitCode::from(2)
        }
    }
}

/// Whether this binary was linked with libtorch_cuda (the `cuda` cargo feature).
const CUDA_LINKED: bool = cfg!(feature = "cuda");

pub(crate) fn probe() -> Probe {
    Probe {
        cuda_linked: CUDA_LINKED,
        cuda_devices: cuda_device_count(),
        libtorch: env!("NASFLOW_LIBTORCH_VERSION").to_string(),
    }
}

fn run(job_file: &str) -> Result<(), StageError> {
    let report = |p: &Progress| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", progress_line(p));
        let _ = out.flush();
    };
    let mut computations = Computations::default();
    nasflow::register(&mut computations);
    run_job(&read_job(job_file)?, &computations, &probe(), &report)
}

#[path = "nasflow-worker/multiplex.rs"]
mod multiplex;

pub(crate) fn read_job(job_file: &str) -> Result<Job, StageError> {
    let text = std::fs::read_to_string(job_file).map_err(|e| StageError::io(job_file, e))?;
    serde_json::from_str(&text).map_err(|e| StageError::Failed(format!("{job_file}: {e}")))
}

/// Resolves the job's device, writes what the worker ran with to its provenance, computes.
pub(crate) fn run_job(
    job: &Job,
    computations: &Computations,
    facts: &Probe,
    report: &(dyn Fn(&Progress) + Sync),
) -> Result<(), StageError> {
    let device = job
        .device
        .resolve(|| facts.clone())
        .map_err(|e| StageError::Config(e.to_string()))?;
    let facts_file = job.provenance.join(WORKER_FACTS);
    let facts_json = serde_json::to_vec_pretty(facts).expect("serializes");
    std::fs::write(&facts_file, facts_json).map_err(|e| StageError::io(&facts_file, e))?;
    computations.run(job, device, report)
}

/// Runs one job for a serving worker: (succeeded, panicked). A panic is caught (the worker, or
/// its channel, then serves no more); a failure's message goes to `failed`.
pub(crate) fn serve_job(
    job: &Job,
    computations: &Computations,
    facts: &Probe,
    report: &(dyn Fn(&Progress) + Sync),
    failed: &dyn Fn(String),
) -> (bool, bool) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_job(job, computations, facts, report)
    }));
    match ran {
        Ok(Ok(())) => (true, false),
        Ok(Err(e)) => {
            failed(format!("error: {e}"));
            (false, false)
        }
        Err(_) => {
            failed("error: the computation panicked".into());
            (false, true)
        }
    }
}

/// `nasflow-worker serve`: one process for many jobs, so that libtorch, CUDA and the image sets
/// the computations keep (`nasflow_torch::data_cache`) are set up once. The protocol goes over
/// the stdout nasflow gave; fds 1 and 2 point at each job's logs while it runs, and at /dev/null
/// and the worker's own stderr in between. A job that fails leaves the worker serving; one that
/// panics retires it (libtorch's state is not trusted after an unwind).
fn serve() -> ExitCode {
    let Ok(channel) = Channel::open() else {
        eprintln!("nasflow-worker serve: cannot set up its output channel");
        return ExitCode::from(1);
    };
    let mut computations = Computations::default();
    nasflow::register(&mut computations);
    let facts = probe();
    let report = |p: &Progress| channel.send(&progress_line(p));
    for (served_before, line) in std::io::stdin().lines().enumerate() {
        let Ok(job_file) = line else { break };
        reset_peak_rss();
        let (ok, panicked) = match read_job(&job_file) {
            Ok(job) => channel.with_job_logs(&job, || {
                serve_job(&job, &computations, &facts, &report, &|m| eprintln!("{m}"))
            }),
            Err(e) => {
                eprintln!("nasflow-worker serve: {e}");
                (false, false)
            }
        };
        channel.send(&served_line(&Served {
            ok,
            pid: std::process::id(),
            served_before,
            peak_rss_bytes: peak_rss(),
            retire: panicked,
        }));
        if panicked {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// A serving worker's file descriptors: the protocol (nasflow's pipe, moved off fd 1), its own
/// stderr, and /dev/null for fd 1 between jobs (a stray print must not reach the protocol).
struct Channel {
    protocol: std::fs::File,
    own_stderr: OwnedFd,
    null: std::fs::File,
}

impl Channel {
    fn open() -> std::io::Result<Channel> {
        let protocol = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
        let own_stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        redirect(null.as_raw_fd(), 1)?;
        Ok(Channel {
            protocol,
            own_stderr,
            null,
        })
    }

    fn send(&self, line: &str) {
        let _ = writeln!(&self.protocol, "{line}");
    }

    /// Runs `f` with fds 1 and 2 on the job's stdout.log and stderr.log (where a one-job worker's
    /// output goes); a job whose logs cannot be opened writes to the worker's stderr.
    fn with_job_logs<T>(&self, job: &Job, f: impl FnOnce() -> T) -> T {
        let open = |name: &str| std::fs::File::create(job.provenance.join(name)).ok();
        let logs = (open(STDOUT_LOG), open(STDERR_LOG));
        if let (Some(out), Some(err)) = &logs {
            let _ = redirect(out.as_raw_fd(), 1).and_then(|()| redirect(err.as_raw_fd(), 2));
        }
        let result = f();
        let _ = std::io::stdout().flush();
        let _ = redirect(self.null.as_raw_fd(), 1);
        let _ = redirect(self.own_stderr.as_raw_fd(), 2);
        result
    }
}

/// Points fd `to` at what `from` is open on.
pub(crate) fn redirect(from: RawFd, to: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 on descriptors this process owns; fds 1 and 2 stay open throughout.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Starts a new peak-memory measurement (Linux: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident memory since the last reset, in bytes (0 where unknown).
pub(crate) fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// glibc hands freed blocks above its mmap threshold back to the OS and trims the heap top, so
/// libtorch's activations and gradients (megabytes, every step) page-fault back in on the next
/// step: a quarter of a CPU training run went to the kernel. Keeping blocks up to 32 MiB (glibc's
/// maximum threshold) in the heap and trimming only above 1 GiB made pretrain about 30% faster
/// at 64 channels (BENCHMARKS.md).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The CUDA devices this binary can use (0 without the `cuda` feature).
fn cuda_device_count() -> usize {
    if !CUDA_LINKED {
        return 0;
    }
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}
