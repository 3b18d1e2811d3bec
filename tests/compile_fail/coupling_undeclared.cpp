// A block with inverse and backward_reversible that does not declare is_coupling: Chain refuses
// it rather than running it as an ordinary, checkpointed block.
#include <rev/graph/chain.hpp>
#include <rev/nn/conv2d.hpp>

template <bool Declared>
struct Identity : rev::layer_types<float, rev::cpu>, rev::no_parameters {
  static constexpr bool is_coupling = Declared;
  struct cache {};
  tensor_type forward(const tensor_type& x, rev::context&) { return x; }
  tensor_type forward(const tensor_type& x, rev::context&, cache&) { return x; }
  tensor_type backward(cache&, const tensor_type& dy) { return dy; }
  tensor_type inverse(const tensor_type& y, rev::context&) { return y; }
  rev::reconstructed<tensor_type> backward_reversible(const tensor_type& y, const tensor_type& dy) { return {y, dy}; }
};

#ifdef REV_KO
rev::Chain<rev::nn::Conv2d<3, 4>, rev::Repeat<2, Identity<false>>> net;
#else
rev::Chain<rev::nn::Conv2d<3, 4>, rev::Repeat<2, Identity<true>>> net;
static_assert(rev::Coupling<Identity<true>> && rev::Coupling<rev::Repeat<2, Identity<true>>>);
#endif
int main() {}
