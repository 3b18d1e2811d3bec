#include "helpers.hpp"
#include "rev/train/sgd.hpp"

using namespace rev;

namespace {

// A "model" with one parameter, for driving the optimiser directly.
struct one_param {
  Param<double> w;
  template <class F>
  void for_each_parameter(F&& f, const std::string& prefix = "") {
    f(join_name(prefix, "w"), w);
  }
};

void run(const char* name, train::sgd_options o) {
  INFO(name);
  auto ref = test::torch_reference("sgd");
  one_param m{Param<double>({4, 3})};
  m.w.value = ref.tensor<double>("w0");
  train::SGD<double> opt(m, o);
  for (int i = 0; i < 3; ++i) {
    m.w.grad = ref.tensor<double>("grad" + std::to_string(i));
    opt.step();
    CHECK(test::max_abs_error(m.w.value, ref.tensor<double>(std::string(name) + ".w" + std::to_string(i + 1))) < 1e-14);
  }
}

}  // namespace

TEST_CASE("SGD: plain, momentum and Nesterov with weight decay follow torch.optim.SGD") {
  run("plain", {.lr = 0.1});
  run("momentum", {.lr = 0.1, .momentum = 0.9});
  run("nesterov_wd", {.lr = 0.05, .momentum = 0.8, .weight_decay = 1e-2, .nesterov = true});
}

TEST_CASE("SGD: bad options are rejected") {
  one_param m{Param<double>({1})};
  CHECK_THROWS_AS(train::SGD<double>(m, {.lr = -1}), value_error);
  CHECK_THROWS_WITH_AS(train::SGD<double>(m, {.lr = 0.1, .nesterov = true}),
                       "rev::train::SGD: Nesterov momentum needs momentum > 0", value_error);
}
