// siam::optim::Optimizer: parameter groups, step(), zero_grad() and per-parameter state.
//
// Groups. A caller passes ParamGroupSpecs: parameters plus the hyper-parameters that differ from the
// optimizer's defaults (lr, weight_decay, momentum) and lars_exclude (LARS skips the trust ratio and the weight
// decay for such a group: biases and norm parameters). The optimizer resolves them into ParamGroups with
// concrete values. Each group keeps lr_scale = its lr / the default lr, so set_lr(x) (what schedules call)
// gives every group x * lr_scale and per-group ratios survive a schedule.
//
// State. Parameter i is the i-th parameter counting through the groups in order. state(i) is a map of named
// tensors that the optimizer creates on the parameter's first update (SGD/LARS: "momentum_buffer"; AdamW:
// "step" (i64 scalar), "exp_avg", "exp_avg_sq"). named_state() lists them as "<i>.<key>" for a checkpoint;
// load_named_state() puts them back (a later step() continues from them).
//
// Updates run under a NoGradGuard, in place on the leaf tensors; parameters whose grad is undefined are
// skipped, as in PyTorch.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace siam::optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct ParamGroupSpec {
  // (Every member has an initializer so designated initializers may leave any out without a warning.)
  std::string name{};  // for messages ("decay", "exclude", "head", ...)
  std::vector<Tensor> params{};
  std::vector<std::string> param_names{};  // empty, or one per parameter
  std::optional<double> lr{};              // unset: the optimizer's default
  std::optional<double> weight_decay{};
  std::optional<double> momentum{};
  bool lars_exclude = false;

  static ParamGroupSpec from_named(const NamedTensors& named, std::string name = "");
};

struct ParamGroup {
  std::string name;
  std::vector<Tensor> params;
  std::vector<std::string> param_names;
  double lr = 0;
  double lr_scale = 1;  // lr / the optimizer's default lr at construction (1 when that is 0)
  double weight_decay = 0;
  double momentum = 0;
  bool lars_exclude = false;
};

// The defaults every optimizer's options provide for the per-group values.
struct GroupDefaults {
  double lr = 0;
  double weight_decay = 0;
  double momentum = 0;
};

// Splits named parameters (e.g. a module's named_parameters()) into "decay" (ndim > 1) and "exclude"
// (ndim <= 1: biases, BN/LN weights; also any name containing one of `exclude_if_name_contains`). The exclude
// group gets weight_decay 0 and lars_exclude; an empty group is left out.
std::vector<ParamGroupSpec> split_decay_exclude(const NamedTensors& named,
                                                const std::vector<std::string>& exclude_if_name_contains = {});

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient.
  void step();
  void zero_grad(bool set_to_none = true);

  const std::string& name() const { return name_; }
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Sets every group's lr to lr * its lr_scale (what schedules call).
  void set_lr(double lr);
  int64_t steps_taken() const { return steps_; }

  size_t num_params() const { return state_.size(); }
  std::map<std::string, Tensor>& state(size_t param_index);
  const std::map<std::string, Tensor>& state(size_t param_index) const;
  NamedTensors named_state() const;
  // Takes "<i>.<key>" entries (as named_state() writes them); buffers must match their parameter's shape.
  void load_named_state(const NamedTensors& state);

 protected:
  Optimizer(std::string name, std::vector<ParamGroupSpec> groups, const GroupDefaults& defaults);
  // Updates one parameter p with gradient g (same shape) in group `group`; `index` selects its state.
  virtual void update(const ParamGroup& group, size_t index, Tensor& p, const Tensor& g) = 0;

 private:
  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::map<std::string, Tensor>> state_;
  int64_t steps_ = 0;
};

// The flat list of parameters as a single group spec (for the constructors that take std::vector<Tensor>).
std::vector<ParamGroupSpec> single_group(std::vector<Tensor> params);

// ||t||_2 as a double (accumulated in f64 on the CPU).
double l2_norm(const Tensor& t);

}  // namespace siam::optim
