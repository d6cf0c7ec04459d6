//! Which device a pipeline computes on: `device = "auto" | "cpu" | "cuda" | "cuda:N"`.
//!
//! Asking for CUDA where it cannot be used is an error, never a silent fallback to the CPU:
//! a researcher who asked for the GPU must not get a CPU run that takes a hundred times longer.

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

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device `{0}`: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"")]
    Unknown(String),
    #[error(
        "device `{asked}` was asked for, but {why}; set device = \"auto\" or \"cpu\" in [pipeline] to run on the CPU"
    )]
    Unavailable { asked: String, why: String },
}

/// Whether this binary was linked with libtorch_cuda (the `cuda` cargo feature).
pub const CUDA_LINKED: bool = cfg!(feature = "cuda");

/// Parses a device spec without probing the hardware.
pub fn parse(spec: &str) -> Result<Option<Device>, DeviceError> {
    match spec {
        "auto" => Ok(None),
        "cpu" => Ok(Some(Device::Cpu)),
        "cuda" => Ok(Some(Device::Cuda(0))),
        _ => spec
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(|n| Some(Device::Cuda(n)))
            .ok_or_else(|| DeviceError::Unknown(spec.to_string())),
    }
}

/// Resolves a device spec given whether CUDA is linked and a way to count the devices (called
/// only when needed: the engine asks its worker process, which has libtorch loaded).
pub fn resolve_with(
    spec: &str,
    linked: bool,
    count: impl Fn() -> usize,
) -> Result<Device, DeviceError> {
    match parse(spec)? {
        None => Ok(if linked && count() > 0 {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        Some(Device::Cpu) => Ok(Device::Cpu),
        Some(Device::Cuda(n)) => {
            if !linked {
                return Err(DeviceError::Unavailable {
                    asked: spec.to_string(),
                    why: "this nasflow was built without CUDA (rebuild with `cargo build --release --features cuda`)"
                        .to_string(),
                });
            }
            let have = count();
            if n >= have {
                return Err(DeviceError::Unavailable {
                    asked: spec.to_string(),
                    why: format!("{have} CUDA device(s) are visible"),
                });
            }
            Ok(Device::Cuda(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(parse("auto"), Ok(None));
        assert_eq!(parse("cpu"), Ok(Some(Device::Cpu)));
        assert_eq!(parse("cuda"), Ok(Some(Device::Cuda(0))));
        assert_eq!(parse("cuda:3"), Ok(Some(Device::Cuda(3))));
        assert!(matches!(parse("gpu"), Err(DeviceError::Unknown(_))));
        assert!(matches!(parse("cuda:x"), Err(DeviceError::Unknown(_))));
    }

    #[test]
    fn auto_falls_back_but_cuda_does_not() {
        assert_eq!(resolve_with("auto", CUDA_LINKED, || 0), Ok(Device::Cpu));
        assert_eq!(resolve_with("cpu", CUDA_LINKED, || 2), Ok(Device::Cpu));
        let err = resolve_with("cuda", CUDA_LINKED, || 0).unwrap_err();
        assert!(matches!(err, DeviceError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("device = \"auto\""));
        {
            assert_eq!(resolve_with("auto", true, || 1), Ok(Device::Cuda(0)));
            assert_eq!(resolve_with("cuda:1", true, || 2), Ok(Device::Cuda(1)));
            assert!(resolve_with("cuda:2", true, || 2).is_err());
        }
    }
}
