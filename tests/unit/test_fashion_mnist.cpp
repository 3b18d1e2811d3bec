// The gzipped-IDX reader and the Fashion-MNIST loader: exact decoding of synthetic files written
// here with zlib, batching, normalisation, shuffling, augmentation, resumable state, every kind of
// bad file, and the real data set when Debian's dataset-fashion-mnist is installed.
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "helpers.hpp"
#include "rev/data/fashion_mnist.hpp"

using namespace rev;
namespace fs = std::filesystem;

namespace {

std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::uint8_t> out(deflateBound(&zs, static_cast<uLong>(raw.size())) + 64);
  zs.next_in = const_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// An IDX image of unsigned bytes: magic 0 0 8 rank, big-endian extents, data.
std::vector<std::uint8_t> idx(const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> b{0, 0, 8, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void write(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A temporary directory, removed at the end of the test.
struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("rev_test_fashion_mnist_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// n images whose pixel (r, c) of image i is (7 i + 3 r + 5 c^2) mod 256 (asymmetric left-right),
// labelled i mod 10.
data::image_set synthetic(index_t n) {
  data::image_set s{n, 28, 28, {}, {}};
  for (index_t i = 0; i < n; ++i) {
    for (index_t r = 0; r < 28; ++r)
      for (index_t c = 0; c < 28; ++c) s.pixels.push_back(static_cast<std::uint8_t>((7 * i + 3 * r + 5 * c * c) % 256));
    s.labels.push_back(static_cast<int>(i % 10));
  }
  return s;
}

// Writes `s` as <dir>/<stem>-images-idx3-ubyte.gz and <stem>-labels-idx1-ubyte.gz.
void write_set(const temp_dir& dir, const std::string& stem, const data::image_set& s) {
  write(dir / (stem + "-images-idx3-ubyte.gz"),
        gzip(idx({static_cast<std::uint32_t>(s.size), static_cast<std::uint32_t>(s.rows),
                  static_cast<std::uint32_t>(s.cols)},
                 s.pixels)));
  std::vector<std::uint8_t> labels(s.labels.begin(), s.labels.end());
  write(dir / (stem + "-labels-idx1-ubyte.gz"), gzip(idx({static_cast<std::uint32_t>(s.size)}, labels)));
}

float normalised(int p) { return static_cast<float>((p / 255.0 - data::fashion_mnist_mean) / data::fashion_mnist_std); }

// The (top, left, flip) placement of image `src` in the 32x32 `dst`, or {-1, -1, false} if none fits.
struct placement {
  int top = -1, left = -1;
  bool flip = false;
};
placement find_placement(const std::uint8_t* src, const float* dst) {
  placement found;
  int matches = 0;
  for (int flip = 0; flip < 2; ++flip)
    for (int top = 0; top <= 4; ++top)
      for (int left = 0; left <= 4; ++left) {
        bool ok = true;
        for (int r = 0; r < 32 && ok; ++r)
          for (int c = 0; c < 32 && ok; ++c) {
            const int ir = r - top, ic = c - left;
            const bool inside = ir >= 0 && ir < 28 && ic >= 0 && ic < 28;
            const float expect = inside ? normalised(src[ir * 28 + (flip ? 27 - ic : ic)]) : normalised(0);
            ok = dst[r * 32 + c] == expect;
          }
        if (ok) {
          found = {top, left, flip != 0};
          ++matches;
        }
      }
  return matches == 1 ? found : placement{};
}

}  // namespace

TEST_CASE("Fashion-MNIST: gzipped IDX files decode exactly, from explicit paths and from a directory") {
  temp_dir dir;
  const data::image_set s = synthetic(5);
  write_set(dir, "train", s);
  write_set(dir, "t10k", synthetic(3));
  const data::image_set r =
      data::read_idx_images(dir / "train-images-idx3-ubyte.gz", dir / "train-labels-idx1-ubyte.gz");
  CHECK(r.size == 5);
  CHECK(r.rows == 28);
  CHECK(r.cols == 28);
  CHECK(r.pixels == s.pixels);
  CHECK(r.labels == s.labels);
  CHECK(data::load_fashion_mnist(data::split::train, dir.path.string()).pixels == s.pixels);
  CHECK(data::load_fashion_mnist(data::split::test, dir.path.string()).size == 3);
  // Concatenated gzip members are one stream (RFC 1952).
  auto two = gzip({1, 2, 3});
  const auto second = gzip({4, 5});
  two.insert(two.end(), second.begin(), second.end());
  write(dir / "two.gz", two);
  CHECK(data::read_gzip(dir / "two.gz") == std::vector<std::uint8_t>{1, 2, 3, 4, 5});
}

TEST_CASE("Fashion-MNIST loader: centred, normalised batches in order, a short last batch, drop_last") {
  const data::image_set s = synthetic(5);
  data::Loader loader(s, {.batch_size = 2, .shuffle = false});
  CHECK(loader.batches_per_epoch() == 3);
  data::batch b;
  std::vector<int> labels;
  for (int k = 0; k < 3; ++k) {
    REQUIRE(loader.next(b));
    CHECK(b.images.shape() == Shape{k < 2 ? 2 : 1, 1, 32, 32});
    for (index_t j = 0; j < b.images.size(0); ++j) {
      const index_t i = 2 * k + j;
      CHECK(b.images(j, 0, 0, 0) == normalised(0));
      CHECK(b.images(j, 0, 31, 31) == normalised(0));
      CHECK(b.images(j, 0, 2, 2) == normalised(s.pixels[static_cast<std::size_t>(i * 784)]));
      CHECK(b.images(j, 0, 2 + 27, 2 + 13) == normalised(s.pixels[static_cast<std::size_t>(i * 784 + 27 * 28 + 13)]));
      const placement p = find_placement(s.pixels.data() + i * 784, b.images.data() + j * 1024);
      CHECK((p.top == 2 && p.left == 2 && !p.flip));
    }
    labels.insert(labels.end(), b.labels.begin(), b.labels.end());
  }
  CHECK(labels == s.labels);
  CHECK_FALSE(loader.next(b));
  CHECK(loader.epoch() == 1);
  REQUIRE(loader.next(b));  // a new epoch starts
  CHECK(b.labels == std::vector<int>{0, 1});

  data::Loader dropping(s, {.batch_size = 2, .shuffle = false, .drop_last = true});
  CHECK(dropping.batches_per_epoch() == 2);
  int n = 0;
  while (dropping.next(b)) ++n;
  CHECK(n == 2);
}

TEST_CASE("Fashion-MNIST loader: shuffling is a seeded permutation, new every epoch") {
  data::image_set s = synthetic(40);
  std::iota(s.labels.begin(), s.labels.end(), 0);  // labels name the images
  auto epoch_order = [&](data::Loader& l) {
    std::vector<int> order;
    data::batch b;
    while (l.next(b)) order.insert(order.end(), b.labels.begin(), b.labels.end());
    return order;
  };
  data::Loader a(s, {.batch_size = 16, .seed = 1}), same(s, {.batch_size = 16, .seed = 1}),
      other(s, {.batch_size = 16, .seed = 2});
  const auto a0 = epoch_order(a), a1 = epoch_order(a);
  CHECK(std::set<int>(a0.begin(), a0.end()).size() == 40);
  CHECK(std::set<int>(a1.begin(), a1.end()).size() == 40);
  CHECK(a0 != a1);
  CHECK(a0 != s.labels);
  CHECK(epoch_order(same) == a0);
  CHECK(epoch_order(other) != a0);
}

TEST_CASE("Fashion-MNIST loader: augmentation shifts the image inside the 32x32 frame and flips it") {
  const data::image_set s = synthetic(400);
  data::Loader loader(s, {.batch_size = 100, .shuffle = false, .shift = 2, .flip = true, .seed = 3});
  std::set<std::pair<int, int>> shifts;
  int flips = 0, n = 0;
  data::batch b;
  while (loader.next(b))
    for (index_t j = 0; j < b.images.size(0); ++j, ++n) {
      const placement p = find_placement(s.pixels.data() + n * 784, b.images.data() + j * 1024);
      REQUIRE(p.top >= 0);
      shifts.insert({p.top, p.left});
      flips += p.flip;
    }
  CHECK(n == 400);
  CHECK(shifts.size() == 25);  // every placement of 28x28 in 32x32
  CHECK(flips > 150);
  CHECK(flips < 250);

  data::Loader small(s, {.batch_size = 100, .shuffle = false, .shift = 1, .seed = 3});  // no flip
  shifts.clear();
  n = 0;
  while (small.next(b))
    for (index_t j = 0; j < b.images.size(0); ++j, ++n) {
      const placement p = find_placement(s.pixels.data() + n * 784, b.images.data() + j * 1024);
      REQUIRE(p.top >= 0);
      CHECK_FALSE(p.flip);
      shifts.insert({p.top, p.left});
    }
  CHECK(shifts.size() == 9);  // corners 1..3 x 1..3: at most one pixel from the centre
  CHECK(shifts.begin()->first == 1);
  CHECK(shifts.rbegin()->first == 3);
  CHECK_THROWS_WITH_AS(data::Loader(s, {.shift = 3}), "rev::data::Loader: shift 3 must be in [0, padding = 2]",
                       value_error);
}

TEST_CASE("Fashion-MNIST loader: save_state / load_state resume the same batches") {
  const data::image_set s = synthetic(30);
  const data::loader_options o{.batch_size = 4, .shift = 2, .flip = true, .seed = 9};
  data::Loader a(s, o);
  data::batch b;
  for (int i = 0; i < 10; ++i) a.next(b);  // into the second epoch
  io::file state;
  a.save_state(state, "data.");
  data::Loader resumed(s, o);
  resumed.load_state(state, "data.");
  data::batch x, y;
  for (int i = 0; i < 12; ++i) {
    INFO("batch ", i);
    const bool more = a.next(x);
    REQUIRE(resumed.next(y) == more);
    if (!more) continue;
    CHECK(x.labels == y.labels);
    CHECK(test::max_abs_error(x.images, y.images) == 0);
  }
  const data::image_set smaller = synthetic(20);
  data::Loader wrong(smaller, o);
  CHECK_THROWS_WITH_AS(
      wrong.load_state(state, "data."),
      "rev::data::Loader::load_state: the checkpoint's loader iterated over 30 images, this one over 20", io_error);
}

TEST_CASE("Fashion-MNIST: bad files and options raise errors that name the problem") {
  temp_dir dir;
  const std::string missing = (dir.path / "nowhere").string();
  CHECK_THROWS_WITH_AS(
      data::load_fashion_mnist(data::split::train, missing),
      doctest::Contains("does not exist; install Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist`"),
      io_error);
  const auto images = idx({2, 28, 28}, std::vector<std::uint8_t>(2 * 784, 7));
  const auto labels = gzip(idx({2}, {1, 2}));
  write(dir / "labels.gz", labels);
  auto expect_error = [&](const std::vector<std::uint8_t>& file, const std::string& message) {
    INFO(message);
    write(dir / "images.gz", file);
    CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "images.gz", dir / "labels.gz"),
                         doctest::Contains(message.c_str()), io_error);
  };
  expect_error(images, "is not a gzip file");
  const auto packed = gzip(images);
  expect_error(
      std::vector<std::uint8_t>(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(packed.size() / 2)),
      "is truncated (the gzip stream ends early)");
  auto bad_crc = packed;
  bad_crc[bad_crc.size() - 6] ^= 0xff;  // the CRC-32 of the trailer
  expect_error(bad_crc, "is a corrupt gzip file (zlib: incorrect data check)");
  auto magic = images;
  magic[2] = 0x09;
  expect_error(gzip(magic), "bad IDX magic 0 0 9, expected 0 0 8 (unsigned bytes)");
  expect_error(gzip(idx({2, 784}, std::vector<std::uint8_t>(2 * 784))), "the IDX array has rank 2, expected 3");
  expect_error(gzip(std::vector<std::uint8_t>(images.begin(), images.end() - 100)),
               "1468 data bytes, expected 1568 for the extents in the header (truncated)");
  auto longer = images;
  longer.push_back(0);
  expect_error(gzip(longer), "1569 data bytes, expected 1568 for the extents in the header (trailing bytes)");
  expect_error(gzip(idx({3, 28, 28}, std::vector<std::uint8_t>(3 * 784))), "holds 3 images but");
  expect_error(gzip({0, 0, 8}), "3 bytes is too short for the 4-byte IDX magic");
  write(dir / "images.gz", gzip(images));
  write(dir / "labels.gz", gzip(idx({2}, {3, 10})));
  CHECK_THROWS_WITH_AS(data::read_idx_images(dir / "images.gz", dir / "labels.gz"),
                       doctest::Contains("label 10 of sample 1 is out of range [0, 10)"), io_error);
  CHECK_THROWS_WITH_AS(data::read_gzip(dir / "absent.gz"), doctest::Contains("cannot open"), io_error);

  data::image_set s27{1, 27, 28, std::vector<std::uint8_t>(27 * 28), {0}};
  write_set(dir, "train", s27);
  CHECK_THROWS_WITH_AS(data::load_fashion_mnist(data::split::train, dir.path.string()),
                       doctest::Contains("holds images of 27x28 pixels, expected 28x28"), io_error);

  const data::image_set s = synthetic(3);
  CHECK_THROWS_WITH_AS(data::Loader(s, {.batch_size = 0}), "rev::data::Loader: batch_size 0 must be positive",
                       value_error);
  CHECK_THROWS_AS(data::Loader(s, {.batch_size = 4, .drop_last = true}), value_error);
  const data::image_set empty;
  CHECK_THROWS_AS(data::Loader(empty, {}), value_error);
  static_assert(!std::is_constructible_v<data::Loader, data::image_set&&, data::loader_options>);
}

TEST_CASE("Fashion-MNIST: the real data set (skipped unless dataset-fashion-mnist is installed)") {
  if (!fs::exists(std::string(data::fashion_mnist_dir) + "/train-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: ", data::fashion_mnist_dir, " is absent (sudo apt-get install dataset-fashion-mnist)");
    return;
  }
  const data::image_set train = data::load_fashion_mnist(data::split::train);
  const data::image_set test = data::load_fashion_mnist(data::split::test);
  CHECK(train.size == 60000);
  CHECK(test.size == 10000);
  // First labels and pixels as read with zcat | od and numpy.
  CHECK(std::vector<int>(train.labels.begin(), train.labels.begin() + 10) ==
        std::vector<int>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5});
  CHECK(std::vector<int>(test.labels.begin(), test.labels.begin() + 10) ==
        std::vector<int>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  CHECK(std::accumulate(train.pixels.begin(), train.pixels.begin() + 784, 0) == 76247);
  CHECK(std::vector<int>(train.pixels.begin() + 10 * 28 + 12, train.pixels.begin() + 10 * 28 + 16) ==
        std::vector<int>{0, 193, 228, 218});
  std::array<int, 10> per_class{};
  for (int l : train.labels) ++per_class.at(static_cast<std::size_t>(l));
  for (int c : per_class) CHECK(c == 6000);
  // The documented normalisation constants are the training pixels' mean and standard deviation.
  double sum = 0, sq = 0;
  for (std::uint8_t p : train.pixels) {
    sum += p / 255.0;
    sq += (p / 255.0) * (p / 255.0);
  }
  const double n = static_cast<double>(train.pixels.size()), mean = sum / n;
  CHECK(std::abs(mean - data::fashion_mnist_mean) < 1e-9);
  CHECK(std::abs(std::sqrt(sq / n - mean * mean) - data::fashion_mnist_std) < 1e-9);
  data::Loader loader(train, {.batch_size = 256, .shift = 2, .flip = true});
  data::batch b;
  REQUIRE(loader.next(b));
  CHECK(b.images.shape() == Shape{256, 1, 32, 32});
  CHECK(loader.batches_per_epoch() == 235);
}

TEST_CASE("IDX: extents whose product wraps around, lying size trailers and directories are refused") {
  // 65536 x 2^24 x 2^24 is 2^88: it wrapped to 0 elements, which a file without data matched.
  CHECK_THROWS_WITH_AS(data::parse_idx(idx({65536, 1u << 24, 1u << 24}, {}), 3, "x.idx"),
                       "rev::data::parse_idx: 'x.idx': the IDX extents [65536, 16777216, 16777216] hold more than 2^40 "
                       "elements",
                       io_error);
  temp_dir dir;
  // A gzip whose size trailer claims 4 GiB - 1 (it reserved 1 GiB from it; now at most 1032 times
  // the file's size) fails its length check.
  auto packed = gzip({1, 2, 3});
  for (std::size_t i = packed.size() - 4; i < packed.size(); ++i) packed[i] = 0xff;
  write(dir / "lying.gz", packed);
  CHECK_THROWS_WITH_AS(data::read_gzip(dir / "lying.gz"), doctest::Contains("corrupt gzip"), io_error);
  CHECK_THROWS_WITH_AS(
      data::read_gzip(dir.path.string()),
      ("rev::data::read_gzip: '" + dir.path.string() + "' is a directory, expected a gzip file").c_str(), io_error);
}
