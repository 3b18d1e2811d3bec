// A two-stream Additive whose F and G are LayerNorm -> Linear<384, 1536> MLPs without the
// projection back: F maps the stream width 384 to 1536, so y1 = x1 + F(x2) cannot be formed.
#include <rev/additive.hpp>
#include <rev/nn/layernorm.hpp>
#include <rev/nn/linear.hpp>
#include <rev/nn/sequential.hpp>

#ifdef REV_KO
using Mlp = rev::nn::Sequential<rev::nn::LayerNorm<384>, rev::nn::Linear<384, 1536>>;
#else
using Mlp = rev::nn::Sequential<rev::nn::LayerNorm<384>, rev::nn::Linear<384, 1536>, rev::nn::Linear<1536, 384>>;
#endif
static_assert(Mlp::in_channels == 384);
rev::Additive<Mlp, Mlp, rev::coupling_layout::streams> block;
int main() {}
