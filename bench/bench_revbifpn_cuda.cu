// RevBiFPN-S0 training steps on the GPU, Reversible and Stored mode: forward + backward of
// sum(logits * dout) in the train phase, after two warm-up steps. Per mode it reports
//   - step time from CUDA events around each step (median and best);
//   - peak device bytes by rev's accounting (rev::memory<cuda>: parameters, gradients, inputs and
//     activations; also the part above what the step started with);
//   - the device's view: the largest used = total - free (cudaMemGetInfo) sampled after each step's
//     synchronize, the cache emptied before each mode (so it holds what the mode itself reserved,
//     plus the CUDA context, cuBLAS and cuDNN), and the caching allocator's largest reservation;
//   - the FLOPs of one step and the achieved TFLOP/s.
// FLOPs count conv + linear MACs (the papers' MACs, counted on the CPU model at batch 1, times the
// batch) x 2 FLOPs x 3 (forward, input gradient, weight gradient); Reversible adds one recompute of
// the backbone's couplings and of the neck.
//
//   bench_revbifpn_cuda [--batch 64] [--res 224] [--steps 10]  -> JSON lines
#include <cuda_runtime.h>

#include <rev/rev.hpp>

#include <rev/cuda.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "report.hpp"
#include "rev/core/op_count.hpp"
#include "rev/models/revbifpn.hpp"

using namespace rev;
using Cfg = models::revbifpn::S0;
using HostNet = models::RevBiFPN<Cfg, float>;
using DeviceNet = models::RevBiFPN<Cfg, float, cuda>;

namespace {

constexpr int warmup_steps = 2;

// Forward MACs of one image by part (eval phase; the train phase runs the same convs and linears).
struct macs_per_image {
  std::int64_t backbone = 0, neck = 0, head = 0;
  std::int64_t total() const { return backbone + neck + head; }
};

macs_per_image count_macs(index_t res) {
  HostNet net(0.0);
  const Tensor<float> image({1, 3, res, res});
  context ctx{phase::eval};
  macs_per_image m;
  HostNet::pyramid p, n;
  {
    count_ops c;
    p = net.features(image, ctx);
    m.backbone = c.counts().macs();
  }
  {
    count_ops c;
    n = net.neck().forward(p, ctx);
    m.neck = c.counts().macs();
  }
  {
    count_ops c;
    net.head().forward(n, ctx);
    m.head = c.counts().macs();
  }
  return m;
}

std::size_t device_used_bytes() {
  const gpu::device_memory m = gpu::device_memory_info();
  return m.total - m.free;
}

struct timed_event {
  timed_event() { REV_CUDA_CHECK(cudaEventCreate(&e)); }
  timed_event(const timed_event&) = delete;
  timed_event& operator=(const timed_event&) = delete;
  ~timed_event() { cudaEventDestroy(e); }
  void record() { REV_CUDA_CHECK(cudaEventRecord(e, gpu::current_stream())); }
  cudaEvent_t e{};
};

struct mode_result {
  double median_ms = 0, best_ms = 0;
  std::size_t peak_bytes = 0, device_used_peak = 0, reserved_peak = 0;
};

mode_result run_mode(DeviceNet& net, const Tensor<float, cuda>& image, const Tensor<float, cuda>& dout, mode m,
                     index_t batch, index_t res, int steps, double flops, const std::string& device_name) {
  const char* mode_name = m == mode::stored ? "stored" : "reversible";
  auto step = [&] {
    context ctx{phase::train};
    DeviceNet::cache tape{m};
    net.forward(image, ctx, tape);
    net.backward(tape, dout);
  };
  // The device's view starts from what this mode reserves: nothing cached from the other mode.
  gpu::synchronize();
  gpu::empty_cache();
  const std::size_t used_before = device_used_bytes();
  std::size_t used_peak = used_before, reserved_peak = gpu::allocator_statistics().reserved;
  auto sample = [&] {
    used_peak = std::max(used_peak, device_used_bytes());
    // Cached blocks stay reserved until empty_cache, so `reserved` after a step is its high-water mark.
    reserved_peak = std::max(reserved_peak, gpu::allocator_statistics().reserved);
  };
  for (int i = 0; i < warmup_steps; ++i) {
    step();
    gpu::synchronize();
    sample();
  }
  peak_scope<cuda> scope;
  timed_event start, stop;
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    start.record();
    step();
    stop.record();
    REV_CUDA_CHECK(cudaEventSynchronize(stop.e));
    float t = 0;
    REV_CUDA_CHECK(cudaEventElapsedTime(&t, start.e, stop.e));
    ms.push_back(t);
    sample();
  }
  std::sort(ms.begin(), ms.end());
  const std::size_t n = ms.size();
  const mode_result r{n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms.front(), memory<cuda>::peak(), used_peak,
                      reserved_peak};
  bench::json_line()("bench", "revbifpn_cuda")("library", "rev")("model", "S0")("mode", mode_name)("batch", batch)(
      "res", res)("steps", steps)("step_ms_median", r.median_ms)("step_ms_min", r.best_ms)("peak_bytes", r.peak_bytes)(
      "peak_above_start_bytes", scope.peak_above_start())("device_used_peak_bytes", r.device_used_peak)(
      "device_used_before_bytes", used_before)("reserved_peak_bytes", r.reserved_peak)(
      "allocator_peak_reserved_bytes", gpu::allocator_statistics().peak_reserved)("step_flops", flops)(
      "tflops", flops / (r.median_ms * 1e-3) / 1e12)("device", device_name)
      .print();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  index_t batch = 64, res = 224;
  int steps = 10;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--res") && i + 1 < argc) res = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else {
      const bool help = !std::strcmp(argv[i], "--help");
      std::fprintf(help ? stdout : stderr, "usage: bench_revbifpn_cuda [--batch 64] [--res 224] [--steps 10]\n");
      return help ? 0 : 2;
    }
  }
  if (batch < 1 || steps < 1 || res < 32 || res % 32 != 0) {
    std::fprintf(stderr, "bench_revbifpn_cuda: need --batch >= 1, --steps >= 1 and --res a positive multiple of 32\n");
    return 2;
  }
  if (!gpu::device_available()) {
    std::fprintf(stderr, "bench_revbifpn_cuda: no CUDA device on this machine\n");
    return 1;
  }
  int device = 0;
  REV_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  REV_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));

  const macs_per_image macs = count_macs(res);
  const double stored_flops = 2.0 * 3.0 * static_cast<double>(macs.total()) * static_cast<double>(batch);
  const double reversible_flops =
      stored_flops + 2.0 * static_cast<double>(macs.backbone + macs.neck) * static_cast<double>(batch);
  bench::json_line()("bench", "revbifpn_cuda")("part", "flops")("model", "S0")("batch", batch)("res", res)(
      "forward_macs_per_image", macs.total())("backbone_macs_per_image", macs.backbone)(
      "neck_macs_per_image", macs.neck)("head_macs_per_image", macs.head)("stored_step_flops", stored_flops)(
      "reversible_step_flops", reversible_flops)
      .print();

  DeviceNet net(0.0);  // dropout off, as in rev bench and the golden files
  const Tensor<float, cuda> image = to_device(testing::random_uniform<float>({batch, 3, res, res}, 1));
  const Tensor<float, cuda> dout =
      to_device(testing::random_uniform<float>({batch, DeviceNet::classes}, 2, -1e-3, 1e-3));
  // Reversible first: the allocator's process-wide peak_reserved is then Reversible's own in its line.
  const mode_result r = run_mode(net, image, dout, mode::reversible, batch, res, steps, reversible_flops, prop.name);
  const mode_result s = run_mode(net, image, dout, mode::stored, batch, res, steps, stored_flops, prop.name);
  auto ratio = [](auto a, auto b) { return static_cast<double>(a) / static_cast<double>(b); };
  bench::json_line()("bench", "revbifpn_cuda")("part", "ratios")("model", "S0")("batch", batch)("res", res)(
      "reversible_over_stored_step_time", ratio(r.median_ms, s.median_ms))("reversible_over_stored_peak_bytes",
                                                                           ratio(r.peak_bytes, s.peak_bytes))(
      "reversible_over_stored_device_used", ratio(r.device_used_peak, s.device_used_peak))(
      "reversible_over_stored_reserved", ratio(r.reserved_peak, s.reserved_peak))
      .print();
}
