// RevCol with intermediate supervision and a column count that is not a multiple of 4 (the
// official code fails at run time: ZeroDivisionError for 3 columns, IndexError for 6).
#include <rev/models/revcol.hpp>

struct Six {
  static constexpr const char* name = "six";
  static constexpr std::array<int, 4> c{8, 16, 32, 64}, b{1, 1, 1, 1};
#ifdef REV_KO
  static constexpr int columns = 6;
#else
  static constexpr int columns = 8;
#endif
  static constexpr double drop_path = 0;
};
static_assert(sizeof(rev::models::RevCol<Six>) > 0);
int main() {}
