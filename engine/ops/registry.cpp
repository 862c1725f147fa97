#include "engine/ops/registry.h"

namespace siam {

const std::vector<OpInfo>& op_registry() {
  static const std::vector<OpInfo> table = {
      // name, group, differentiable, cuda
      {"add", "elementwise", true, false},
      {"sub", "elementwise", true, false},
      {"mul", "elementwise", true, false},
      {"div", "elementwise", true, false},
      {"pow", "elementwise", true, false},
      {"maximum", "elementwise", true, false},
      {"minimum", "elementwise", true, false},
      {"add_scalar", "elementwise", true, false},
      {"mul_scalar", "elementwise", true, false},
      {"rsub_scalar", "elementwise", true, false},
      {"rdiv_scalar", "elementwise", true, false},
      {"pow_scalar", "elementwise", true, false},
      {"neg", "elementwise", true, false},
      {"exp", "elementwise", true, false},
      {"log", "elementwise", true, false},
      {"sqrt", "elementwise", true, false},
      {"rsqrt", "elementwise", true, false},
      {"abs", "elementwise", true, false},
      {"clamp", "elementwise", true, false},
      {"relu", "elementwise", true, false},
      {"gelu", "elementwise", true, false},
      {"sigmoid", "elementwise", true, false},
      {"tanh", "elementwise", true, false},
      {"where", "elementwise", true, false},
      {"sum", "reduce", true, false},
      {"mean", "reduce", true, false},
      {"max", "reduce", true, false},
      {"var", "reduce", true, false},
      {"softmax", "reduce", true, false},
      {"log_softmax", "reduce", true, false},
      {"logsumexp", "reduce", true, false},
      {"norm", "reduce", true, false},
      {"view", "shape", true, false},
      {"reshape", "shape", true, false},
      {"slice", "shape", true, false},
      {"narrow", "shape", true, false},
      {"transpose", "shape", true, false},
      {"permute", "shape", true, false},
      {"expand", "shape", true, false},
      {"squeeze", "shape", true, false},
      {"unsqueeze", "shape", true, false},
      {"contiguous", "shape", true, false},
      {"cat", "shape", true, false},
      {"stack", "shape", true, false},
      {"split", "shape", true, false},
      {"chunk", "shape", true, false},
      {"index_select", "index", true, false},
      {"gather", "index", true, false},
      {"scatter_add", "index", true, false},
      {"matmul", "linalg", true, false},
      {"linear", "linalg", true, false},
      {"conv2d", "conv", true, false},
      {"batch_norm", "norm", true, false},
      {"layer_norm", "norm", true, false},
      {"max_pool2d", "pool", true, false},
      {"avg_pool2d", "pool", true, false},
      {"adaptive_avg_pool2d", "pool", true, false},
      {"cross_entropy", "loss", true, false},
      {"mse_loss", "loss", true, false},
      {"cosine_similarity", "loss", true, false},
      {"normalize", "loss", true, false},
      {"nt_xent", "siamese", true, false},
      {"moco_infonce", "siamese", true, false},
      {"barlow_twins_loss", "siamese", true, false},
      {"dropout", "random", true, false},
      {"argmax", "reduce", false, false},
      {"compare", "elementwise", false, false},
      {"eye", "factory", false, false},
      {"arange", "factory", false, false},
      {"zeros", "factory", false, false},
      {"ones", "factory", false, false},
      {"full", "factory", false, false},
      {"rand", "random", false, true},
      {"randn", "random", false, true},
  };
  return table;
}

const OpInfo* find_op(std::string_view name) {
  for (const auto& op : op_registry())
    if (op.name == name) return &op;
  return nullptr;
}

}  // namespace siam
