// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60000 training and 10000 test images of 28x28
// grey pixels in 10 classes, read from the gzipped IDX files that Debian's dataset-fashion-mnist
// package installs under /usr/share/datasets/fashion-mnist, and a loader that shuffles, augments
// and batches them into normalised tensors [B, 1, 32, 32].
//
// Each image is placed in a zero (black) frame padded by `padding` pixels on every side
// (28x28 -> 32x32 by default). Without augmentation it sits in the centre. With `shift` = s > 0
// it moves by a uniform random offset in {-s, ..., s} down and right (s <= padding: the frame
// never cuts the image); with `flip` it is mirrored left-right with probability 1/2. shift = 2,
// flip = true is torchvision's
//   Pad(2), RandomCrop(32, padding=2), RandomHorizontalFlip()
// Pixels p in 0..255, the frame included, are then normalised to (p / 255 - mean) / std with the
// mean 0.28604 and standard deviation 0.35302 of the 47 million training pixels (computed from
// train-images-idx3-ubyte.gz as numpy's mean and std of the pixels / 255).
//
// Shuffling and augmentation draw from the loader's own Philox Generator seeded with
// loader_options::seed, so a run is reproducible, and save_state / load_state (checkpoints)
// resume it exactly.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "rev/core/rng.hpp"
#include "rev/core/tensor.hpp"
#include "rev/data/idx.hpp"
#include "rev/train/state.hpp"

namespace rev::data {

/// Mean and standard deviation of Fashion-MNIST's training pixels scaled to [0, 1].
inline constexpr double fashion_mnist_mean = 0.2860405969887955;
inline constexpr double fashion_mnist_std = 0.35302424451492237;
inline constexpr const char* fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";

/// Images of rows x cols unsigned-byte pixels with class labels in [0, classes).
struct image_set {
  index_t size = 0;
  index_t rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // [size, rows, cols]
  std::vector<int> labels;           // [size]
};

/// Reads an image file [N, rows, cols] and a label file [N] (gzipped IDX) and checks that they
/// agree and that every label is in [0, classes).
inline image_set read_idx_images(const std::string& images_path, const std::string& labels_path, int classes = 10) {
  idx_array images = read_idx_gz(images_path, 3);
  const idx_array labels = read_idx_gz(labels_path, 1);
  check<io_error>(images.dims[0] == labels.dims[0], "rev::data::read_idx_images: '", images_path, "' holds ",
                  images.dims[0], " images but '", labels_path, "' holds ", labels.dims[0], " labels");
  image_set s{images.dims[0], images.dims[1], images.dims[2], std::move(images.data), {}};
  s.labels.reserve(labels.data.size());
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    check<io_error>(labels.data[i] < classes, "rev::data::read_idx_images: '", labels_path, "': label ",
                    int{labels.data[i]}, " of sample ", i, " is out of range [0, ", classes, ")");
    s.labels.push_back(labels.data[i]);
  }
  return s;
}

enum class split { train, test };

/// Reads the training (60000) or test (10000) split of Fashion-MNIST from `dir`.
inline image_set load_fashion_mnist(split which, const std::string& dir = fashion_mnist_dir) {
  const std::string stem = dir + (which == split::train ? "/train" : "/t10k");
  const std::string images = stem + "-images-idx3-ubyte.gz", labels = stem + "-labels-idx1-ubyte.gz";
  for (const auto& path : {images, labels})
    check<io_error>(std::filesystem::exists(path), "rev::data::load_fashion_mnist: '", path,
                    "' does not exist; install Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist`",
                    dir == fashion_mnist_dir ? "" : " or pass the directory that holds its IDX files");
  image_set s = read_idx_images(images, labels, 10);
  check<io_error>(s.rows == 28 && s.cols == 28, "rev::data::load_fashion_mnist: '", images, "' holds images of ",
                  s.rows, "x", s.cols, " pixels, expected 28x28");
  return s;
}

struct loader_options {
  index_t batch_size = 128;
  bool shuffle = true;
  index_t shift = 0;  // random shift of up to `shift` pixels each way (at most `padding`)
  bool flip = false;  // random horizontal flip
  bool drop_last = false;
  index_t padding = 2;  // 28x28 -> 32x32
  std::uint64_t seed = 0;
  double mean = fashion_mnist_mean, std = fashion_mnist_std;
};

/// A batch: images [B, 1, rows + 2 padding, cols + 2 padding] and their labels.
struct batch {
  Tensor<float> images;
  std::vector<int> labels;
};

/// Iterates over an image_set (which must outlive it) in batches, epoch after epoch:
///   for (int epoch = 0; epoch < E; ++epoch) while (loader.next(b)) { ... }
class Loader {
 public:
  Loader(const image_set& data, loader_options o) : data_(&data), options_(o), gen_(o.seed) {
    constexpr const char* who = "rev::data::Loader";
    check<value_error>(o.batch_size > 0, who, ": batch_size ", o.batch_size, " must be positive");
    check<value_error>(o.padding >= 0, who, ": padding ", o.padding, " must be non-negative");
    check<value_error>(o.shift >= 0 && o.shift <= o.padding, who, ": shift ", o.shift,
                       " must be in [0, padding = ", o.padding, "]");
    check<value_error>(o.std > 0, who, ": std ", o.std, " must be positive");
    check<value_error>(data.size > 0 &&
                           data.pixels.size() == static_cast<std::size_t>(data.size * data.rows * data.cols) &&
                           data.labels.size() == static_cast<std::size_t>(data.size),
                       who, ": the image_set holds ", data.pixels.size(), " pixels and ", data.labels.size(),
                       " labels, expected ", data.size, " images of ", data.rows, "x", data.cols, " (and size > 0)");
    check<value_error>(!o.drop_last || data.size >= o.batch_size, who, ": drop_last with batch_size ", o.batch_size,
                       " leaves no batch of the ", data.size, " images");
    for (int p = 0; p < 256; ++p) table_[p] = static_cast<float>((p / 255.0 - o.mean) / o.std);
  }
  /// The loader keeps a pointer to the images: a temporary would dangle.
  Loader(image_set&&, loader_options) = delete;

  /// Fills `b` with the next batch of the current epoch. At the end of an epoch returns false
  /// (leaving b alone); the next call starts a new epoch with a new order.
  bool next(batch& b) {
    if (!started_) start_epoch();
    const index_t n = data_->size, end = options_.drop_last ? n - n % options_.batch_size : n;
    if (cursor_ >= end) {
      started_ = false;
      ++epoch_;
      return false;
    }
    const index_t B = std::min(options_.batch_size, end - cursor_);
    const index_t R = data_->rows, C = data_->cols, pad = options_.padding, H = R + 2 * pad, W = C + 2 * pad;
    b.images = Tensor<float>::full({B, 1, H, W}, table_[0]);
    b.labels.resize(static_cast<std::size_t>(B));
    const index_t s = options_.shift;
    const bool augment = s > 0 || options_.flip;
    const rng_state aug = augment ? gen_.draw(static_cast<std::uint64_t>(3 * B)) : rng_state{};
    for (index_t k = 0; k < B; ++k) {
      const index_t i = order_[static_cast<std::size_t>(cursor_ + k)];
      index_t top = pad, left = pad;
      bool flip = false;
      if (augment) {
        const auto u = static_cast<std::uint64_t>(3 * k);
        top = pad - s + static_cast<index_t>(philox::bits(aug, u) % static_cast<std::uint32_t>(2 * s + 1));
        left = pad - s + static_cast<index_t>(philox::bits(aug, u + 1) % static_cast<std::uint32_t>(2 * s + 1));
        flip = options_.flip && philox::bits(aug, u + 2) >> 31;
      }
      const std::uint8_t* src = data_->pixels.data() + i * R * C;
      float* dst = b.images.data() + k * H * W;
      for (index_t r = 0; r < R; ++r)
        for (index_t c = 0; c < C; ++c) dst[(top + r) * W + left + c] = table_[src[r * C + (flip ? C - 1 - c : c)]];
      b.labels[static_cast<std::size_t>(k)] = data_->labels[static_cast<std::size_t>(i)];
    }
    cursor_ += B;
    return true;
  }

  index_t batches_per_epoch() const {
    const index_t n = data_->size, bs = options_.batch_size;
    return options_.drop_last ? n / bs : (n + bs - 1) / bs;
  }
  /// The number of epochs finished so far.
  std::int64_t epoch() const { return epoch_; }
  const loader_options& options() const { return options_; }

  /// Stores "<prefix>rng" (the generator), "<prefix>epoch_rng" (the draw that ordered this
  /// epoch) and "<prefix>position" (epoch, cursor, started, data size).
  void save_state(io::file& f, const std::string& prefix) const {
    train::put_rng(f, prefix + "rng", gen_.state());
    train::put_rng(f, prefix + "epoch_rng", epoch_rng_);
    train::put_u64(f, prefix + "position",
                   {static_cast<std::uint64_t>(epoch_), static_cast<std::uint64_t>(cursor_), started_ ? 1u : 0u,
                    static_cast<std::uint64_t>(data_->size)});
  }
  /// Restores what save_state stored; io_error if it was saved by a loader over another data size.
  void load_state(const io::file& f, const std::string& prefix) {
    constexpr const char* who = "rev::data::Loader::load_state";
    const rng_state rng = train::get_rng(f, prefix + "rng", who),
                    epoch_rng = train::get_rng(f, prefix + "epoch_rng", who);
    const auto pos = train::get_u64(f, prefix + "position", 4, who);
    check<io_error>(pos[3] == static_cast<std::uint64_t>(data_->size), who, ": the checkpoint's loader iterated over ",
                    pos[3], " images, this one over ", data_->size);
    check<io_error>(pos[1] <= pos[3] && pos[2] <= 1, who, ": corrupt position (cursor ", pos[1], ", started ", pos[2],
                    ")");
    train::check_no_extra_keys(f, prefix, {prefix + "rng", prefix + "epoch_rng", prefix + "position"}, who);
    gen_.set_state(rng);
    epoch_rng_ = epoch_rng;
    epoch_ = static_cast<std::int64_t>(pos[0]);
    cursor_ = static_cast<index_t>(pos[1]);
    started_ = pos[2] != 0;
    if (started_) make_order();
  }

 private:
  void start_epoch() {
    epoch_rng_ = options_.shuffle ? gen_.draw(static_cast<std::uint64_t>(2 * data_->size)) : rng_state{};
    make_order();
    cursor_ = 0;
    started_ = true;
  }
  // Fisher-Yates with 64 random bits per swap (modulo bias below 2^-40 for n < 2^24).
  void make_order() {
    const index_t n = data_->size;
    order_.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) order_[static_cast<std::size_t>(i)] = i;
    if (!options_.shuffle) return;
    for (index_t i = n - 1; i > 0; --i) {
      const auto u = static_cast<std::uint64_t>(2 * i);
      const std::uint64_t r = std::uint64_t{philox::bits(epoch_rng_, u)} << 32 | philox::bits(epoch_rng_, u + 1);
      std::swap(order_[static_cast<std::size_t>(i)], order_[r % static_cast<std::uint64_t>(i + 1)]);
    }
  }

  const image_set* data_;
  loader_options options_;
  Generator gen_;
  rng_state epoch_rng_;
  std::vector<index_t> order_;
  index_t cursor_ = 0;
  std::int64_t epoch_ = 0;
  bool started_ = false;
  std::array<float, 256> table_{};
};

}  // namespace rev::data
