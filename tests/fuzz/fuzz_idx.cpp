// libFuzzer harness of the gzip and IDX readers (rev::data::gunzip, rev::data::parse_idx): an input
// that starts with the gzip magic is inflated first, any other is parsed as IDX bytes. A failure
// must be a rev::error (any other exception escapes and is reported as a crash); an array that
// parses must hold exactly the elements its extents count (else the harness traps).
// Built with -DREV_FUZZ=ON by Clang (tests/fuzz/CMakeLists.txt); run by .ci/run and scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "rev/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> bytes;
  try {
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) bytes = rev::data::gunzip(data, size, "<fuzz>");
    else bytes.assign(data, data + size);
  } catch (const rev::error&) {
    return 0;
  }
  for (int rank = 1; rank <= 4; ++rank) {
    try {
      const rev::data::idx_array a = rev::data::parse_idx(bytes, rank, "<fuzz>");
      std::size_t n = 1;
      for (rev::index_t d : a.dims) n *= static_cast<std::size_t>(d);
      if (a.dims.size() != static_cast<std::size_t>(rank) || a.data.size() != n) __builtin_trap();
    } catch (const rev::error&) {}
  }
  return 0;
}
