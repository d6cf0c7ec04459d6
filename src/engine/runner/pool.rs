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
use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

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

/// Starts a worker for a placement: its channels (one, or several served at once by one
/// process).
type Spawner<W> = dyn Fn(Placement) -> std::io::Result<Vec<W>> + Send + Sync;

/// Idle workers, by placement.
pub struct Pool<W: Serve> {
    idle: Mutex<Vec<(Placement, W)>>,
    spawn: Box<Spawner<W>>,
    /// Held while a worker starts, so that jobs arriving together take the channels of one new
    /// worker instead of each starting its own.
    starting: Mutex<()>,
}

impl<W: Serve> Pool<W> {
    pub fn new(
        spawn: impl Fn(Placement) -> std::io::Result<Vec<W>> + Send + Sync + 'static,
    ) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            spawn: Box::new(spawn),
            starting: Mutex::new(()),
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
                None => {
                    let _one = self.starting.lock().unwrap_or_else(|e| e.into_inner());
                    match self.take(placement) {
                        Some(w) => w,
                        None => self.start(placement)?,
                    }
                }
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

    /// A new worker's first channel; its other channels wait in the pool.
    fn start(&self, placement: Placement) -> std::io::Result<W> {
        let mut channels = (self.spawn)(placement)?.into_iter();
        let first = channels
            .next()
            .ok_or_else(|| std::io::Error::other("a worker started with no channel to serve on"))?;
        for w in channels {
            self.give_back(placement, w);
        }
        Ok(first)
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

/// One channel of a `nasflow-worker serve` process (under `nasflow supervise`): the process
/// itself, or one of the channels of a process serving several jobs at once. Its channels share
/// the process.
pub struct Worker {
    process: Arc<Mutex<Child>>,
    requests: Option<Box<dyn Write + Send>>,
    replies: Lines<BufReader<Box<dyn Read + Send>>>,
    /// The write end of the supervisor's watchdog pipe: held while the process lives.
    _watchdog: Option<Arc<std::os::fd::OwnedFd>>,
}

impl Worker {
    /// Starts `cmd` (the worker, supervised or not) serving on its stdin and stdout.
    pub fn start(
        mut cmd: Command,
        watchdog: Option<std::os::fd::OwnedFd>,
    ) -> std::io::Result<Self> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        Ok(Worker {
            process: Arc::new(Mutex::new(child)),
            requests: Some(Box::new(stdin)),
            replies: BufReader::new(Box::new(stdout) as Box<dyn Read + Send>).lines(),
            _watchdog: watchdog.map(Arc::new),
        })
    }

    /// Starts `cmd` serving on `k` channels (`nasflow-worker serve --channels K`): channel `i`
    /// reads fd 3 + 2i and writes fd 4 + 2i in the child. Its stdin and stdout are not used.
    pub fn start_channels(
        mut cmd: Command,
        watchdog: Option<std::os::fd::OwnedFd>,
        k: usize,
    ) -> std::io::Result<Vec<Self>> {
        use std::os::fd::{AsRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        // (parent's write end, child's read end), (parent's read end, child's write end).
        let mut ours: Vec<(OwnedFd, OwnedFd)> = Vec::new();
        let mut theirs: Vec<OwnedFd> = Vec::new();
        for _ in 0..k {
            let (req_read, req_write) = pipe()?;
            let (rep_read, rep_write) = pipe()?;
            // Above any descriptor number the child will be given (3 .. 3 + 2k), so that
            // placing one cannot overwrite another.
            theirs.push(high(&req_read, 3 + 2 * k as i32)?);
            theirs.push(high(&rep_write, 3 + 2 * k as i32)?);
            ours.push((req_write, rep_read));
        }
        let places: Vec<i32> = theirs.iter().map(|fd| fd.as_raw_fd()).collect();
        // SAFETY: dup2 is async-signal-safe; the targets are the channel numbers, which the
        // new descriptors (no close-on-exec) keep through the supervisor into the worker.
        unsafe {
            cmd.pre_exec(move || {
                for (i, &fd) in places.iter().enumerate() {
                    if libc::dup2(fd, 3 + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let child = cmd.spawn()?;
        drop(theirs);
        let process = Arc::new(Mutex::new(child));
        let watchdog = watchdog.map(Arc::new);
        Ok(ours
            .into_iter()
            .map(|(requests, replies)| Worker {
                process: process.clone(),
                requests: Some(Box::new(std::fs::File::from(requests))),
                replies: BufReader::new(
                    Box::new(std::fs::File::from(replies)) as Box<dyn Read + Send>
                )
                .lines(),
                _watchdog: watchdog.clone(),
            })
            .collect())
    }
}

/// A pipe whose ends close on exec: (read, write).
pub(super) fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned here.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// A close-on-exec copy of `fd` numbered `at_least` or more.
pub(super) fn high(
    fd: &std::os::fd::OwnedFd,
    at_least: i32,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: fcntl duplicates a descriptor this process owns.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, at_least) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `n` was just created and is owned here.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(n) })
}

impl Serve for Worker {
    fn serve(&mut self, job_file: &Path, progress: &(dyn Fn(&Progress) + Sync)) -> Option<Served> {
        let requests = self.requests.as_mut()?;
        writeln!(requests, "{}", job_file.display()).ok()?;
        requests.flush().ok()?;
        for line in self.replies.by_ref() {
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
        let mut child = self.process.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    fn reap(mut self: Box<Self>) -> Exit {
        self.requests = None;
        let mut child = self.process.lock().unwrap_or_else(|e| e.into_inner());
        match child.wait() {
            Ok(status) => exit_of(status),
            Err(_) => Exit::Code(-1),
        }
    }
}

impl Drop for Worker {
    /// A channel stops when its requests end; the process stops when all its channels have, and
    /// the last one waits for it, so that none is left behind as a zombie.
    fn drop(&mut self) {
        self.requests = None;
        if Arc::strong_count(&self.process) == 1 {
            let _ = self.process.lock().map(|mut c| c.wait());
        }
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
            Ok(vec![Fake {
                pid: 100 + n,
                served: 0,
                dies: dies(n),
                retire_after: None,
            }])
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
    fn a_worker_with_several_channels_serves_jobs_on_each() {
        let spawned = Arc::new(AtomicU32::new(0));
        let s = spawned.clone();
        let pool = Pool::new(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
            Ok((0..3)
                .map(|k| Fake {
                    pid: 9,
                    served: 10 * k,
                    dies: false,
                    retire_after: None,
                })
                .collect())
        });
        let starts = AtomicUsize::new(0);
        let mut served = Vec::new();
        for _ in 0..3 {
            match run(&pool, CPU, &starts) {
                Ended::Served(_, by) => served.push(by.served_before),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            spawned.load(Ordering::SeqCst),
            1,
            "one process for its channels"
        );
        served.sort();
        assert_eq!(served.len(), 3);
    }

    #[test]
    fn jobs_arriving_together_take_the_channels_of_one_new_worker() {
        let spawned = Arc::new(AtomicU32::new(0));
        let s = spawned.clone();
        let pool = Pool::new(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
            // A slow start, so that the second job arrives while the first worker starts.
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok((0..2)
                .map(|_| Fake {
                    pid: 9,
                    served: 0,
                    dies: false,
                    retire_after: None,
                })
                .collect())
        });
        let starts = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| run(&pool, CPU, &starts));
            }
        });
        assert_eq!(spawned.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_retiring_worker_is_not_reused() {
        let spawned = Arc::new(AtomicU32::new(0));
        let s = spawned.clone();
        let pool = Pool::new(move |_| {
            let n = s.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(vec![Fake {
                pid: n,
                served: 0,
                dies: false,
                retire_after: Some(0),
            }])
        });
        let starts = AtomicUsize::new(0);
        run(&pool, CPU, &starts);
        run(&pool, CPU, &starts);
        assert_eq!(spawned.load(Ordering::SeqCst), 2);
    }
}
