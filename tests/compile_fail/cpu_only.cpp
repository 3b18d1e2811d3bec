// The classes that loop over host memory refuse a device backend, each with one line that names it
// and says it is CPU-only for now. A fake device backend stands in for rev::cuda, so that this
// compiles without nvcc; the ok twin instantiates the same classes on rev::cpu.
#include <rev/column.hpp>
#include <rev/rev.hpp>
#include <rev/train.hpp>

struct fake_device {
  static constexpr const char* name = "fake_device";
};
template <>
struct rev::allocator<fake_device> : rev::allocator<rev::cpu> {};

#ifdef REV_KO
using B = fake_device;
#else
using B = rev::cpu;
#endif

using Conv = rev::nn::Conv2d<2, 2, rev::nn::conv_opts{.kernel = 1}, float, B>;

template <int L>
struct Fuse : rev::layer_types<float, B> {
  static constexpr int out_channels = 8, low_channels = 8, high_channels = rev::any_channels;
  struct cache {};
};

static_assert(sizeof(rev::train::SGD<float, B>) > 0);
static_assert(sizeof(rev::train::AdamW<float, B>) > 0);
static_assert(sizeof(rev::train::ModelEMA<float, B>) > 0);
static_assert(sizeof(rev::nn::SNConv2d<2, 2, rev::nn::conv_opts{.kernel = 1}, float, B>) > 0);
static_assert(sizeof(rev::FixedPointResidual<Conv>) > 0);
static_assert(sizeof(rev::Affine<Conv, Conv>) > 0);
static_assert(sizeof(rev::Column<2, Fuse>) > 0);

void use(Conv& conv, rev::Additive<Conv, Conv>& block, const rev::Tensor<float, B>& x) {
  rev::train::clip_grad_norm_(conv, 1.0);
  rev::testing::check_invertible(block, x);
  rev::testing::check_reversible_gradients(block, x);
}

int main() {}
