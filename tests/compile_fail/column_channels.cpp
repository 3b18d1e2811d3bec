// rev::Column whose level 1 does not read level 0's channels as its low input.
#include <rev/column.hpp>

template <int L>
struct Fuse : rev::layer_types<float, rev::cpu> {
  static constexpr int out_channels = 8 << L;
#ifdef REV_KO
  static constexpr int low_channels = L == 0 ? 8 : 5;
#else
  static constexpr int low_channels = L == 0 ? 8 : (8 << (L - 1));
#endif
  static constexpr int high_channels = rev::any_channels;
  struct cache {};
};
using C = rev::Column<2, Fuse>;
static_assert(C::channels<1> == 16);
int main() {}
