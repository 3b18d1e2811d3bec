// BatchNorm2d: batch normalisation of NCHW maps with learnable per-channel affine parameters
// and running statistics (PyTorch's nn.BatchNorm2d, state_dict names "weight", "bias",
// "running_mean", "running_var"; PyTorch's int64 "num_batches_tracked" is not kept).
#pragma once

#include <cmath>
#include <string>

#include "rev/core/layer.hpp"
#include "rev/cpu.hpp"
#include "rev/ops/batchnorm.hpp"

namespace rev::nn {

/// Options of BatchNorm2d. momentum follows PyTorch's convention:
/// running = (1 - momentum) * running + momentum * batch.
struct bn_opts {
  double eps = 1e-5;
  double momentum = 0.1;
};

/// Batch normalisation over C channels. Phases (core/layer.hpp):
///   train      batch statistics; the running statistics are updated once (unless
///              track_running_stats is false) and the batch statistics are kept in ctx.replay
///              (the tape's replay record) when there is one, and in the layer;
///   recompute  the batch statistics kept in ctx.replay, else those kept in the layer; nothing
///              is updated; backward as in train;
///   eval       the running statistics, which backward treats as constants.
template <int C, bn_opts O = bn_opts{}, Scalar T = float, class B = cpu>
class BatchNorm2d : public layer_types<T, B> {
  static_assert(C > 0, "rev::nn::BatchNorm2d: the channel count must be positive");
  static_assert(O.eps >= 0 && O.momentum >= 0 && O.momentum <= 1,
                "rev::nn::BatchNorm2d: bn_opts needs eps >= 0 and momentum in [0, 1]");

 public:
  template <Scalar T2, class B2>
  using rebind = BatchNorm2d<C, O, T2, B2>;
  using tensor_type = Tensor<T, B>;
  using param_type = Param<T, B>;
  static constexpr int in_channels = C, out_channels = C;
  static constexpr layout in_layout = layout::map, out_layout = layout::map;
  static constexpr bn_opts options = O;

  struct cache {
    tensor_type x;
    ops::batch_stats<T, B> stats;
    bool batch_statistics = false;  // true: train/recompute (gradient through the statistics)
  };

  param_type weight{Shape{C}}, bias{Shape{C}};
  tensor_type running_mean{Shape{C}}, running_var = tensor_type::full(Shape{C}, T(1));
  /// false: train-phase forwards leave the running statistics unchanged.
  bool track_running_stats = true;

  BatchNorm2d() { weight.value.fill(T(1)); }

  tensor_type forward(const tensor_type& x, context& ctx) {
    ops::batch_stats<T, B> unused;
    bool batch = false;
    return run(x, ctx, unused, batch);
  }

  tensor_type forward(const tensor_type& x, context& ctx, cache& c) {
    tensor_type y = run(x, ctx, c.stats, c.batch_statistics);
    c.x = x;
    return y;
  }

  tensor_type backward(cache& c, const tensor_type& dy) {
    check_input(dy, "dy");
    return c.batch_statistics ? ops::batch_norm_backward_train(c.x, weight.value, c.stats, dy, &weight.grad, &bias.grad)
                              : ops::batch_norm_backward_eval(c.x, weight.value, c.stats, dy, &weight.grad, &bias.grad);
  }

  /// The batch statistics of the last train-phase forward (empty before the first).
  const ops::batch_stats<T, B>& kept_statistics() const { return kept_; }

  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "weight"), weight);
    f(join_name(prefix, "bias"), bias);
  }
  template <class F>
  void for_each_buffer(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "running_mean"), running_mean);
    f(join_name(prefix, "running_var"), running_var);
  }

 private:
  static constexpr const char* who = "rev::nn::BatchNorm2d";

  static void check_input(const tensor_type& x, const char* what = "input") {
    check<shape_error>(x.rank() == 4 && x.size(1) == C, who, ": ", what, " has extents ", x.shape(), ", expected [N, ",
                       C, ", H, W]");
  }

  tensor_type run(const tensor_type& x, context& ctx, ops::batch_stats<T, B>& stats, bool& batch) {
    check_input(x);
    switch (ctx.mode) {
      case phase::train: {
        const index_t n = x.size(0) * x.size(2) * x.size(3);
        check<value_error>(n > 1, who, ": expected more than 1 value per channel when training, got input extents ",
                           x.shape());
        tensor_type y = ops::batch_norm_train(x, weight.value, bias.value, O.eps, kept_);
        if (track_running_stats) ops::batch_norm_update_running(running_mean, running_var, kept_, n, O.momentum);
        kept_.var = tensor_type();  // read by the running update only
        if (ctx.replay) ctx.replay->put(this, kept_);
        stats = kept_;
        batch = true;
        return y;
      }
      case phase::recompute:
        stats = replayed(ctx);
        batch = true;
        return ops::batch_norm_apply(x, weight.value, bias.value, stats);
      case phase::eval: break;
    }
    stats = running_statistics();
    batch = false;
    return ops::batch_norm_apply(x, weight.value, bias.value, stats);
  }

  // The batch statistics the recompute phase uses: those of the tape's forward, or the kept ones.
  const ops::batch_stats<T, B>& replayed(const context& ctx) const {
    if (ctx.replay) {
      const auto* s = ctx.replay->find<ops::batch_stats<T, B>>(this);
      check<value_error>(s != nullptr, who,
                         ": recompute phase without batch statistics in the tape being walked back (the layer did not "
                         "run in that tape's train-phase forward)");
      return *s;
    }
    check<value_error>(!kept_.mean.empty(), who,
                       ": recompute phase without batch statistics (no train-phase forward ran before)");
    return kept_;
  }

  // mean = running_mean, invstd = 1 / sqrt(running_var + eps).
  // (A [C] vector, computed on the host.)
  ops::batch_stats<T, B> running_statistics() const {
    const Tensor<T> var = to<cpu>(running_var);
    Tensor<T> invstd = Tensor<T>::uninitialized(Shape{C});
    for (int c = 0; c < C; ++c)
      invstd.data()[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(var.data()[c]) + O.eps));
    return {running_mean.clone(), to<B>(invstd), tensor_type()};
  }

  ops::batch_stats<T, B> kept_;
};

}  // namespace rev::nn
