#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "helpers.hpp"

using namespace rev;

namespace {

// A file image written by hand: one tensor with the given header JSON and data bytes.
std::vector<std::byte> image(const std::string& header, std::size_t data_bytes) {
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  const std::uint64_t len = header.size();
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

}  // namespace

TEST_CASE("safetensors: round trip of F32 and F64 entries and metadata is exact") {
  io::file f;
  auto a = test::random<float>({2, 3}, 1);
  auto b = test::random<double>({4}, 2);
  f.put("layer.weight", a);
  f.put("x", b);
  f.put("scalar", Tensor<double>::from({}, {3.5}));
  f.metadata["arch"] = "tiny \"quoted\"";
  auto bytes = io::serialize(f);
  auto g = io::parse(bytes.data(), bytes.size());
  CHECK(g.metadata.at("arch") == "tiny \"quoted\"");
  CHECK(g.at("layer.weight").type == io::dtype::F32);
  CHECK(test::max_abs_error(g.tensor<float>("layer.weight"), a) == 0);
  CHECK(test::max_abs_error(g.tensor<double>("x"), b) == 0);
  CHECK(g.tensor<double>("scalar").rank() == 0);
  CHECK(g.tensor<double>("scalar").data()[0] == 3.5);
  CHECK((io::serialize(g) == bytes));
  CHECK_THROWS_WITH_AS(g.tensor<float>("missing"), "rev::io::safetensors: no tensor named 'missing'", io_error);
}

TEST_CASE("safetensors: F16, BF16 and I64 are converted on load") {
  // F16: 1.0 = 0x3C00, -2.0 = 0xC000, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001.
  auto f16 = image(R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", 8);
  const std::uint16_t h[] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
  std::memcpy(f16.data() + f16.size() - 8, h, 8);
  auto t = io::parse(f16.data(), f16.size()).tensor<double>("h");
  CHECK(t(0) == 1.0);
  CHECK(t(1) == -2.0);
  CHECK(t(2) == 65504.0);
  CHECK(t(3) == std::ldexp(1.0, -24));
  // BF16: 1.5 = 0x3FC0.
  auto bf = image(R"({"b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})", 2);
  const std::uint16_t bv = 0x3FC0;
  std::memcpy(bf.data() + bf.size() - 2, &bv, 2);
  CHECK(io::parse(bf.data(), bf.size()).tensor<float>("b")(0) == 1.5f);
  auto i64 = image(R"({"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})", 8);
  const std::int64_t n = -7;
  std::memcpy(i64.data() + i64.size() - 8, &n, 8);
  CHECK(io::parse(i64.data(), i64.size()).tensor<double>("n").data()[0] == -7.0);
}

TEST_CASE("safetensors: truncated and corrupt files raise io_error") {
  io::file f;
  f.put("w", test::random<float>({8, 8}, 3));
  auto good = io::serialize(f);
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{12}, good.size() - 1}) {
    CAPTURE(cut);
    CHECK_THROWS_AS(io::parse(good.data(), cut), io_error);
  }
  auto check_bad = [](const std::string& header, std::size_t data, const char* what) {
    auto img = image(header, data);
    CAPTURE(what);
    CHECK_THROWS_AS(io::parse(img.data(), img.size()), io_error);
  };
  check_bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4, "size does not match the shape");
  check_bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "offsets beyond the data");
  check_bad(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8, "unknown dtype");
  check_bad(R"({"w":{"dtype":"F32","shape":[2]}})", 8, "missing offsets");
  check_bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8, "unterminated object");
  check_bad(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12, "overlapping tensors");
  check_bad(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", 8, "huge shape");
  check_bad(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "negative extent");
  CHECK_THROWS_WITH_AS(io::load("does/not/exist.safetensors"),
                       "rev::io::safetensors: cannot open 'does/not/exist.safetensors'", io_error);
}

TEST_CASE("safetensors: hostile headers are refused naming the file and the tensor, before any copy") {
  auto message = [](const std::string& header, std::size_t data) {
    const auto img = image(header, data);
    try {
      io::parse(img.data(), img.size(), "x.safetensors");
    } catch (const io_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // [0, 2^64 - 17] would be an empty tensor with a negative extent.
  CHECK(message(R"({"w":{"dtype":"F32","shape":[0,18446744073709551599],"data_offsets":[0,0]}})", 0) ==
        "rev::io::safetensors: 'x.safetensors': tensor 'w' has extent 18446744073709551599, above the largest "
        "extent 9223372036854775807");
  CHECK(message(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", 8) ==
        "rev::io::safetensors: 'x.safetensors': tensor 'w' has extents [4611686018427387904, 4], more than the 8 data "
        "bytes hold");
  CHECK(message(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", 8) ==
        "rev::io::safetensors: 'x.safetensors': tensor 'w' has unsupported dtype 'Q7'");
  CHECK(message(R"({"w\u-001":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8) ==
        "rev::io::safetensors: 'x.safetensors': corrupt header: bad \\u escape (four hex digits expected) at byte 13");
  CHECK(message(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", 8)
            .starts_with("rev::io::safetensors: 'x.safetensors': corrupt header: "));
  // An empty tensor with a zero extent loads, whatever its other extents.
  CHECK(message(R"({"e":{"dtype":"F32","shape":[0,1000],"data_offsets":[0,0]}})", 0) == "no error");
}

TEST_CASE("safetensors: 2000 entries over one shared 1 MiB block are refused without copying them") {
  // Reading a file costs at most its size: the overlap is found before any entry's bytes are
  // copied (before, this file took 2 GB of copies).
  constexpr std::size_t block = std::size_t{1} << 20;
  std::string header = "{";
  for (int i = 0; i < 2000; ++i) {
    if (i > 0) header.push_back(',');
    header.append("\"t").append(std::to_string(i));
    header.append(R"(":{"dtype":"F32","shape":[262144],"data_offsets":[0,1048576]})");
  }
  header += "}";
  const auto img = image(header, block);
  const std::size_t before = memory<cpu>::current();
  CHECK_THROWS_WITH_AS(io::parse(img.data(), img.size(), "x.safetensors"),
                       "rev::io::safetensors: 'x.safetensors': tensors 't0' and 't1' overlap", io_error);
  CHECK(memory<cpu>::current() == before);
}

TEST_CASE("safetensors: a tensor named __metadata__ is refused on write") {
  io::file f;
  f.put("__metadata__", Tensor<float>({2}));
  CHECK_THROWS_WITH_AS(io::serialize(f),
                       "rev::io::safetensors: a tensor cannot be named '__metadata__' (the format reserves the key "
                       "for the metadata; the file could not be read back)",
                       io_error);
}

TEST_CASE("safetensors: a directory is not a file") {
  CHECK_THROWS_WITH_AS(io::load("."), "rev::io::safetensors: '.' is a directory, expected a safetensors file",
                       io_error);
}

TEST_CASE("safetensors: save is atomic: a write that fails midway leaves the old file intact") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("rev_atomic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "model.safetensors").string();
  io::file old_file;
  old_file.put("w", test::random<float>({16}, 3));
  io::save(old_file, path);
  const auto old_bytes = io::serialize(old_file);

  // A 4 MiB file written by a child process whose file-size limit is 64 KiB: the write fails
  // after the first bytes, as on a full disk (SIGXFSZ ignored, so write() reports EFBIG).
  io::file big;
  big.put("w", test::random<float>({1 << 20}, 4));
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{64 << 10, 64 << 10};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    int code = 1;
    try {
      io::save(big, path);
    } catch (const io_error& e) {
      code = std::string(e.what()).find("the file is left as it was") != std::string::npos ? 0 : 2;
    }
    std::_Exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 1: the write did not fail; 2: another error

  // The old file is untouched and no temporary file is left behind.
  auto loaded = io::load(path);
  CHECK((io::serialize(loaded) == old_bytes));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);

  // A successful save replaces it.
  io::save(big, path);
  CHECK(io::load(path).at("w").shape == Shape{1 << 20});
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  fs::remove_all(dir);
}

TEST_CASE("safetensors: save into a missing directory is an io_error naming the path") {
  io::file f;
  f.put("w", test::random<float>({2}, 5));
  CHECK_THROWS_WITH_AS(io::save(f, "/nonexistent_rev_dir/x.safetensors"),
                       doctest::Contains("'/nonexistent_rev_dir/x.safetensors'"), io_error);
}
