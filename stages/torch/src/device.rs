//! What every computation here shares with libtorch: the device, and its errors as stage errors.
use nasflow_contract::Device;
use nasflow_stages::StageError;

/// The tch device of a resolved nasflow device.
pub fn torch_device(d: Device) -> tch::Device {
    match d {
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(n) => tch::Device::Cuda(n),
    }
}

/// A libtorch error as a stage's error.
pub fn torch_err(e: tch::TchError) -> StageError {
    StageError::Torch(e.to_string())
}
