// One model of the `rev` tool's zoo, chosen at compile time: REV_CLI_REVBIFPN=S0..S6,
// REV_CLI_REVNET=R38|R110|R164 or REV_CLI_REVCOL=T|S|B|L|XL|H (examples/CMakeLists.txt compiles
// this file once per model).
#include <cctype>
#include <string>

#include "cli.hpp"
#include "rev/models/revbifpn.hpp"
#include "rev/models/revcol.hpp"
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
  Tensor<float> x;
  Tensors<float, 5> state;
  {
    count_ops c;
    x = net.stem().forward(image, ctx);
    s.parts.push_back({"stem", params.at("stem"), c.counts()});
  }
  {
    count_ops c;
    state = net.columns().forward(x, ctx);
    s.parts.push_back({"columns", params.at("columns"), c.counts()});
  }
  {
    count_ops c;
    net.head().forward(state, ctx);
    s.parts.push_back({"head", params.at("head"), c.counts()});
  }
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
#else
#error "examples/rev/model.cpp: define REV_CLI_REVBIFPN, REV_CLI_REVNET or REV_CLI_REVCOL"
#endif

const registrar registered{entry()};

}  // namespace
}  // namespace rev::cli
