//! The Slurm runner: whole stages run here as child processes; the uncached items of an
//! item-level stage become job arrays that [`Follow`] submits and follows.
use std::path::{Path, PathBuf};

use nasflow_contract::{DeviceSpec, Job, Probe, Progress};

use super::array::Follow;
use super::SlurmSettings;
use crate::batch::{ItemBatch, ItemsOutcome};
use crate::runner::child::ChildProcess;
use crate::runner::{Finished, RunFailure, Runner};

pub struct SlurmArrays {
    pub settings: SlurmSettings,
    /// The pipeline's device spec: the host that runs a task resolves it (a login node may
    /// have no GPU).
    pub device: DeviceSpec,
    /// The nasflow binary the tasks run (it must be reachable from the compute nodes).
    pub exe: PathBuf,
    pub local: ChildProcess,
}

impl SlurmArrays {
    pub fn new(settings: SlurmSettings, device: DeviceSpec) -> SlurmArrays {
        SlurmArrays {
            settings,
            device,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("nasflow")),
            local: ChildProcess::new(),
        }
    }
}

impl Runner for SlurmArrays {
    fn probe(&self) -> Result<Probe, RunFailure> {
        self.local.probe()
    }

    fn run(
        &self,
        job: &Job,
        staging: &Path,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Finished, RunFailure> {
        self.local.run(job, staging, progress)
    }

    fn batches_items(&self) -> bool {
        true
    }

    fn run_items(&self, mut batch: ItemBatch<'_>) -> Result<ItemsOutcome, RunFailure> {
        let device = match self.settings.gpus_per_item {
            0 => DeviceSpec::Cpu,
            _ => self.device,
        };
        for t in &mut batch.items {
            t.job.device = device;
            t.job.threads = self.settings.cpus_per_item as usize;
        }
        let follow = Follow {
            settings: &self.settings,
            cache: batch.cache,
            stage: batch.stage,
            stage_key: batch.stage_key,
            exe: self.exe.clone(),
            ui: batch.ui,
            bar: batch.bar,
        };
        follow
            .run(batch.items)
            .map_err(|e| RunFailure::Executor(Box::new(e)))
    }
}
