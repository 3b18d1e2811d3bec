// One model of the `rev` tool's zoo, chosen at compile time: REV_CLI_REVBIFPN=S0..S6,
// REV_CLI_REVNET=R38|R110|R164, REV_CLI_REVCOL=T|S|B|L|XL|H, REV_CLI_REVVIT=S|B|L (SlowFast's
// layout), REV_CLI_REVVIT_MINREV=S|B|L, REV_CLI_REVMVIT=B or REV_CLI_REVMVIT_MINREV=Default
// (examples/CMakeLists.txt compiles this file once per model).
#include <cctype>
#include <string>

#include "cli.hpp"
#include "rev/models/revbifpn.hpp"
#include "rev/models/revcol.hpp"
#include "rev/models/revmvit.hpp"
#include "rev/models/revmvitv2.hpp"
#include "rev/models/revnet.hpp"
#include "rev/models/revvit.hpp"

namespace rev::cli {
namespace {

// Runs fn() under an op counter and appends its counts to s as part `name` with `params`
// parameters; returns what fn returned.
template <class Fn>
auto counted(summary& s, const std::string& name, std::int64_t params, Fn&& fn) {
  count_ops c;
  auto out = fn();
  s.parts.push_back({name, params, c.counts()});
  return out;
}

#if defined(REV_CLI_REVBIFPN)
namespace rb = models::revbifpn;
using Cfg = rb::REV_CLI_REVBIFPN;
using Model = models::RevBiFPN<Cfg>;
constexpr int paper_res[] = {224, 256, 256, 288, 320, 352, 352};  // the paper's resolutions, S0..S6

// Dropout off, so that a training step is deterministic (the golden files are made so).
Model make() { return Model(0.0); }

std::string part_of(const std::string& key) {
  if (key.rfind("rev_stack.recomp_op", 0) == 0) return "neck";
  if (key.rfind("rev_stack", 0) == 0) return "backbone";
  return "head";
}

summary summarize(int res) {
  Model net = make();
  const auto params = parameters_by_part(net, part_of);
  const Tensor<float> image({1, 3, res, res});
  context ctx{phase::eval};
  summary s{res, {}};
  const auto p = counted(s, "backbone", params.at("backbone"), [&] { return net.features(image, ctx); });
  const auto n = counted(s, "neck", params.at("neck"), [&] { return net.neck().forward(p, ctx); });
  counted(s, "head", params.at("head"), [&] { return net.head().forward(n, ctx); });
  return s;
}

model_entry entry() {
  const std::string v = Cfg::name;  // "S0"
  const int index = v[1] - '0';
  return {"revbifpn-s" + std::to_string(index),
          "RevBiFPN-" + v,
          paper_res[index],
          32,
          3,
          1000,
          summarize,
          [](const run_options& o) {
            Model net = make();
            run_model(net, o);
          },
          [](const bench_options& o) {
            Model net = make();
            return bench_model(net, o, 3, 1000);
          }};
}

#elif defined(REV_CLI_REVNET)
namespace rn = models::revnet;
using Cfg = rn::REV_CLI_REVNET;
using Model = models::RevNet<Cfg>;

std::string part_of(const std::string& key) { return key.substr(0, key.find('.')); }  // init, stage<s>, head

summary summarize(int res) {
  Model net;
  const auto params = parameters_by_part(net, part_of);
  Tensor<float> x({1, 3, res, res});
  context ctx{phase::eval};
  summary s{res, {}};
  auto& chain = net.network();
  auto step = [&](auto& block, const std::string& part) {
    count_ops c;
    x = block.forward(x, ctx);
    if (s.parts.empty() || s.parts.back().name != part) s.parts.push_back({part, params.at(part), {}});
    s.parts.back().ops += c.counts();
  };
  step(chain.get<0>(), "init");
  step(chain.get<1>(), "stage1");
  step(chain.get<2>(), "stage2");
  step(chain.get<3>(), "stage3");
  step(chain.get<4>(), "head");
  return s;
}

model_entry entry() {
  return {Cfg::name,
          std::string("RevNet-") + (Cfg::name + 7),
          32,
          Model::size_multiple,
          3,
          Cfg::classes,
          summarize,
          [](const run_options& o) {
            Model net;
            run_model(net, o);
          },
          [](const bench_options& o) {
            Model net;
            return bench_model(net, o, 3, Cfg::classes);
          }};
}
#elif defined(REV_CLI_REVCOL)
namespace rc = models::revcol;
using Cfg = rc::REV_CLI_REVCOL;
using Model = models::RevCol<Cfg>;  // with the intermediate heads, as the official factories build it

// Stochastic depth off, so that a training step is deterministic.
Model make() {
  Model net;
  net.set_stochastic_depth(0);
  return net;
}

std::string part_of(const std::string& key) {
  if (key.rfind("stem", 0) == 0) return "stem";
  if (key.rfind("subnet", 0) == 0) return "columns";
  if (key.rfind("cls_blocks.3", 0) == 0) return "head";
  return "aux heads";
}

// The parts of the inference model (stem, columns, classifier); the intermediate heads' parameters
// (trained, not run at inference) as a part of their own, with no operations.
summary summarize(int res) {
  Model net = make();
  const auto params = parameters_by_part(net, part_of);
  const Tensor<float> image({1, 3, res, res});
  context ctx{phase::eval};
  summary s{res, {}};
  const auto x = counted(s, "stem", params.at("stem"), [&] { return net.stem().forward(image, ctx); });
  const auto state = counted(s, "columns", params.at("columns"), [&] { return net.columns().forward(x, ctx); });
  counted(s, "head", params.at("head"), [&] { return net.head().forward(state, ctx); });
  s.parts.push_back({"aux heads", params.at("aux heads"), {}});
  return s;
}

model_entry entry() {
  std::string name = Cfg::name;  // "T"
  for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return {"revcol-" + name,
          std::string("RevCol-") + Cfg::name,
          224,
          32,
          3,
          1000,
          summarize,
          [](const run_options& o) {
            Model net = make();
            run_model(net, o);
          },
          [](const bench_options& o) {
            Model net = make();
            return bench_model(net, o, 3, 1000);
          }};
}
#elif defined(REV_CLI_REVVIT) || defined(REV_CLI_REVVIT_MINREV) || defined(REV_CLI_REVMVIT) || \
    defined(REV_CLI_REVMVIT_MINREV)
namespace rv = models::revvit;
#if defined(REV_CLI_REVVIT)
using Cfg = rv::REV_CLI_REVVIT;
using Model = models::RevViT<Cfg, rv::slowfast>;
const std::string family = "revvit-", title = "Rev-ViT-";
#elif defined(REV_CLI_REVVIT_MINREV)
using Cfg = rv::REV_CLI_REVVIT_MINREV;
using Model = models::RevViT<Cfg, rv::minrev>;
const std::string family = "revvit-minrev-", title = "Rev-ViT-";
#elif defined(REV_CLI_REVMVIT)
using Cfg = models::revmvit::REV_CLI_REVMVIT;
using Model = models::RevMViT<Cfg>;
const std::string family = "revmvit-", title = "Rev-MViT-";
#else
using Cfg = models::revmvitv2::REV_CLI_REVMVIT_MINREV;  // Cfg::name "minrev"
using Model = models::RevMViTv2<Cfg>;
const std::string family = "revmvit-", title = "Rev-MViT-";
#endif

// Stochastic depth off, so that a training step is deterministic.
Model make() {
  Model net;
  net.set_stochastic_depth(0);
  return net;
}

std::string part_of(const std::string& key) {
  if (key.starts_with("patch_embed") || key.starts_with("pos_embed")) return "stem";
  if (key.starts_with("layers") || key.starts_with("rev_backbone") || key.starts_with("blocks")) return "blocks";
  return "head";
}

// What the blocks give the head from the stem's tokens: Rev-ViT's blocks take the tokens
// duplicated, Rev-MViT's backbone (stacks and transitions) the tokens.
template <class Net>
auto blocks(Net& net, const Tensor<float>& tokens, context& ctx) {
  if constexpr (requires { net.backbone(); }) return net.backbone().forward(tokens, ctx);
  else if constexpr (requires { net.segments(); }) return net.segments().forward(tokens, ctx);
  else return net.layers().forward({tokens, tokens}, ctx);
}

// Conv (Rev-MViT's pooling convolutions included), linear and attention-product MACs of the
// stem, the blocks and the head.
summary summarize(int res) {
  Model net = make();
  const auto params = parameters_by_part(net, part_of);
  const Tensor<float> image({1, 3, res, res});
  context ctx{phase::eval};
  summary s{res, {}};
  const auto x = counted(s, "stem", params.at("stem"), [&] { return net.stem().forward(image, ctx); });
  const auto streams = counted(s, "blocks", params.at("blocks"), [&] { return blocks(net, x, ctx); });
  counted(s, "head", params.at("head"), [&] { return net.head().forward(streams, ctx); });
  return s;
}

model_entry entry() {
  std::string name = Cfg::name;  // "S"
  for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const bool minrev = family == "revvit-minrev-" || name == "minrev";
  return {family + name,
          name == "minrev" ? "Rev-MViT (minREV's MViTv2 layout, its defaults)"
                           : title + Cfg::name + (minrev ? " (minREV layout)" : ""),
          Cfg::image,
          Cfg::image,
          3,
          Cfg::classes,
          summarize,
          [](const run_options& o) {
            Model net = make();
            run_model(net, o);
          },
          [](const bench_options& o) {
            Model net = make();
            return bench_model(net, o, 3, Cfg::classes);
          }};
}
#else
#error \
    "examples/rev/model.cpp: define REV_CLI_REVBIFPN, REV_CLI_REVNET, REV_CLI_REVCOL, REV_CLI_REVVIT[_MINREV] or REV_CLI_REVMVIT[_MINREV]"
#endif

const registrar registered{entry()};

}  // namespace
}  // namespace rev::cli
