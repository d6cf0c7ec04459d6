//! Which device a pipeline computes on: `device = "auto" | "cpu" | "cuda" | "cuda:N"`.
//!
//! A [`DeviceSpec`] is what was asked for, parsed once where it is read (pipeline.toml); a
//! [`Device`] is what a host resolved it to. Asking for CUDA where it cannot be used is an
//! error, never a silent fallback to the CPU: a researcher who asked for the GPU must not get a
//! CPU run that takes a hundred times longer.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A resolved compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DeviceSpec::from(*self).fmt(f)
    }
}

/// A device as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The first GPU if there is one, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// `cuda` is `cuda:0`.
    Cuda(usize),
}

impl From<Device> for DeviceSpec {
    fn from(d: Device) -> Self {
        match d {
            Device::Cpu => DeviceSpec::Cpu,
            Device::Cuda(n) => DeviceSpec::Cuda(n),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;
    fn from_str(spec: &str) -> Result<Self, DeviceError> {
        match spec {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => spec
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| DeviceError::Unknown(spec.to_string())),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the binary that computes native kinds (`nasflow-worker probe`) can use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Probe {
    /// Built with libtorch_cuda linked (the `cuda` cargo feature).
    pub cuda_linked: bool,
    pub cuda_devices: usize,
    pub libtorch: String,
}

impl Probe {
    /// A host without CUDA (what a CPU-only computation reports).
    pub fn cpu_only(libtorch: &str) -> Probe {
        Probe {
            cuda_linked: false,
            cuda_devices: 0,
            libtorch: libtorch.to_string(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device `{0}`: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"")]
    Unknown(String),
    #[error(
        "device `{asked}` was asked for, but {why}; set device = \"auto\" or \"cpu\" in [pipeline] to run on the CPU"
    )]
    Unavailable { asked: DeviceSpec, why: String },
}

impl DeviceSpec {
    /// Resolves the spec on this host; `probe` is called only when CUDA may be involved (the
    /// engine asks its worker process, which has libtorch loaded).
    pub fn resolve(self, probe: impl FnOnce() -> Probe) -> Result<Device, DeviceError> {
        let n = match self {
            DeviceSpec::Cpu => return Ok(Device::Cpu),
            DeviceSpec::Auto => {
                let p = probe();
                return Ok(if p.cuda_linked && p.cuda_devices > 0 {
                    Device::Cuda(0)
                } else {
                    Device::Cpu
                });
            }
            DeviceSpec::Cuda(n) => n,
        };
        let p = probe();
        if !p.cuda_linked {
            return Err(DeviceError::Unavailable {
                asked: self,
                why: "this nasflow was built without CUDA (rebuild with `cargo build --release --features cuda`)".into(),
            });
        }
        if n >= p.cuda_devices {
            return Err(DeviceError::Unavailable {
                asked: self,
                why: format!("{} CUDA device(s) are visible", p.cuda_devices),
            });
        }
        Ok(Device::Cuda(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(linked: bool, devices: usize) -> impl FnOnce() -> Probe {
        move || Probe {
            cuda_linked: linked,
            cuda_devices: devices,
            libtorch: "x".into(),
        }
    }

    #[test]
    fn parses_and_prints_specs() {
        for (text, spec) in [
            ("auto", DeviceSpec::Auto),
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>(), Ok(spec));
        }
        assert_eq!(DeviceSpec::Cuda(0).to_string(), "cuda:0");
        assert!(matches!(
            "gpu".parse::<DeviceSpec>(),
            Err(DeviceError::Unknown(_))
        ));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
        let json = serde_json::to_string(&DeviceSpec::Cuda(1)).unwrap();
        assert_eq!(json, "\"cuda:1\"");
        assert_eq!(
            serde_json::from_str::<DeviceSpec>(&json).unwrap(),
            DeviceSpec::Cuda(1)
        );
    }

    #[test]
    fn auto_falls_back_but_cuda_does_not() {
        assert_eq!(DeviceSpec::Auto.resolve(probe(false, 0)), Ok(Device::Cpu));
        assert_eq!(
            DeviceSpec::Cpu.resolve(|| panic!("no probe for the CPU")),
            Ok(Device::Cpu)
        );
        let err = DeviceSpec::Cuda(0).resolve(probe(false, 0)).unwrap_err();
        assert!(err.to_string().contains("device = \"auto\""), "{err}");
        assert_eq!(
            DeviceSpec::Auto.resolve(probe(true, 1)),
            Ok(Device::Cuda(0))
        );
        assert_eq!(
            DeviceSpec::Cuda(1).resolve(probe(true, 2)),
            Ok(Device::Cuda(1))
        );
        assert!(DeviceSpec::Cuda(2).resolve(probe(true, 2)).is_err());
    }
}
