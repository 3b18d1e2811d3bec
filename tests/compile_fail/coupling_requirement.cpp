// A block that declares itself a coupling but whose backward_reversible returns a std::pair
// instead of rev::reconstructed: Chain must name the unmet requirement, not checkpoint the block.
#include <rev/graph/chain.hpp>
#include <rev/nn/conv2d.hpp>

#include <utility>

template <class Ret>
struct Swap : rev::layer_types<float, rev::cpu>, rev::no_parameters {
  static constexpr bool is_coupling = true;
  struct cache {};
  tensor_type forward(const tensor_type& x, rev::context&) { return x; }
  tensor_type forward(const tensor_type& x, rev::context&, cache&) { return x; }
  tensor_type backward(cache&, const tensor_type& dy) { return dy; }
  tensor_type inverse(const tensor_type& y, rev::context&) { return y; }
  Ret backward_reversible(const tensor_type& y, const tensor_type& dy) { return {y, dy}; }
};

#ifdef REV_KO
rev::Chain<rev::nn::Conv2d<3, 4>, Swap<std::pair<rev::Tensor<float>, rev::Tensor<float>>>> net;
#else
rev::Chain<rev::nn::Conv2d<3, 4>, Swap<rev::reconstructed<rev::Tensor<float>>>> net;
#endif
int main() {}
