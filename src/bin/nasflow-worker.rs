//! `nasflow-worker`: runs one job of a native stage kind for the `nasflow` engine.
//!
//!   nasflow-worker run JOB.json   run the job; progress on stdout, errors on stderr, exit 1 on failure
//!   nasflow-worker probe          print the CUDA devices this binary can use, as JSON
//!
//! This is the one binary that links libtorch; the engine starts it as a child process.
use std::io::Write;
use std::process::ExitCode;

use nasflow::job::{Job, Probe, PROGRESS_PREFIX};
use nasflow_stages::{device, ItemInput, StageContext};

fn main() -> ExitCode {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("probe") => {
            let probe = Probe {
                cuda_linked: device::CUDA_LINKED,
                cuda_devices: cuda_device_count(),
                libtorch: env!("NASFLOW_LIBTORCH_VERSION").to_string(),
            };
            println!("{}", serde_json::to_string(&probe).expect("serializes"));
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

fn run(job_file: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(job_file).map_err(|e| format!("{job_file}: {e}"))?;
    let job: Job = serde_json::from_str(&text).map_err(|e| format!("{job_file}: {e}"))?;
    let run = nasflow::testkinds::runner(&job.kind)
        .or_else(|| nasflow_stages::runner(&job.kind))
        .or_else(|| nasflow_torch::runner(&job.kind))
        .ok_or_else(|| {
            format!(
                "this nasflow-worker has no stage kind `{}` (is it from another nasflow version?)",
                job.kind
            )
        })?;
    let device = device::resolve_with(&job.device, device::CUDA_LINKED, cuda_device_count)
        .map_err(|e| e.to_string())?;
    let item = job.item.as_ref().map(|(index, value)| ItemInput {
        index: *index,
        value: value.clone(),
    });
    let progress = |done: u64, total: u64| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{PROGRESS_PREFIX} {done} {total}");
        let _ = out.flush();
    };
    let ctx = StageContext {
        stage: &job.stage,
        params: &job.params,
        inputs: &job.inputs,
        item: item.as_ref(),
        out: &job.out,
        seed: job.seed,
        device,
        threads: job.threads,
        progress: &progress,
    };
    run(&ctx).map_err(|e| e.to_string())
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
    if !device::CUDA_LINKED {
        return 0;
    }
    usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
}
