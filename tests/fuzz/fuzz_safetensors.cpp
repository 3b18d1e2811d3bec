// libFuzzer harness of the safetensors reader (rev::io::parse). A failure on bad input must be a
// rev::error (any other exception escapes and is reported as a crash); a file that parses must
// convert to float, serialize, and parse back to the same entries (else the harness traps).
// Built with -DREV_FUZZ=ON by Clang (tests/fuzz/CMakeLists.txt); run by .ci/run and scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>

#include "rev/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rev::io::file f;
  try {
    f = rev::io::parse(reinterpret_cast<const std::byte*>(data), size, "<fuzz>");
  } catch (const rev::error&) {
    return 0;
  }
  for (const auto& [name, e] : f.entries) {
    const rev::Tensor<float> t = e.to_tensor<float>();
    if (t.shape() != e.shape) __builtin_trap();
  }
  const std::vector<std::byte> bytes = rev::io::serialize(f);
  const rev::io::file back = rev::io::parse(bytes.data(), bytes.size(), "<round trip>");
  if (back.metadata != f.metadata || back.entries.size() != f.entries.size()) __builtin_trap();
  for (const auto& [name, e] : f.entries) {
    const auto it = back.entries.find(name);
    if (it == back.entries.end() || it->second.type != e.type || it->second.shape != e.shape ||
        it->second.bytes != e.bytes)
      __builtin_trap();
  }
  return 0;
}
