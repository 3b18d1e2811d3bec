// rev's flagship example: a small RevBiFPN (the RevBiFPN family with a compile-time
// configuration sized for Fashion-MNIST's 28x28 images, padded to 32x32 and up-sampled to
// 64x64) trained in Reversible
// mode (`--stored`: in Stored mode) with AdamW, a cosine schedule with warm-up, label smoothing,
// a weight EMA, gradient clipping and the NaN guard. Shows a progress bar (plain lines when
// stdout is not a terminal), writes a CSV log, an SVG plot of the training curves and a final
// checkpoint, and reports test accuracy and the peak activation memory of a training step.
//
//   train_fashion_mnist                 a short run (1 epoch, a few minutes on 2 cores)
//   train_fashion_mnist --full          the full run (>= 92 % test accuracy)
//   train_fashion_mnist --compare       Stored vs Reversible from the same seed for 10 steps,
//                                       against Stored on another thread count (the float drift
//                                       of training itself): exits 1 if they disagree
//
// Run with --help for every flag. The data are Debian's dataset-fashion-mnist
// (/usr/share/datasets/fashion-mnist, or --data DIR).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rev/core/memory.hpp"
#include "rev/cpu.hpp"
#include "rev/data/fashion_mnist.hpp"
#include "rev/models/revbifpn.hpp"
#include "rev/train.hpp"

using namespace rev;

// The network: four pyramid levels of 16..64 backbone channels, a 256-wide classifier, 10
// classes, 1 image channel. The padded 32x32 images are up-sampled 2x (nearest) before the stem:
// its 4x4 space-to-depth then leaves level 0 at 16x16 (one position per 2x2 pixels) instead of
// 8x8, which on 2 cores is worth its cost (1 epoch: 88.8 % instead of 86.9 % test accuracy).
struct FashionNet {
  static constexpr const char* name = "fashion";
  static constexpr std::array<int, 4> c{16, 32, 48, 64}, h{16, 32, 64, 128};
  static constexpr int fc = 256, depth = 2, classes = 10, image_channels = 1;
  static constexpr double head_dropout = 0.1, drop_path = 0;
};
using Net = models::RevBiFPN<FashionNet>;
constexpr int upsample = 2;

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

struct options {
  bool stored = false, compare = false, full = false, flip = true;
  int epochs = 1;
  index_t shift = 1;
  long long steps = 0;  // 0: epochs * batches per epoch; compare mode: 10
  long long batch = 128;
  double lr = 2e-3, weight_decay = 0.05, label_smoothing = 0.1, clip = 1.0, ema_decay = 0.999;
  std::uint64_t seed = 0;
  std::string out = "fashion_mnist_out", resume, data = data::fashion_mnist_dir;
};

constexpr int full_epochs = 11;

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: train_fashion_mnist [flags]\n"
               "  trains a small RevBiFPN on Fashion-MNIST in Reversible mode (default: 1 epoch)\n"
               "  --full            the full run: %d epochs (>= 92 %% test accuracy)\n"
               "  --stored          train in Stored mode (keep activations) instead of Reversible\n"
               "  --epochs N        number of epochs (default 1)\n"
               "  --steps N         stop after N steps (default: all steps of the epochs)\n"
               "  --batch B         batch size (default 128)\n"
               "  --lr X            peak learning rate of AdamW (default 2e-3)\n"
               "  --seed S          seed of the weights, dropout and data order (default 0)\n"
               "  --shift N         random shift of up to N pixels each way, 0..2 (default 1)\n"
               "  --no-flip         no random horizontal flip\n"
               "  --out DIR         where to write train_log.csv, epochs.csv, curves.svg and\n"
               "                    final.safetensors (default fashion_mnist_out)\n"
               "  --resume FILE     continue from a checkpoint (use the flags of the run that wrote it)\n"
               "  --data DIR        directory of the gzipped IDX files (default %s)\n"
               "  --compare         train Stored and Reversible from the same seed for --steps steps\n"
               "                    (default 10) and Stored again on another thread count; print the\n"
               "                    losses, exit 1 if Reversible's difference from Stored exceeds\n"
               "                    max(1e-4, 10 x the thread-count difference so far)\n"
               "                    (exit 77 when the data are not installed)\n"
               "  --help            this message\n",
               full_epochs, data::fashion_mnist_dir);
}

// Parses the command line; std::nullopt after printing the usage (exit code in `code`).
std::optional<options> parse(int argc, char** argv, int& code) {
  options o;
  bool epochs_given = false;
  auto fail = [&](const std::string& message) {
    std::fprintf(stderr, "train_fashion_mnist: %s\n", message.c_str());
    usage(stderr);
    code = 2;
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    auto number = [&](auto& target) -> bool {
      const auto v = value();
      if (!v) return false;
      std::istringstream in(*v);
      in >> target;
      return !in.fail() && in.eof();
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      code = 0;
      return std::nullopt;
    } else if (a == "--stored") o.stored = true;
    else if (a == "--compare") o.compare = true;
    else if (a == "--full") o.full = true;
    else if (a == "--no-flip") o.flip = false;
    else if (a == "--epochs") {
      if (!number(o.epochs) || o.epochs < 1) return fail("--epochs needs a positive integer");
      epochs_given = true;
    } else if (a == "--shift") {
      if (!number(o.shift) || o.shift < 0 || o.shift > 2) return fail("--shift needs an integer in 0..2");
    } else if (a == "--steps") {
      if (!number(o.steps) || o.steps < 1) return fail("--steps needs a positive integer");
    } else if (a == "--batch") {
      if (!number(o.batch) || o.batch < 2) return fail("--batch needs an integer >= 2 (BatchNorm needs 2 samples)");
    } else if (a == "--lr") {
      if (!number(o.lr) || !(o.lr > 0)) return fail("--lr needs a positive number");
    } else if (a == "--seed") {
      if (!number(o.seed)) return fail("--seed needs a non-negative integer");
    } else if (a == "--out" || a == "--resume" || a == "--data") {
      const auto v = value();
      if (!v) return fail(a + " needs a value");
      (a == "--out" ? o.out : a == "--resume" ? o.resume : o.data) = *v;
    } else return fail("unknown flag '" + a + "'");
  }
  if (o.full && !epochs_given) o.epochs = full_epochs;
  if (o.compare && o.steps == 0) o.steps = 10;
  return o;
}

// ---- the training step shared by the run and the comparison ------------------------------------

struct step_result {
  double loss;
  int correct;
  std::size_t peak_bytes;  // activation memory of forward + backward above what was held before
};

struct trainer {
  trainer(const options& o, mode m, std::int64_t total_steps)
      : o_(o),
        m_(m),
        net(),
        opt(net, {.lr = o.lr, .weight_decay = o.weight_decay},
            {{.name = "no_decay", .match = train::rank_at_most(1), .weight_decay = 0.0}}),  // biases, norms
        ema(net, {.decay = o.ema_decay, .warmup = true}),
        schedule{.base_lr = o.lr,
                 .warmup_steps = std::min<std::int64_t>(500, total_steps / 10),
                 .total_steps = total_steps,
                 .min_lr = o.lr * 1e-3} {}

  step_result step(const data::batch& b, std::int64_t t) {
    schedule.apply(opt, t);
    opt.zero_grad();
    step_result r{};
    {
      train::step_guard guard(net);  // a refused step restores the batch-norm running statistics
      peak_scope<cpu> scope;
      context ctx{phase::train};
      Net::cache tape{m_};
      const Tensor<float> logits = net.forward(ops::upsample_nearest(b.images, upsample), ctx, tape);
      r.loss = ops::cross_entropy(logits, b.labels, o_.label_smoothing);
      guard.check_loss(r.loss, t);
      r.correct = count_correct(logits, b.labels);
      net.backward(tape, ops::cross_entropy_backward(logits, b.labels, o_.label_smoothing));
      r.peak_bytes = scope.peak_above_start();
    }
    train::clip_grad_norm_(net, o_.clip);
    opt.step();
    ema.update();
    return r;
  }

  static int count_correct(const Tensor<float>& logits, const std::vector<int>& labels) {
    const index_t K = logits.size(1);
    int correct = 0;
    for (std::size_t n = 0; n < labels.size(); ++n) {
      const float* z = logits.data() + static_cast<index_t>(n) * K;
      correct += static_cast<int>(std::max_element(z, z + K) - z) == labels[n];
    }
    return correct;
  }

  // Test accuracy in % of the current weights (eval phase: BatchNorm's running statistics).
  double evaluate(const data::image_set& test) {
    data::Loader loader(test, {.batch_size = 500, .shuffle = false});
    data::batch b;
    long long correct = 0;
    while (loader.next(b)) {
      context ctx{phase::eval};
      correct += count_correct(net.forward(ops::upsample_nearest(b.images, upsample), ctx), b.labels);
    }
    return 100.0 * static_cast<double>(correct) / static_cast<double>(test.size);
  }

  const options& o_;
  mode m_;
  Net net;
  train::AdamW<float> opt;
  train::ModelEMA<float> ema;
  train::cosine_schedule schedule;
};

// ---- SVG -----------------------------------------------------------------------------------

struct series {
  std::string name, colour;
  std::vector<std::pair<double, double>> points;
};

// A "nice" tick step (1, 2 or 5 times a power of ten) for about `n` ticks over `span`.
double tick_step(double span, int n) {
  const double raw = span / n, p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

// Text for SVG: &, < and > escaped.
std::string xml(const std::string& text) {
  std::string r;
  for (char ch : text) r += ch == '&' ? "&amp;" : ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : std::string(1, ch);
  return r;
}

std::string fmt(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%g", std::abs(v) < 1e-12 ? 0.0 : v);
  return s;
}

// One chart panel at (x, y) of size w x h, drawn into `out`.
void panel(std::ostream& out, double x, double y, double w, double h, const std::string& title,
           const std::string& xlabel, const std::vector<series>& data) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : data)
    for (const auto& [px, py] : s.points) {
      x0 = std::min(x0, px), x1 = std::max(x1, px), y0 = std::min(y0, py), y1 = std::max(y1, py);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const double ys = tick_step(y1 - y0, 5), xs = tick_step(x1 - x0, 6);
  y0 = std::floor(y0 / ys) * ys, y1 = std::ceil(y1 / ys) * ys;
  const double l = x + 55, r = x + w - 10, t = y + 30, b = y + h - 45;
  auto X = [&](double v) { return l + (v - x0) / (x1 - x0) * (r - l); };
  auto Y = [&](double v) { return b - (v - y0) / (y1 - y0) * (b - t); };
  out << "<text x='" << (l + r) / 2 << "' y='" << y + 18 << "' text-anchor='middle' font-size='14'>" << xml(title)
      << "</text>\n";
  for (double v = y0; v <= y1 + ys / 2; v += ys)
    out << "<line x1='" << l << "' y1='" << Y(v) << "' x2='" << r << "' y2='" << Y(v) << "' stroke='#ddd'/>"
        << "<text x='" << l - 6 << "' y='" << Y(v) + 4 << "' text-anchor='end'>" << fmt(v) << "</text>\n";
  for (double v = std::ceil(x0 / xs) * xs; v <= x1 + xs / 1e6; v += xs)
    out << "<line x1='" << X(v) << "' y1='" << b << "' x2='" << X(v) << "' y2='" << b + 4 << "' stroke='black'/>"
        << "<text x='" << X(v) << "' y='" << b + 17 << "' text-anchor='middle'>" << fmt(v) << "</text>\n";
  out << "<polyline fill='none' stroke='black' points='" << l << "," << t << " " << l << "," << b << " " << r << ","
      << b << "'/>\n<text x='" << (l + r) / 2 << "' y='" << b + 35 << "' text-anchor='middle'>" << xml(xlabel)
      << "</text>\n";
  // The legend goes in the top right corner, or the bottom right one when the curves end high.
  double last = 0;
  for (const auto& s : data)
    if (!s.points.empty()) last += (s.points.back().second - y0) / (y1 - y0) / static_cast<double>(data.size());
  const double legend_y = last > 0.5 ? b - 10 - 16 * static_cast<double>(data.size() - 1) : t + 14;
  int k = 0;
  for (const auto& s : data) {
    out << "<polyline fill='none' stroke='" << s.colour << "' stroke-width='1.5' points='";
    for (const auto& [px, py] : s.points) out << X(px) << "," << Y(py) << " ";
    out << "'/>\n";
    if (s.points.size() <= 40)
      for (const auto& [px, py] : s.points)
        out << "<circle cx='" << X(px) << "' cy='" << Y(py) << "' r='2.5' fill='" << s.colour << "'/>";
    out << "\n<text x='" << r - 8 << "' y='" << legend_y + 16 * k++ << "' text-anchor='end' fill='" << s.colour << "'>"
        << xml(s.name) << "</text>\n";
  }
}

void write_svg(const std::string& path, const std::string& title,
               const std::vector<std::pair<std::string, std::vector<series>>>& panels, const std::string& xlabel) {
  const double w = 480, h = 360;
  std::ofstream out(path);
  out << "<svg xmlns='http://www.w3.org/2000/svg' width='" << w * static_cast<double>(panels.size()) << "' height='"
      << h + 30 << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n"
      << "<text x='" << w * static_cast<double>(panels.size()) / 2
      << "' y='20' text-anchor='middle' font-size='15' font-weight='bold'>" << xml(title) << "</text>\n";
  for (std::size_t i = 0; i < panels.size(); ++i)
    panel(out, w * static_cast<double>(i), 30, w, h, panels[i].first, xlabel, panels[i].second);
  out << "</svg>\n";
  if (!out) throw io_error("train_fashion_mnist: could not write '" + path + "'");
}

// Means of consecutive windows of `window` values, at x = (index of the window's end) * scale.
std::vector<std::pair<double, double>> smooth(const std::vector<double>& v, std::size_t window, double scale) {
  std::vector<std::pair<double, double>> p;
  for (std::size_t i = 0; i < v.size(); i += window) {
    const std::size_t e = std::min(v.size(), i + window);
    double s = 0;
    for (std::size_t j = i; j < e; ++j) s += v[j];
    p.emplace_back(static_cast<double>(e) * scale, s / static_cast<double>(e - i));
  }
  return p;
}

// ---- progress ------------------------------------------------------------------------------

struct progress {
  bool tty = isatty(fileno(stdout)) != 0;
  void show(int epoch, int epochs, std::int64_t step, std::int64_t steps, double loss, double acc, double ips,
            double peak_mb) {
    if (!tty) return;
    constexpr int width = 24;
    const int filled =
        static_cast<int>(width * static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, steps)));
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::printf("\r\033[Kepoch %d/%d [%s] step %lld/%lld  loss %.4f  acc %.2f%%  %.0f img/s  peak %.1f MB", epoch,
                epochs, bar.c_str(), static_cast<long long>(step), static_cast<long long>(steps), loss, acc, ips,
                peak_mb);
    std::fflush(stdout);
  }
  // A line that stays: on a terminal it replaces the bar.
  template <class... A>
  void line(const char* f, A... a) {
    if (tty) std::printf("\r\033[K");
    std::printf(f, a...);
    std::fflush(stdout);
  }
};

constexpr double MB = 1024.0 * 1024.0;

// ---- the training run ----------------------------------------------------------------------

int run(const options& o) {
  const data::image_set train_set = data::load_fashion_mnist(data::split::train, o.data);
  const data::image_set test_set = data::load_fashion_mnist(data::split::test, o.data);
  std::filesystem::create_directories(o.out);

  data::Loader loader(train_set,
                      {.batch_size = o.batch, .shift = o.shift, .flip = o.flip, .drop_last = true, .seed = o.seed});
  const std::int64_t per_epoch = loader.batches_per_epoch();
  const std::int64_t planned = per_epoch * o.epochs,
                     total = o.steps > 0 ? std::min<std::int64_t>(o.steps, planned) : planned;
  const mode m = o.stored ? mode::stored : mode::reversible;

  manual_seed(o.seed);  // initial weights and dropout masks
  trainer tr(o, m, planned);
  std::int64_t step = 0;
  if (!o.resume.empty()) {
    step = train::load_checkpoint(o.resume, train::part("model", tr.net), train::part("optim", tr.opt),
                                  train::part("ema", tr.ema), train::part("data", loader));
    std::printf("resumed from %s at step %lld\n", o.resume.c_str(), static_cast<long long>(step));
    std::fflush(stdout);
  }
  long long params = 0;
  tr.net.for_each_parameter([&](const std::string&, Param<float>& p) { params += p.value.numel(); });
  std::printf(
      "RevBiFPN<%s> (%lld parameters), %s mode, batch %lld, %d epoch(s) of %lld steps, lr %g, seed %llu, %d thread(s)\n",
      FashionNet::name, params, o.stored ? "Stored" : "Reversible", o.batch, o.epochs,
      static_cast<long long>(per_epoch), o.lr, static_cast<unsigned long long>(o.seed), num_threads());

  const bool append = !o.resume.empty();
  const std::string steps_csv = o.out + "/train_log.csv", epochs_csv = o.out + "/epochs.csv";
  std::ofstream log(steps_csv, append ? std::ios::app : std::ios::trunc),
      elog(epochs_csv, append ? std::ios::app : std::ios::trunc);
  if (!log || !elog) throw io_error("train_fashion_mnist: cannot write into '" + o.out + "'");
  if (!append) {
    log << "step,epoch,lr,loss,batch_accuracy,images_per_s,peak_mb\n";
    elog
        << "epoch,step,train_loss,train_accuracy,test_accuracy,test_accuracy_ema,epoch_s,wall_s,images_per_s,peak_mb\n";
  }

  progress bar;
  const auto start = clock_type::now();
  std::vector<double> losses;
  std::vector<series> acc_series{
      {"train", "#1f77b4", {}}, {"test", "#d62728", {}}, {"test (EMA weights)", "#2ca02c", {}}};
  double epoch_loss = 0, train_time = 0, last_test = 0, last_test_ema = 0;
  long long epoch_correct = 0, epoch_seen = 0, epoch_steps = 0;
  std::size_t peak = 0;
  data::batch b;
  auto epoch_start = clock_type::now();
  for (; step < total; ++step) {
    if (!loader.next(b)) loader.next(b);
    const auto t0 = clock_type::now();
    const step_result r = tr.step(b, step);
    train_time += seconds_since(t0);
    peak = std::max(peak, r.peak_bytes);
    losses.push_back(r.loss);
    epoch_loss += r.loss, epoch_correct += r.correct, epoch_seen += static_cast<long long>(b.labels.size()),
        ++epoch_steps;
    const int epoch = static_cast<int>(step / per_epoch) + 1;
    const double ips = static_cast<double>(epoch_seen) / train_time,
                 acc = 100.0 * static_cast<double>(epoch_correct) / static_cast<double>(epoch_seen);
    log << step + 1 << ',' << epoch << ',' << tr.opt.options().lr << ',' << r.loss << ','
        << static_cast<double>(r.correct) / static_cast<double>(b.labels.size()) << ',' << ips << ',' << peak / MB
        << '\n';
    bar.show(epoch, o.epochs, step + 1 - (epoch - 1) * per_epoch, per_epoch,
             epoch_loss / static_cast<double>(epoch_steps), acc, ips, peak / MB);
    if (!bar.tty && ((step + 1) % 100 == 0 || step + 1 == total))
      std::printf("epoch %d/%d step %lld/%lld loss %.4f acc %.2f%% %.0f img/s peak %.1f MB\n", epoch, o.epochs,
                  static_cast<long long>(step + 1 - (epoch - 1) * per_epoch), static_cast<long long>(per_epoch),
                  epoch_loss / static_cast<double>(epoch_steps), acc, ips, peak / MB),
          std::fflush(stdout);
    if ((step + 1) % per_epoch == 0 || step + 1 == total) {  // the end of an epoch (or of the run): evaluate
      last_test = tr.evaluate(test_set);
      tr.ema.swap();
      last_test_ema = tr.evaluate(test_set);
      tr.ema.swap();
      const double x = static_cast<double>(step + 1) / static_cast<double>(per_epoch);
      acc_series[0].points.emplace_back(x, acc);
      acc_series[1].points.emplace_back(x, last_test);
      acc_series[2].points.emplace_back(x, last_test_ema);
      bar.line(
          "epoch %d/%d: train loss %.4f, train acc %.2f%%, test acc %.2f%% (EMA weights %.2f%%), %.0f s, %.0f img/s, "
          "peak %.1f MB, %.1f min so far\n",
          epoch, o.epochs, epoch_loss / static_cast<double>(epoch_steps), acc, last_test, last_test_ema,
          seconds_since(epoch_start), ips, peak / MB, seconds_since(start) / 60);
      elog << epoch << ',' << step + 1 << ',' << epoch_loss / static_cast<double>(epoch_steps) << ',' << acc << ','
           << last_test << ',' << last_test_ema << ',' << seconds_since(epoch_start) << ',' << seconds_since(start)
           << ',' << ips << ',' << peak / MB << '\n';
      elog.flush();
      log.flush();
      epoch_loss = 0, epoch_correct = 0, epoch_seen = 0, epoch_steps = 0, train_time = 0;
      epoch_start = clock_type::now();
    }
  }
  const std::string ck = o.out + "/final.safetensors", svg = o.out + "/curves.svg";
  train::save_checkpoint(ck, step, train::part("model", tr.net), train::part("optim", tr.opt),
                         train::part("ema", tr.ema), train::part("data", loader));
  const std::size_t window = std::max<std::size_t>(1, static_cast<std::size_t>(per_epoch / 10));
  write_svg(svg, std::string("RevBiFPN<fashion> on Fashion-MNIST, ") + (o.stored ? "Stored" : "Reversible") + " mode",
            {{"training loss (mean of each tenth of an epoch)",
              {{"train loss", "#1f77b4", smooth(losses, window, 1.0 / static_cast<double>(per_epoch))}}},
             {"accuracy (%)", acc_series}},
            "epoch");
  std::printf(
      "test accuracy %.2f%% (EMA weights %.2f%%) after %lld steps in %.1f min; peak activation memory of a "
      "training step %.1f MB (%s mode)\n",
      last_test, last_test_ema, static_cast<long long>(step), seconds_since(start) / 60, peak / MB,
      o.stored ? "Stored" : "Reversible");
  std::printf("wrote %s, %s, %s, %s\n", steps_csv.c_str(), epochs_csv.c_str(), svg.c_str(), ck.c_str());
  return 0;
}

// ---- Stored vs Reversible from the same seed (the paper's Figure 8, in miniature) ----------

int compare(const options& o) {
  if (!std::filesystem::exists(o.data + "/train-images-idx3-ubyte.gz")) {
    std::printf("skipped: Fashion-MNIST is not installed in %s (sudo apt-get install dataset-fashion-mnist)\n",
                o.data.c_str());
    return 77;
  }
  const data::image_set train_set = data::load_fashion_mnist(data::split::train, o.data);
  // Runs 0 and 1: Stored and Reversible. Run 2: Stored again with another number of threads,
  // which changes only the order of floating-point summations: how far it drifts from run 0 is
  // the float tolerance of this training, against which run 1 is measured.
  std::vector<double> losses[3];
  std::size_t peaks[3] = {0, 0, 0};
  double seconds[3] = {0, 0, 0};
  const int threads = num_threads();
  for (int k : {0, 1, 2}) {
    const mode m = k == 1 ? mode::reversible : mode::stored;
    set_num_threads(k == 2 ? (threads == 1 ? 2 : 1) : threads);
    manual_seed(o.seed);  // the same initial weights and dropout masks
    data::Loader loader(train_set,
                        {.batch_size = o.batch, .shift = o.shift, .flip = o.flip, .drop_last = true, .seed = o.seed});
    trainer tr(o, m, loader.batches_per_epoch() * o.epochs);
    data::batch b;
    const auto t0 = clock_type::now();
    for (std::int64_t step = 0; step < o.steps; ++step) {
      if (!loader.next(b)) loader.next(b);
      const step_result r = tr.step(b, step);
      losses[k].push_back(r.loss);
      peaks[k] = std::max(peaks[k], r.peak_bytes);
    }
    seconds[k] = seconds_since(t0);
  }
  set_num_threads(threads);
  std::filesystem::create_directories(o.out);
  std::ofstream csv(o.out + "/compare.csv");
  csv << "step,loss_stored,loss_reversible,loss_stored_other_threads,difference_reversible,difference_threads\n";
  csv.precision(9);
  // Reversible agrees with Stored at step i when |difference| <= max(1e-4, 10 x the largest
  // thread-count difference up to step i): 1e-4 is far below what a wrong gradient gives in the
  // first steps, and later the float drift of the training itself sets the scale.
  double worst = 0, worst_floor = 0, worst_ratio = 0;
  bool agree = true;
  std::printf("step  loss (Stored)  loss (Reversible)  |Rev - Stored|  |Stored %d vs %d threads|\n", threads,
              threads == 1 ? 2 : 1);
  for (std::size_t i = 0; i < losses[0].size(); ++i) {
    const double d = std::abs(losses[0][i] - losses[1][i]), floor = std::abs(losses[0][i] - losses[2][i]);
    worst = std::max(worst, d);
    worst_floor = std::max(worst_floor, floor);
    const double tolerance = std::max(1e-4, 10 * worst_floor);
    worst_ratio = std::max(worst_ratio, d / tolerance);
    agree = agree && d <= tolerance;
    csv << i + 1 << ',' << losses[0][i] << ',' << losses[1][i] << ',' << losses[2][i] << ',' << d << ',' << floor
        << '\n';
    if (losses[0].size() <= 20 || i < 5 || (i + 1) % 10 == 0)
      std::printf("%4zu  %13.7f  %17.7f  %14.2e  %.2e\n", i + 1, losses[0][i], losses[1][i], d, floor);
  }
  auto points = [](const std::vector<double>& v) {
    std::vector<std::pair<double, double>> p;
    for (std::size_t i = 0; i < v.size(); ++i) p.emplace_back(static_cast<double>(i + 1), v[i]);
    return p;
  };
  write_svg(o.out + "/compare.svg", "Stored vs Reversible training from the same seed",
            {{"training loss",
              {{"Stored", "#1f77b4", points(losses[0])},
               {"Reversible", "#d62728", points(losses[1])},
               {"Stored, other thread count", "#2ca02c", points(losses[2])}}}},
            "step");
  std::printf("peak activation memory of a training step: Stored %.1f MB, Reversible %.1f MB (%.2fx)\n", peaks[0] / MB,
              peaks[1] / MB, static_cast<double>(peaks[1]) / static_cast<double>(std::max<std::size_t>(1, peaks[0])));
  std::printf("time per step: Stored %.3f s, Reversible %.3f s\n", seconds[0] / static_cast<double>(o.steps),
              seconds[1] / static_cast<double>(o.steps));
  std::printf(
      "largest loss difference over %lld steps: Reversible vs Stored %.3e, Stored on %d vs %d threads "
      "%.3e; at worst %.2f of the tolerance -> %s\n",
      o.steps, worst, threads, threads == 1 ? 2 : 1, worst_floor, worst_ratio, agree ? "agree" : "DISAGREE");
  std::printf("wrote %s/compare.csv and %s/compare.svg\n", o.out.c_str(), o.out.c_str());
  return agree ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int code = 0;
  const auto o = parse(argc, argv, code);
  if (!o) return code;
  try {
    return o->compare ? compare(*o) : run(*o);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\ntrain_fashion_mnist: error: %s\n", e.what());
    return 1;
  }
}
