//! Native kinds computed in this process, for engine tests (as ninja's tests plug a fake
//! CommandRunner into the builder). `cmd` jobs still run as child processes.
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use nasflow_contract::{Computations, Device, DeviceSpec, Job, Probe, Progress};

use super::child::ChildProcess;
use super::{Finished, RunFailure, Runner};

/// Runs native kinds by calling their computations directly; CPU only.
pub struct InProcess {
    computations: Computations,
    child: ChildProcess,
    /// CUDA devices to report (0: a CPU host). Their jobs compute on the CPU.
    fake_gpus: usize,
    /// Each CUDA job: its placement and when it ran.
    pub placed: Mutex<Vec<Placed>>,
}

/// A CUDA job as the fake-GPU runner received it.
#[derive(Clone, Debug)]
pub struct Placed {
    pub stage: String,
    pub gpu: Option<usize>,
    pub device: DeviceSpec,
    pub start: Instant,
    pub end: Instant,
}

impl InProcess {
    pub fn new(computations: Computations) -> InProcess {
        InProcess {
            computations,
            child: ChildProcess::new(),
            fake_gpus: 0,
            placed: Mutex::new(Vec::new()),
        }
    }

    /// Reports `n` CUDA devices; jobs for them are recorded and computed on the CPU.
    pub fn with_fake_gpus(mut self, n: usize) -> InProcess {
        self.fake_gpus = n;
        self
    }
}

impl Runner for InProcess {
    fn probe(&self) -> Result<Probe, RunFailure> {
        Ok(Probe {
            cuda_linked: self.fake_gpus > 0,
            cuda_devices: self.fake_gpus,
            libtorch: String::new(),
        })
    }

    fn run(
        &self,
        job: &Job,
        staging: &Path,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Finished, RunFailure> {
        if job.command.is_some() {
            return self.child.run(job, staging, progress);
        }
        let device = match job.device {
            DeviceSpec::Cpu | DeviceSpec::Auto => Device::Cpu,
            DeviceSpec::Cuda(n) if self.fake_gpus > 0 => Device::Cuda(n),
            DeviceSpec::Cuda(_) => {
                return Err(RunFailure::Stage(
                    "the in-process runner computes on the CPU only".into(),
                ))
            }
        };
        let start = Instant::now();
        let ran = self.computations.run(job, device, progress);
        if device.is_cuda() {
            self.placed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Placed {
                    stage: job.stage.clone(),
                    gpu: job.gpu,
                    device: job.device,
                    start,
                    end: Instant::now(),
                });
        }
        ran.map(|()| Finished::default())
            .map_err(|e| RunFailure::Stage(e.to_string()))
    }
}
