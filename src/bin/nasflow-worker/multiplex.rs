//! `nasflow-worker serve --channels K`: one process serving K jobs at once, so that several
//! networks share one CUDA context and train on streams of their own instead of K processes
//! time-sharing the GPU.
//!
//! Channel k is the line protocol of `serve` on two inherited descriptors: job file paths in on
//! fd 3 + 2k, progress and end-of-job lines out on fd 4 + 2k. Each channel has a thread, and each
//! job on CUDA runs on a stream from libtorch's pool. The jobs share the process, so their own
//! output cannot be told apart: it goes to the worker's stderr, and a failed job's error is
//! written to its `stderr.log`. A job that panics retires its channel (the others go on). What a
//! job computes does not depend on the jobs beside it: the kinds seed libtorch's generator and
//! build their networks under one lock (`nasflow_torch::device::seeded`), and draw everything
//! else from generators of their own.
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use nasflow_contract::job::{progress_line, served_line, Served};
use nasflow_contract::layout::STDERR_LOG;
use nasflow_contract::{Computations, Probe, Progress};

/// The first channel's input descriptor; channel k reads 3 + 2k and writes 4 + 2k.
const FIRST_FD: RawFd = 3;

pub fn serve(channels: usize) -> ExitCode {
    // A stray print must not reach a channel.
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        let _ = crate::redirect(null.as_raw_fd(), 1);
    }
    let mut computations = Computations::default();
    nasflow::register(&mut computations);
    let facts = crate::probe();
    let served = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for k in 0..channels as RawFd {
            let (computations, facts, served) = (&computations, &facts, &served);
            s.spawn(move || {
                channel(
                    FIRST_FD + 2 * k,
                    FIRST_FD + 2 * k + 1,
                    computations,
                    facts,
                    served,
                )
            });
        }
    });
    ExitCode::SUCCESS
}

/// Serves one channel until its input ends (or a job panics).
fn channel(
    input: RawFd,
    output: RawFd,
    computations: &Computations,
    facts: &Probe,
    served: &AtomicUsize,
) {
    // SAFETY: nasflow hands this process these descriptors for this channel alone.
    let (input, output) = unsafe {
        (
            std::fs::File::from_raw_fd(input),
            std::fs::File::from_raw_fd(output),
        )
    };
    let send = |line: &str| {
        let _ = writeln!(&output, "{line}");
    };
    let report = |p: &Progress| send(&progress_line(p));
    for line in BufReader::new(input).lines() {
        let Ok(job_file) = line else { break };
        let (ok, panicked) = match crate::read_job(&job_file) {
            Ok(job) => {
                if let Ok(device) = job.device.resolve(|| facts.clone()) {
                    let device = nasflow_torch::device::torch_device(device);
                    nasflow_torch::shim::use_own_cuda_stream(device);
                }
                // The job's error goes to its stderr.log (its own output, to the worker's).
                let failed = |text: String| {
                    let path = job.provenance.join(STDERR_LOG);
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| writeln!(f, "{text}"));
                };
                crate::serve_job(&job, computations, facts, &report, &failed)
            }
            Err(e) => {
                eprintln!("nasflow-worker serve: {e}");
                (false, false)
            }
        };
        send(&served_line(&Served {
            ok,
            pid: std::process::id(),
            served_before: served.fetch_add(1, Ordering::SeqCst),
            peak_rss_bytes: crate::peak_rss(),
            retire: panicked,
        }));
        if panicked {
            break;
        }
    }
}
