//! Persistent workers: one `nasflow-worker serve` process serves many jobs of native kinds, so
//! that libtorch, CUDA, cuDNN's autotuning and the loaded image sets are paid once per worker and
//! not once per item.
//!
//! The contract, as [`super::child::ChildProcess`] keeps it:
//! - a job is handed to an idle worker of the same placement (GPU, CPU threads), or to a new one;
//!   a worker serves one job at a time, and goes back to the pool when the job has ended;
//! - every job keeps its own staging directory, output, provenance (logs, `worker.json`) and
//!   record, and the same key: which worker served it is provenance ([`ServedBy`]), never output;
//! - a job that fails fails alone: its worker goes on serving (unless the computation panicked:
//!   then the worker retires);
//! - a worker that dies while serving (a crash, an OOM kill, SIGKILL) loses only that job. The
//!   job is started again once, from an empty output directory, in a fresh worker; if that one
//!   dies too, the job fails with the signal named. Either way, nothing is published for a job
//!   that did not end well: the caller stores results only after `Ok`;
//! - every worker runs under `nasflow supervise`, holding a watchdog pipe, so none outlives
//!   nasflow; idle workers are told to stop (end of their stdin) when the pool is dropped.
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use nasflow_contract::job::{parse_progress, parse_served, Served, ServedBy};
use nasflow_contract::Progress;

use super::Exit;

/// The most idle workers kept; more are stopped as they come back.
const MAX_IDLE: usize = 8;

/// Where a worker computes: the GPU it sees (`CUDA_VISIBLE_DEVICES`), its CPU threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub gpu: Option<usize>,
    pub threads: usize,
}

/// One job's conversation with a worker, as the pool sees it (a fake in the unit tests).
pub trait Serve {
    /// Sends the job file and relays progress until the end-of-job line; `None` if the worker
    /// died (or closed its output) first.
    fn serve(&mut self, job_file: &Path, progress: &(dyn Fn(&Progress) + Sync)) -> Option<Served>;
    /// Whether the worker is still alive (checked before an idle one is reused).
    fn alive(&mut self) -> bool;
    /// How it ended, after [`Serve::serve`] returned `None`.
    fn reap(self: Box<Self>) -> Exit;
}

/// How a job ended in the pool.
#[derive(Debug)]
pub enum Ended {
    /// The computation returned (successfully or not: `served.ok`); who served it.
    Served(Served, ServedBy),
    /// The worker died while serving, twice (the first death is retried in a fresh worker).
    Died { exit: Exit, first: Exit },
}

type Spawner<W> = dyn Fn(Placement) -> std::io::Result<W> + Send + Sync;

/// Idle workers, by placement.
pub struct Pool<W: Serve> {
    idle: Mutex<Vec<(Placement, W)>>,
    spawn: Box<Spawner<W>>,
}

impl<W: Serve> Pool<W> {
    pub fn new(spawn: impl Fn(Placement) -> std::io::Result<W> + Send + Sync + 'static) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            spawn: Box::new(spawn),
        }
    }

    /// Serves the job in `job_file` on a worker of `placement`. `fresh_start` empties the job's
    /// output and provenance directories before a retry. `Err` only when no worker could be
    /// started.
    pub fn run(
        &self,
        placement: Placement,
        job_file: &Path,
        fresh_start: &dyn Fn() -> std::io::Result<()>,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> std::io::Result<Ended> {
        let mut first: Option<Exit> = None;
        loop {
            let mut worker = match self.take(placement) {
                Some(w) => w,
                None => (self.spawn)(placement)?,
            };
            if let Some(served) = worker.serve(job_file, progress) {
                let by = ServedBy {
                    pid: served.pid,
                    served_before: served.served_before,
                    retried_after: first.map(|e| e.to_string()),
                };
                if !served.retire {
                    self.give_back(placement, worker);
                }
                return Ok(Ended::Served(served, by));
            }
            let exit = Box::new(worker).reap();
            match first {
                None => {
                    first = Some(exit);
                    fresh_start()?;
                }
                Some(first) => return Ok(Ended::Died { exit, first }),
            }
        }
    }

    fn take(&self, placement: Placement) -> Option<W> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(pos) = idle.iter().position(|(p, _)| *p == placement) {
            let (_, mut w) = idle.swap_remove(pos);
            if w.alive() {
                return Some(w);
            }
            let _ = Box::new(w).reap();
        }
        None
    }

    fn give_back(&self, placement: Placement, worker: W) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < MAX_IDLE {
            idle.push((placement, worker));
        }
    }
}

/// A `nasflow-worker serve` process (under `nasflow supervise`).
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    /// The write end of the supervisor's watchdog pipe: held while the worker lives.
    _watchdog: Option<std::os::fd::OwnedFd>,
}

impl Worker {
    /// Starts `cmd` (the worker, supervised or not) with its stdin and stdout piped to us.
    pub fn start(
        mut cmd: Command,
        watchdog: Option<std::os::fd::OwnedFd>,
    ) -> std::io::Result<Self> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        Ok(Worker {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            _watchdog: watchdog,
        })
    }
}

impl Serve for Worker {
    fn serve(&mut self, job_file: &Path, progress: &(dyn Fn(&Progress) + Sync)) -> Option<Served> {
        let stdin = self.stdin.as_mut()?;
        writeln!(stdin, "{}", job_file.display()).ok()?;
        stdin.flush().ok()?;
        for line in self.lines.by_ref() {
            let line = line.ok()?;
            if let Some(s) = parse_served(&line) {
                return Some(s);
            }
            if let Some(p) = parse_progress(&line) {
                progress(&p);
            }
        }
        None
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn reap(mut self: Box<Self>) -> Exit {
        self.stdin = None;
        match self.child.wait() {
            Ok(status) => exit_of(status),
            Err(_) => Exit::Code(-1),
        }
    }
}

impl Drop for Worker {
    /// An idle worker stops at the end of its stdin; it is waited for, so that none is left
    /// behind as a zombie.
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(s)) => Exit::Signal(s),
        (Some(c), None) => Exit::Code(c),
        (None, None) => Exit::Code(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A fake worker: serves jobs, or dies when its script says so.
    struct Fake {
        pid: u32,
        served: usize,
        /// Whether it dies on its next job.
        dies: bool,
        retire_after: Option<usize>,
    }

    impl Serve for Fake {
        fn serve(&mut self, _: &Path, progress: &(dyn Fn(&Progress) + Sync)) -> Option<Served> {
            if self.dies {
                return None;
            }
            progress(&Progress {
                done: 1,
                total: 1,
                unit: "steps".into(),
                note: String::new(),
            });
            let s = Served {
                ok: true,
                pid: self.pid,
                served_before: self.served,
                peak_rss_bytes: 0,
                retire: self.retire_after == Some(self.served),
            };
            self.served += 1;
            Some(s)
        }
        fn alive(&mut self) -> bool {
            true
        }
        fn reap(self: Box<Self>) -> Exit {
            Exit::Signal(9)
        }
    }

    /// A pool whose n-th spawned worker (from 1) dies on its first job when `dies(n)`.
    fn pool(dies: impl Fn(u32) -> bool + Send + Sync + 'static) -> (Pool<Fake>, Arc<AtomicU32>) {
        let spawned = Arc::new(AtomicU32::new(0));
        let s = spawned.clone();
        let pool = Pool::new(move |_| {
            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Fake {
                pid: 100 + n,
                served: 0,
                dies: dies(n),
                retire_after: None,
            })
        });
        (pool, spawned)
    }

    const CPU: Placement = Placement {
        gpu: None,
        threads: 1,
    };

    fn run(pool: &Pool<Fake>, placement: Placement, starts: &AtomicUsize) -> Ended {
        let fresh = || {
            starts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        pool.run(placement, Path::new("job.json"), &fresh, &|_| {})
            .unwrap()
    }

    #[test]
    fn one_worker_serves_jobs_one_after_another_and_counts_them() {
        let (pool, spawned) = pool(|_| false);
        let starts = AtomicUsize::new(0);
        for n in 0..3 {
            match run(&pool, CPU, &starts) {
                Ended::Served(s, by) => {
                    assert!(s.ok);
                    assert_eq!((by.pid, by.served_before), (101, n));
                    assert_eq!(by.retried_after, None);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(spawned.load(Ordering::SeqCst), 1);
        assert_eq!(starts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn another_placement_gets_a_worker_of_its_own() {
        let (pool, spawned) = pool(|_| false);
        let starts = AtomicUsize::new(0);
        let gpu1 = Placement {
            gpu: Some(1),
            threads: 1,
        };
        run(&pool, CPU, &starts);
        run(&pool, gpu1, &starts);
        run(&pool, CPU, &starts);
        assert_eq!(spawned.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_worker_that_dies_is_replaced_and_the_job_retried_once_from_scratch() {
        let (pool, spawned) = pool(|n| n == 1);
        let starts = AtomicUsize::new(0);
        match run(&pool, CPU, &starts) {
            Ended::Served(s, by) => {
                assert!(s.ok);
                assert_eq!((by.pid, by.served_before), (102, 0));
                assert_eq!(
                    by.retried_after.as_deref(),
                    Some("killed by signal 9 (SIGKILL)")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            starts.load(Ordering::SeqCst),
            1,
            "outputs emptied before the retry"
        );
        // The dead worker is gone; the fresh one serves the next job.
        run(&pool, CPU, &starts);
        assert_eq!(spawned.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_second_death_fails_the_job_with_the_signal_and_the_next_job_runs() {
        let (pool, spawned) = pool(|n| n <= 2);
        let starts = AtomicUsize::new(0);
        match run(&pool, CPU, &starts) {
            Ended::Died { exit, first } => {
                assert_eq!((exit, first), (Exit::Signal(9), Exit::Signal(9)));
                assert_eq!(exit.to_string(), "killed by signal 9 (SIGKILL)");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(run(&pool, CPU, &starts), Ended::Served(..)));
        assert_eq!(spawned.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_retiring_worker_is_not_reused() {
        let spawned = Arc::new(AtomicU32::new(0));
        let s = spawned.clone();
        let pool = Pool::new(move |_| {
            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Fake {
                pid: n,
                served: 0,
                dies: false,
                retire_after: Some(0),
            })
        });
        let starts = AtomicUsize::new(0);
        run(&pool, CPU, &starts);
        run(&pool, CPU, &starts);
        assert_eq!(spawned.load(Ordering::SeqCst), 2);
    }
}
