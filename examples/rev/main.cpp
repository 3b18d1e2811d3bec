// rev — the command-line tool of the rev library.
//
//   rev list
//   rev summary MODEL [--res N] [--json]
//   rev run MODEL --weights W.safetensors --io IO.safetensors --out OUT.safetensors
//           [--mode eval|train] [--stored|--reversible]
//   rev bench MODEL [--batch B] [--res R] [--stored|--reversible] [--steps N] [--detect-anomaly] [--json]
//   rev compare OUT.safetensors REFERENCE.safetensors [--tol T]
//
// MODEL: revnet-38, revnet-110, revnet-164, revbifpn-s0 ... revbifpn-s6.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "rev/core/parallel.hpp"

using namespace rev;
using namespace rev::cli;

namespace {

constexpr const char* usage = R"(usage:
  rev list
  rev summary MODEL [--res N] [--json]
  rev run MODEL --weights W.safetensors --io IO.safetensors --out OUT.safetensors [--mode eval|train] [--stored|--reversible]
  rev bench MODEL [--batch B] [--res R] [--stored|--reversible] [--steps N] [--detect-anomaly] [--json]
  rev compare OUT.safetensors REFERENCE.safetensors [--tol T]
)";

struct usage_error : error {
  using error::error;
};

std::string known_models() {
  std::vector<std::string> names;
  for (const auto& m : registry()) names.push_back(m.name);
  std::sort(names.begin(), names.end());
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

const model_entry& find_model(const std::string& name) {
  for (const auto& m : registry())
    if (m.name == name) return m;
  throw usage_error("rev: unknown model '" + name + "'; known models: " + known_models());
}

// Options after the positional arguments: "--key value" pairs and "--flag"s.
struct args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
  bool has(const std::string& k) const { return options.count(k) > 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = options.find(k);
    return it == options.end() ? fallback : it->second;
  }
  // --k as an integer in [1, max]: digits only, no sign, no trailing characters, no wrap-around.
  long number(const std::string& k, long fallback, long max) const {
    if (!has(k)) return fallback;
    const std::string v = get(k);
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || !std::isdigit(static_cast<unsigned char>(v[0])) || *end != '\0' || errno == ERANGE || n < 1 ||
        n > max)
      throw usage_error("rev: --" + k + " expects an integer from 1 to " + std::to_string(max) + ", got '" + v + "'");
    return n;
  }
  // --k as a finite number in (0, max].
  double real(const std::string& k, double fallback, double max) const {
    if (!has(k)) return fallback;
    const std::string v = get(k);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(x > 0 && x <= max)) {
      std::ostringstream s;
      s << "rev: --" << k << " expects a number above 0 and at most " << max << ", got '" << v << "'";
      throw usage_error(s.str());
    }
    return x;
  }
};

args parse(int argc, char** argv, std::initializer_list<const char*> flags, std::initializer_list<const char*> valued) {
  args a;
  for (int i = 2; i < argc; ++i) {
    const std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    const std::string k = s.substr(2);
    if (std::find(flags.begin(), flags.end(), k) != flags.end()) {
      a.options[k] = "";
    } else if (std::find(valued.begin(), valued.end(), k) != valued.end()) {
      if (i + 1 >= argc) throw usage_error("rev: " + s + " needs a value");
      a.options[k] = argv[++i];
    } else {
      throw usage_error("rev: unknown option " + s);
    }
  }
  return a;
}

mode mode_of(const args& a) {
  if (a.has("stored") && a.has("reversible")) throw usage_error("rev: --stored and --reversible exclude each other");
  return a.has("reversible") ? mode::reversible : mode::stored;
}

std::string millions(std::int64_t n, int digits = 3) {
  std::ostringstream s;
  s.precision(digits);
  s << std::fixed << static_cast<double>(n) / 1e6 << "M";
  return s.str();
}

void print_row(const part_summary& q) {
  std::printf("%-10s %14lld %10s %16lld %10s %16lld\n", q.name.c_str(), static_cast<long long>(q.parameters),
              millions(q.parameters).c_str(), static_cast<long long>(q.ops.macs()), millions(q.ops.macs(), 1).c_str(),
              static_cast<long long>(q.ops.thop()));
}

int summary_command(const args& a) {
  if (a.positional.size() != 1) throw usage_error("rev summary: expected one MODEL");
  const model_entry& m = find_model(a.positional[0]);
  const int res = static_cast<int>(a.number("res", m.default_res, 1 << 16));
  if (res % m.size_multiple != 0)
    throw usage_error("rev summary: --res " + std::to_string(res) + " is not a multiple of " +
                      std::to_string(m.size_multiple) + ", which " + m.name + " needs");
  const summary s = m.summarize(res);
  part_summary total{"total", 0, {}};
  for (const auto& p : s.parts) {
    total.parameters += p.parameters;
    total.ops += p.ops;
  }
  if (a.has("json")) {
    for (const auto& p : s.parts)
      bench::json_line()("model", m.name)("res", res)("part", p.name)("params", p.parameters)("macs", p.ops.macs())(
          "thop_macs", p.ops.thop())
          .print();
    bench::json_line()("model", m.name)("res", res)("part", "total")("params", total.parameters)(
        "macs", total.ops.macs())("thop_macs", total.ops.thop())
        .print();
    return 0;
  }
  std::printf("%s at %dx%d, batch 1 (MACs: conv + linear; thop: + conv bias, 2/BN output, 11/bilinear output)\n",
              m.family.c_str(), res, res);
  std::printf("%-10s %14s %10s %16s %10s %16s\n", "part", "parameters", "", "MACs", "", "thop MACs");
  for (const auto& q : s.parts) print_row(q);
  print_row(total);
  return 0;
}

int run_command(const args& a) {
  if (a.positional.size() != 1) throw usage_error("rev run: expected one MODEL");
  const model_entry& m = find_model(a.positional[0]);
  run_options o;
  o.weights = a.get("weights");
  o.io = a.get("io");
  o.out = a.get("out");
  if (o.weights.empty() || o.io.empty() || o.out.empty())
    throw usage_error("rev run: --weights, --io and --out are required");
  const std::string md = a.get("mode", "eval");
  if (md != "eval" && md != "train") throw usage_error("rev run: --mode must be eval or train, got '" + md + "'");
  o.train = md == "train";
  if (!o.train && (a.has("stored") || a.has("reversible")))
    throw usage_error("rev run: --stored and --reversible choose how a training step runs; they need --mode train");
  o.m = mode_of(a);
  m.run(o);
  std::printf("rev run %s (%s%s): wrote %s\n", m.name.c_str(), md.c_str(),
              o.train ? (o.m == mode::reversible ? ", reversible" : ", stored") : "", o.out.c_str());
  return 0;
}

int bench_command(const args& a) {
  if (a.positional.size() != 1) throw usage_error("rev bench: expected one MODEL");
  const model_entry& m = find_model(a.positional[0]);
  bench_options o;
  o.batch = a.number("batch", 8, 1 << 16);
  o.res = a.number("res", m.default_res, 1 << 16);
  o.steps = static_cast<int>(a.number("steps", 5, 1 << 20));
  o.m = mode_of(a);
  o.detect_anomaly = a.has("detect-anomaly");
  if (o.res % m.size_multiple != 0)
    throw usage_error("rev bench: --res " + std::to_string(o.res) + " is not a multiple of " +
                      std::to_string(m.size_multiple) + ", which " + m.name + " needs");
  const bench_result r = m.bench(o);
  std::vector<double> t = r.step_s;
  std::sort(t.begin(), t.end());
  const double median = t[t.size() / 2], best = t.front();
  const char* md = o.m == mode::reversible ? "reversible" : "stored";
  if (a.has("json")) {
    bench::json_line()("bench", "rev")("model", m.name)("mode", md)("batch", o.batch)("res", o.res)(
        "threads", num_threads())("detect_anomaly", o.detect_anomaly ? "on" : "off")("steps", o.steps)(
        "step_s_median", median)("step_s_min", best)("peak_activation_mb", r.peak_activation / 1048576.0)(
        "os_peak_rss_mb", r.peak_rss / 1048576.0)
        .print();
  } else {
    std::printf(
        "%s %s, batch %ld, %ldx%ld, %d threads: training step %.4f s (median of %d, best %.4f s), peak activation "
        "%.1f MB (OS resident peak %.1f MB)\n",
        m.family.c_str(), md, static_cast<long>(o.batch), static_cast<long>(o.res), static_cast<long>(o.res),
        num_threads(), median, o.steps, best, r.peak_activation / 1048576.0, r.peak_rss / 1048576.0);
  }
  return 0;
}

// Compares every tensor of OUT with the same key of REFERENCE: max |a - b| relative to the
// reference tensor's max |b| (or 1e-6 absolute where that is larger), the golden data's rule.
// rev updates BN running statistics once per step, so train.after.<key> is compared with the
// reference's train.after_norev.<key> where the reference has it.
int compare_command(const args& a) {
  if (a.positional.size() != 2) throw usage_error("rev compare: expected OUT and REFERENCE");
  const double tol = a.real("tol", 5e-4, 1e6);
  const io::file out = io::load(a.positional[0]), ref = io::load(a.positional[1]);
  int bad = 0, compared = 0;
  double worst = 0;
  std::string worst_key;
  for (const auto& [key, e] : out.entries) {
    std::string rkey = key;
    if (key.rfind("train.after.", 0) == 0 && ref.contains("train.after_norev." + key.substr(12)))
      rkey = "train.after_norev." + key.substr(12);
    if (!ref.contains(rkey)) {
      std::printf("missing in reference: %s\n", rkey.c_str());
      ++bad;
      continue;
    }
    const Tensor<double> x = e.to_tensor<double>(), y = ref.at(rkey).to_tensor<double>();
    if (x.shape() != y.shape()) {
      std::ostringstream s;
      s << key << ": extents " << x.shape() << " vs " << y.shape() << " in the reference";
      std::printf("%s\n", s.str().c_str());
      ++bad;
      continue;
    }
    double diff = 0, scale = 0;
    for (index_t i = 0; i < x.numel(); ++i) {
      diff = std::max(diff, std::abs(x.data()[i] - y.data()[i]));
      scale = std::max(scale, std::abs(y.data()[i]));
    }
    const double err = diff / std::max(scale, 1e-6 / tol);
    ++compared;
    if (!(err <= tol)) {
      std::printf("%s: error %.3g (max |diff| %.3g, max |ref| %.3g) above %.3g\n", key.c_str(), err, diff, scale, tol);
      ++bad;
    }
    if (!(err <= worst)) {
      worst = err;
      worst_key = key;
    }
  }
  std::printf("rev compare: %d tensors compared, %d above tolerance %.3g or missing; worst %.3g (%s)\n", compared, bad,
              tol, worst, worst_key.c_str());
  return bad == 0 && compared > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "list") {
      if (!parse(argc, argv, {}, {}).positional.empty()) throw usage_error("rev list: takes no arguments");
      for (const auto& m : registry())
        std::printf("%-12s %s, default %dx%d\n", m.name.c_str(), m.family.c_str(), m.default_res, m.default_res);
      return 0;
    }
    if (cmd == "summary") return summary_command(parse(argc, argv, {"json"}, {"res"}));
    if (cmd == "run") return run_command(parse(argc, argv, {"stored", "reversible"}, {"weights", "io", "out", "mode"}));
    if (cmd == "bench")
      return bench_command(
          parse(argc, argv, {"stored", "reversible", "json", "detect-anomaly"}, {"batch", "res", "steps"}));
    if (cmd == "compare") return compare_command(parse(argc, argv, {}, {"tol"}));
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::fputs(usage, stdout);
      return 0;
    }
    throw usage_error(cmd.empty() ? "rev: no command" : "rev: unknown command '" + cmd + "'");
  } catch (const usage_error& e) {
    std::fprintf(stderr, "%s\n%s", e.what(), usage);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rev: %s\n", e.what());
    return 1;
  }
}
