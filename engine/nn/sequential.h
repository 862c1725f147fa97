// nn::Sequential: children called in order, named "0", "1", ... (or by the names given), as torch.nn.
#pragma once
#include <memory>
#include <vector>

#include "engine/nn/module.h"

namespace siam::nn {

class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  // Sequential({std::make_shared<Linear>(2, 64), std::make_shared<ReLU>()})
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);

  // Appends under the next index as name ("0", "1", ...), or under the given name.
  Sequential& push_back(std::shared_ptr<Module> m);
  Sequential& push_back(const std::string& name, std::shared_ptr<Module> m);

  Tensor forward(const Tensor& x) override;  // an empty Sequential returns x
  size_t size() const { return named_children().size(); }
  bool empty() const { return size() == 0; }
  Module& operator[](size_t i) const;
  std::shared_ptr<Module> at(size_t i) const;
};

}  // namespace siam::nn
