//! What a run may use at once, shared by the schedulers of every variant it runs: job slots
//! (`-j`) and, per GPU, device slots (`gpu_slots`). A device job is placed on the least-loaded
//! GPU of the `gpus` list (the lowest index among equals). A (stage, key) that one scheduler is
//! computing is not started by another: that one waits and then finds the result cached, so a
//! stage that variants share runs once, and no slot is spent waiting for its lock.
use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The shared capacity.
#[derive(Debug)]
pub struct Slots {
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug)]
struct State {
    jobs_free: usize,
    /// (GPU index, jobs on it); `None` until the first scheduler that needs them says which.
    gpus: Option<Vec<(usize, usize)>>,
    per_gpu: usize,
    /// The (stage, key) of every job running.
    running: HashSet<String>,
}

/// A taken slot; give it back with [`Slots::give`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Grant {
    /// The GPU the job was placed on.
    pub gpu: Option<usize>,
    work: String,
}

impl Slots {
    /// `jobs` job slots; `per_gpu` device jobs on each GPU (see [`Slots::gpus_once`]).
    pub fn new(jobs: usize, per_gpu: usize) -> Slots {
        Slots {
            state: Mutex::new(State {
                jobs_free: jobs.max(1),
                gpus: None,
                per_gpu: per_gpu.max(1),
                running: HashSet::new(),
            }),
            freed: Condvar::new(),
        }
    }

    /// Sets the GPUs, the first time only (every variant has the same `[pipeline]`).
    pub fn gpus_once<E>(&self, gpus: impl FnOnce() -> Result<Vec<usize>, E>) -> Result<(), E> {
        let mut s = self.lock();
        if s.gpus.is_none() {
            s.gpus = Some(gpus()?.into_iter().map(|g| (g, 0)).collect());
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job slot for `work` (its stage and key), and for a device job (`gpu`) a place on the
    /// least-loaded GPU; `None` when every job slot, or every GPU's device slots, are taken, or
    /// when the same work is running already. Without GPUs, a device job takes a job slot only.
    pub fn try_take(&self, gpu: bool, work: &str) -> Option<Grant> {
        let mut s = self.lock();
        if s.jobs_free == 0 || s.running.contains(work) {
            return None;
        }
        let per_gpu = s.per_gpu;
        let placed = match s.gpus.as_mut().filter(|g| gpu && !g.is_empty()) {
            Some(gpus) => {
                let k = (0..gpus.len())
                    .filter(|&k| gpus[k].1 < per_gpu)
                    .min_by_key(|&k| (gpus[k].1, gpus[k].0))?;
                gpus[k].1 += 1;
                Some(gpus[k].0)
            }
            None => None,
        };
        s.jobs_free -= 1;
        s.running.insert(work.to_string());
        Some(Grant {
            gpu: placed,
            work: work.to_string(),
        })
    }

    /// Gives a slot back and wakes whoever waits for one.
    pub fn give(&self, grant: Grant) {
        let mut s = self.lock();
        s.jobs_free += 1;
        s.running.remove(&grant.work);
        if let (Some(g), Some(gpus)) = (grant.gpu, s.gpus.as_mut()) {
            if let Some((_, load)) = gpus.iter_mut().find(|(id, _)| *id == g) {
                *load = load.saturating_sub(1);
            }
        }
        drop(s);
        self.freed.notify_all();
    }

    /// Waits until a slot is given back (or a while passes).
    pub fn wait(&self) {
        let s = self.lock();
        let _ = self.freed.wait_timeout(s, Duration::from_millis(200));
    }

    /// Jobs on each GPU now, as (index, jobs).
    pub fn loads(&self) -> Vec<(usize, usize)> {
        self.lock().gpus.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_jobs_go_to_the_least_loaded_gpu_within_its_slots() {
        let s = Slots::new(8, 2);
        s.gpus_once(|| Ok::<_, ()>(vec![3, 1])).unwrap();
        s.gpus_once(|| Ok::<_, ()>(vec![7])).unwrap();
        let a = s.try_take(true, "a").unwrap();
        let b = s.try_take(true, "b").unwrap();
        assert_eq!(
            (a.gpu, b.gpu),
            (Some(1), Some(3)),
            "ties go to the lowest index"
        );
        let c = s.try_take(true, "c").unwrap();
        let d = s.try_take(true, "d").unwrap();
        assert_eq!((c.gpu, d.gpu), (Some(1), Some(3)));
        assert_eq!(s.try_take(true, "e"), None, "2 slots on each GPU");
        assert_eq!(
            s.try_take(false, "f").unwrap().gpu,
            None,
            "a CPU job still fits"
        );
        s.give(b);
        assert_eq!(s.try_take(true, "b2").unwrap().gpu, Some(3));
        assert_eq!(s.loads(), vec![(3, 2), (1, 2)]);
    }

    #[test]
    fn job_slots_bound_everything_and_no_gpus_means_no_placement() {
        let s = Slots::new(2, 1);
        s.gpus_once(|| Ok::<_, ()>(vec![])).unwrap();
        assert!(s.loads().is_empty(), "no GPUs to place on");
        let a = s.try_take(true, "a").unwrap();
        assert_eq!(a.gpu, None);
        let _b = s.try_take(false, "b").unwrap();
        assert_eq!(s.try_take(false, "c"), None);
        s.give(a);
        assert!(s.try_take(true, "c").is_some());
    }

    #[test]
    fn the_same_work_is_not_started_twice() {
        let s = Slots::new(4, 1);
        let a = s.try_take(false, "sample/k1").unwrap();
        assert_eq!(s.try_take(false, "sample/k1"), None);
        assert!(s.try_take(false, "sample/k2").is_some());
        s.give(a);
        assert!(s.try_take(false, "sample/k1").is_some());
    }
}
