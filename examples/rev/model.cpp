// One model of the `rev` tool's zoo, chosen at compile time: REV_CLI_REVBIFPN=S0..S6 or
// REV_CLI_REVNET=R38|R110|R164 (examples/CMakeLists.txt compiles this file once per model).
#include <cctype>
#include <string>

#include "cli.hpp"
#include "rev/models/revbifpn.hpp"
#include "rev/models/revnet.hpp"

namespace rev::cli {
namespace {

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
  Model::pyramid p, n;
  {
    count_ops c;
    p = net.features(image, ctx);
    s.parts.push_back({"backbone", params.at("backbone"), c.counts()});
  }
  {
    count_ops c;
    n = net.neck().forward(p, ctx);
    s.parts.push_back({"neck", params.at("neck"), c.counts()});
  }
  {
    count_ops c;
    net.head().forward(n, ctx);
    s.parts.push_back({"head", params.at("head"), c.counts()});
  }
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
#else
#error "examples/rev/model.cpp: define REV_CLI_REVBIFPN or REV_CLI_REVNET"
#endif

const registrar registered{entry()};

}  // namespace
}  // namespace rev::cli
