//! `nasflow-worker`: runs one job of a native stage kind for the `nasflow` engine.
//!
//!   nasflow-worker run JOB.json   run the job; progress on stdout, errors on stderr, exit 1 on failure
//!   nasflow-worker probe          print the CUDA devices this binary can use, as JSON
//!
//! This is the one binary that links libtorch; the engine starts it as a child process. Its
//! computations come from the same registration list as the engine's declarations.
use std::io::Write;
use std::process::ExitCode;

use nasflow_contract::job::progress_line;
use nasflow_contract::layout::WORKER_FACTS;
use nasflow_contract::{Computations, Job, Probe, Progress, StageError};

fn main() -> ExitCode {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("probe") => {
            println!("{}", serde_json::to_string(&probe()).expect("serializes"));
            ExitCode::SUCCESS
        }
        Some("run") if args.len() == 3 => match run(&args[2]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("usage: nasflow-worker run JOB.json | nasflow-worker probe\n(started by `nasflow run`; not meant to be run by hand)");
            ExitCode::from(2)
        }
    }
}

/// Whether this binary was linked with libtorch_cuda (the `cuda` cargo feature).
const CUDA_LINKED: bool = cfg!(feature = "cuda");

fn probe() -> Probe {
    Probe {
        cuda_linked: CUDA_LINKED,
        cuda_devices: cuda_device_count(),
        libtorch: env!("NASFLOW_LIBTORCH_VERSION").to_string(),
    }
}

fn run(job_file: &str) -> Result<(), StageError> {
    let text = std::fs::read_to_string(job_file).map_err(|e| StageError::io(job_file, e))?;
    let job: Job =
        serde_json::from_str(&text).map_err(|e| StageError::Failed(format!("{job_file}: {e}")))?;
    let facts = probe();
    let device = job
        .device
        .resolve(|| facts.clone())
        .map_err(|e| StageError::Config(e.to_string()))?;
    let facts_file = job.provenance.join(WORKER_FACTS);
    let facts_json = serde_json::to_vec_pretty(&facts).expect("serializes");
    std::fs::write(&facts_file, facts_json).map_err(|e| StageError::io(&facts_file, e))?;
    let report = |p: &Progress| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", progress_line(p));
        let _ = out.flush();
    };
    let mut computations = Computations::default();
    nasflow::register(&mut computations);
    computations.run(&job, device, &report)
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
