// The libtorch switches that tch 0.24 does not wrap (see ../shared/reference/libtorch.md):
// bf16 autocast (tch's autocast is CUDA fp16 only), channels-last memory format, and the
// determinism / cuDNN benchmark / TF32 switches. Compiled by build.rs with the cc crate against
// the headers of the libtorch that torch-sys links. A tch tensor handle is a `torch::Tensor*`
// (torch-sys's torch_api.h: `typedef torch::Tensor *tensor;`).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

static at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }

extern "C" {

// Enters a bf16 autocast region on the CPU (cuda = 0) or CUDA (cuda = 1), for this thread.
void nasflow_autocast_enter(int cuda) {
  at::DeviceType d = device_type(cuda);
  at::autocast::set_autocast_dtype(d, at::kBFloat16);
  at::autocast::set_autocast_enabled(d, true);
  at::autocast::increment_nesting();
}

// Leaves it; the cast-weight cache is cleared when the outermost region ends.
void nasflow_autocast_exit(int cuda) {
  at::DeviceType d = device_type(cuda);
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
  at::autocast::set_autocast_enabled(d, false);
}

int nasflow_autocast_enabled(int cuda) {
  return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
}

// A new tensor handle: `t` in channels-last memory format (4-d tensors; others as they are).
at::Tensor *nasflow_channels_last(const at::Tensor *t) {
  if (t->dim() != 4) return new at::Tensor(*t);
  return new at::Tensor(t->contiguous(at::MemoryFormat::ChannelsLast));
}

int nasflow_is_channels_last(const at::Tensor *t) {
  return t->dim() == 4 && t->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
}

void nasflow_set_deterministic(int on) { at::globalContext().setDeterministicAlgorithms(on != 0, false); }
void nasflow_set_cudnn_benchmark(int on) { at::globalContext().setBenchmarkCuDNN(on != 0); }
void nasflow_set_tf32(int on) {
  at::globalContext().setAllowTF32CuBLAS(on != 0);
  at::globalContext().setAllowTF32CuDNN(on != 0);
}

// This thread's kernels on CUDA device `index` go to a stream of its own from libtorch's pool,
// so that several networks trained by one worker's threads overlap on the GPU. Through c10's
// device-guard registry, so no CUDA header or library is needed here; call it only where CUDA
// is available (the registry has no CUDA entry otherwise). The current stream is per thread.
void nasflow_use_pool_stream(int index) {
  const c10::impl::DeviceGuardImplInterface *impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
  c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
  impl->exchangeStream(impl->getStreamFromGlobalPool(device, false));
}

// Adam on every listed parameter in one fused kernel (at::_fused_adam_, as torch.optim.Adam's
// `fused=True`): PyTorch's Adam without weight decay or amsgrad. The steps are float scalars
// on the parameters' device, incremented here first, as torch.optim does.
void nasflow_fused_adam_(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                         at::Tensor **exp_avg_sqs, at::Tensor **steps, int n, double lr,
                         double beta1, double beta2, double eps) {
  at::NoGradGuard no_grad;
  auto list = [n](at::Tensor **ts) {
    std::vector<at::Tensor> v;
    v.reserve(n);
    for (int i = 0; i < n; i++) v.push_back(*ts[i]);
    return v;
  };
  std::vector<at::Tensor> s = list(steps);
  at::_foreach_add_(s, 1);
  at::_fused_adam_(list(params), list(grads), list(exp_avgs), list(exp_avg_sqs), {}, s, lr,
                   beta1, beta2, 0.0, eps, false, false);
}

}
