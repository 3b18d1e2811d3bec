// A block that declares itself a container but has no backward_with_input: Chain names it.
#include <rev/graph/chain.hpp>
#include <rev/nn/conv2d.hpp>

template <bool Complete>
struct Wrap : rev::nn::Conv2d<4, 4> {
  static constexpr bool is_container = true;
  struct cache : rev::nn::Conv2d<4, 4>::cache {
    cache(rev::mode mode_ = rev::mode::stored) : m(mode_) {}
    rev::mode m;
  };
  tensor_type forward(const tensor_type& x, rev::context& ctx) { return rev::nn::Conv2d<4, 4>::forward(x, ctx); }
  tensor_type forward(const tensor_type& x, rev::context& ctx, cache& c) {
    return rev::nn::Conv2d<4, 4>::forward(x, ctx, c);
  }
  tensor_type backward(cache& c, const tensor_type& dy) { return rev::nn::Conv2d<4, 4>::backward(c, dy); }
  rev::reconstructed<tensor_type> backward_with_input(cache& c, const tensor_type& dy) requires Complete {
    return {tensor_type(), backward(c, dy)};
  }
};

#ifdef REV_KO
rev::Chain<rev::nn::Conv2d<3, 4>, Wrap<false>> net;
#else
rev::Chain<rev::nn::Conv2d<3, 4>, Wrap<true>> net;
#endif
int main() {}
