//! The C++ shim's switches (stages/torch/shim/shim.cpp, compiled by build.rs): bf16 autocast on
//! the CPU or CUDA (tch's own autocast is CUDA fp16), channels-last memory format, and the
//! determinism / cuDNN benchmark / TF32 switches.
use tch::{Device, Tensor};

mod ffi {
    use std::os::raw::c_int;
    use torch_sys::C_tensor;

    extern "C" {
        pub fn nasflow_autocast_enter(cuda: c_int);
        pub fn nasflow_autocast_exit(cuda: c_int);
        pub fn nasflow_autocast_enabled(cuda: c_int) -> c_int;
        pub fn nasflow_channels_last(t: *const C_tensor) -> *mut C_tensor;
        pub fn nasflow_is_channels_last(t: *const C_tensor) -> c_int;
        pub fn nasflow_set_deterministic(on: c_int);
        pub fn nasflow_set_cudnn_benchmark(on: c_int);
        pub fn nasflow_set_tf32(on: c_int);
        pub fn nasflow_use_pool_stream(index: c_int);
        pub fn nasflow_fused_adam_(
            params: *const *mut C_tensor,
            grads: *const *mut C_tensor,
            exp_avgs: *const *mut C_tensor,
            exp_avg_sqs: *const *mut C_tensor,
            steps: *const *mut C_tensor,
            n: c_int,
            lr: f64,
            beta1: f64,
            beta2: f64,
            eps: f64,
        );
    }
}

/// Sends this thread's work on `device` to a CUDA stream of its own from libtorch's pool, so that
/// networks trained by several threads of one worker overlap on the GPU; nothing on the CPU.
pub fn use_own_cuda_stream(device: Device) {
    if let Device::Cuda(index) = device {
        // SAFETY: sets libtorch's thread-local current stream; no pointers involved. Only
        // reached with a CUDA device, where the CUDA device-guard implementation is registered.
        unsafe { ffi::nasflow_use_pool_stream(index as i32) }
    }
}

/// One fused Adam step (`at::_fused_adam_`) over parallel lists of parameters, gradients, first
/// and second moments and step counts (float scalars), which it updates in place.
pub fn fused_adam(
    [params, grads, exp_avgs, exp_avg_sqs, steps]: [&[Tensor]; 5],
    lr: f64,
    (beta1, beta2): (f64, f64),
    eps: f64,
) {
    let n = params.len();
    assert!(
        [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), steps.len()] == [n; 4],
        "parallel lists"
    );
    // The shim copies each handle (a refcounted `at::Tensor`); the tensors change in place.
    let ptrs = |ts: &[Tensor]| {
        ts.iter()
            .map(|t| t.as_ptr() as *mut torch_sys::C_tensor)
            .collect::<Vec<_>>()
    };
    let (p, g, m, v, s) = (
        ptrs(params),
        ptrs(grads),
        ptrs(exp_avgs),
        ptrs(exp_avg_sqs),
        ptrs(steps),
    );
    // SAFETY: five arrays of `n` live tensor handles, read by the shim during the call only.
    unsafe {
        ffi::nasflow_fused_adam_(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n as i32,
            lr,
            beta1,
            beta2,
            eps,
        )
    }
}

/// A bf16 autocast region on `device` for this thread, left when the guard drops. Matrix
/// multiplications and convolutions run in bf16; reductions and losses stay in fp32, as
/// PyTorch's `torch.autocast(device, dtype=torch.bfloat16)` does.
#[must_use]
pub struct Bf16Autocast {
    cuda: i32,
}

impl Bf16Autocast {
    pub fn enter(device: Device) -> Bf16Autocast {
        let cuda = i32::from(device.is_cuda());
        // SAFETY: sets libtorch's thread-local autocast state; no pointers involved.
        unsafe { ffi::nasflow_autocast_enter(cuda) };
        Bf16Autocast { cuda }
    }

    /// Whether autocast is on for `device` on this thread.
    pub fn is_on(device: Device) -> bool {
        // SAFETY: reads libtorch's thread-local autocast state.
        unsafe { ffi::nasflow_autocast_enabled(i32::from(device.is_cuda())) != 0 }
    }
}

impl Drop for Bf16Autocast {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        unsafe { ffi::nasflow_autocast_exit(self.cuda) };
    }
}

/// `t` in channels-last memory format (a 4-d tensor; any other as it is).
pub fn channels_last(t: &Tensor) -> Tensor {
    // SAFETY: the shim returns a new, owned tensor handle (a heap `at::Tensor`), which
    // `Tensor::from_ptr` takes over.
    unsafe { Tensor::from_ptr(ffi::nasflow_channels_last(t.as_ptr())) }
}

/// Whether `t` is a 4-d tensor laid out channels-last.
pub fn is_channels_last(t: &Tensor) -> bool {
    // SAFETY: reads the tensor behind a live handle.
    unsafe { ffi::nasflow_is_channels_last(t.as_ptr()) != 0 }
}

/// Puts every 4-d variable (convolution weights) of `vs` in channels-last format, in place.
pub fn vars_to_channels_last(vs: &tch::nn::VarStore) {
    let _guard = tch::no_grad_guard();
    for (_, mut v) in vs.variables() {
        if v.dim() == 4 {
            let cl = channels_last(&v);
            v.set_data(&cl);
        }
    }
}

/// Puts every variable of `vs` back in the default (contiguous) layout, in place, as
/// safetensors needs to save them.
pub fn vars_to_contiguous(vs: &tch::nn::VarStore) {
    let _guard = tch::no_grad_guard();
    for (_, mut v) in vs.variables() {
        if !v.is_contiguous() {
            let c = v.contiguous();
            v.set_data(&c);
        }
    }
}

/// The determinism and speed switches: deterministic algorithms, cuDNN's benchmark mode, TF32.
pub fn set_switches(deterministic: bool, cudnn_benchmark: bool, tf32: bool) {
    // SAFETY: global libtorch settings; no pointers involved.
    unsafe {
        ffi::nasflow_set_deterministic(i32::from(deterministic));
        ffi::nasflow_set_cudnn_benchmark(i32::from(cudnn_benchmark));
        ffi::nasflow_set_tf32(i32::from(tf32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn cpu_bf16_autocast_runs_matmuls_and_convolutions_in_bf16_inside_the_region_only() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        {
            let _bf16 = Bf16Autocast::enter(Device::Cpu);
            assert!(Bf16Autocast::is_on(Device::Cpu));
            assert_eq!(a.matmul(&b).kind(), Kind::BFloat16);
            let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
            let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
            let y = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
            assert_eq!(y.kind(), Kind::BFloat16);
        }
        assert!(!Bf16Autocast::is_on(Device::Cpu));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
    }

    #[test]
    fn channels_last_keeps_values_and_changes_the_layout() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        assert!(!is_channels_last(&x));
        let y = channels_last(&x);
        assert!(is_channels_last(&y));
        assert_eq!(y.size(), x.size());
        assert!(y.allclose(&x, 0.0, 0.0, false));
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
    }
}
