// Counting the multiply-accumulates of a forward pass, the way model papers report them.
//
//   rev::count_ops counter;                 // counts the ops this thread runs while alive
//   net.forward(image, ctx);                // batch 1, eval phase
//   counter.counts().macs();                // conv + linear (+ attention) MACs (RevBiFPN's Table 3)
//   counter.counts().thop();                // the thop profiler's total
//
// Ops report themselves at their entry point, on the calling thread; nothing is counted and
// nothing is paid beyond one thread-local load when no counter is alive.
#pragma once

#include <cstdint>

namespace rev {

struct op_counts {
  std::int64_t conv_macs = 0;          // per conv: output elements x (C_in / groups) x kh x kw
  std::int64_t linear_macs = 0;        // per linear: rows x in x out
  std::int64_t conv_bias = 0;          // output elements of convs with a bias
  std::int64_t bn_elements = 0;        // batch-norm output elements
  std::int64_t upsample_elements = 0;  // bilinear up-sampling output elements
  std::int64_t attention_macs = 0;     // q k^T and probabilities x v: B x Nq x Nk x (D + Dv)
  std::int64_t rel_pos_macs = 0;       // decomposed relative positions: B x Nq x (kh + kw) x d

  op_counts& operator+=(const op_counts& o) {
    conv_macs += o.conv_macs;
    linear_macs += o.linear_macs;
    conv_bias += o.conv_bias;
    bn_elements += o.bn_elements;
    upsample_elements += o.upsample_elements;
    attention_macs += o.attention_macs;
    rel_pos_macs += o.rel_pos_macs;
    return *this;
  }

  /// Convolution, linear, attention-product and relative-position MACs: what the papers' tables
  /// count (the convolutional models have no attention).
  std::int64_t macs() const { return conv_macs + linear_macs + attention_macs + rel_pos_macs; }
  /// The thop profiler's rule: MACs + 1 per conv-bias output + 2 per BN output + 11 per
  /// bilinear-upsample output (reproduces RevBiFPN's Table 3).
  std::int64_t thop() const { return macs() + conv_bias + 2 * bn_elements + 11 * upsample_elements; }
};

namespace detail {
inline op_counts*& active_op_counts() {
  thread_local op_counts* active = nullptr;
  return active;
}
}  // namespace detail

/// Counts the ops run on this thread during its lifetime (an inner counter pauses the outer).
class count_ops {
 public:
  count_ops() : outer_(detail::active_op_counts()) { detail::active_op_counts() = &counts_; }
  ~count_ops() { detail::active_op_counts() = outer_; }
  count_ops(const count_ops&) = delete;
  count_ops& operator=(const count_ops&) = delete;
  const op_counts& counts() const { return counts_; }

 private:
  op_counts counts_;
  op_counts* outer_;
};

}  // namespace rev
