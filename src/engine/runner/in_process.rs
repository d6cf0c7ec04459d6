//! Native kinds computed in this process, for engine tests (as ninja's tests plug a fake
//! CommandRunner into the builder). `cmd` jobs still run as child processes.
use std::path::Path;

use nasflow_contract::{Computations, Device, DeviceSpec, Job, Probe, Progress};

use super::child::ChildProcess;
use super::{Finished, RunFailure, Runner};

/// Runs native kinds by calling their computations directly; CPU only.
pub struct InProcess {
    computations: Computations,
    child: ChildProcess,
}

impl InProcess {
    pub fn new(computations: Computations) -> InProcess {
        InProcess {
            computations,
            child: ChildProcess::new(),
        }
    }
}

impl Runner for InProcess {
    fn probe(&self) -> Result<Probe, RunFailure> {
        Ok(Probe::cpu_only(""))
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
            DeviceSpec::Cuda(_) => {
                return Err(RunFailure::Stage(
                    "the in-process runner computes on the CPU only".into(),
                ))
            }
        };
        self.computations
            .run(job, device, progress)
            .map(|()| Finished::default())
            .map_err(|e| RunFailure::Stage(e.to_string()))
    }
}
