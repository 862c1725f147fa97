// siam::nn::Module: the base of every layer. A module owns named parameters (leaf tensors that require a
// gradient), named buffers (state that is saved but not trained: BN running statistics) and named children
// (shared_ptr<Module>, as torch::nn). Names are joined with dots, as torchvision writes them
// ("layer1.0.conv1.weight"), in PyTorch's order: a module's own parameters, then each child's, depth first.
//
// Subclasses register their tensors in the constructor and keep the returned Tensor* (the registry is a
// deque, so an entry never moves). Replace a parameter's values with copy_() under a NoGradGuard (checkpoint
// loading) rather than by assigning a new tensor, so optimizers holding the handle keep seeing it.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace siam::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The single-input forward pass. The base version throws: modules that need more than one input
  // define their own call and leave this one alone.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  const std::string& type_name() const { return type_name_; }

  // ---- registration (names: non-empty, no '.', unique within this module) ----
  // Makes `t` a leaf (detaching it when it has history) with requires_grad set as asked; returns the entry.
  Tensor& register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Buffers never require a gradient (a tensor that does is detached).
  Tensor& register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, std::static_pointer_cast<Module>(m));
    return m;
  }

  // ---- traversal (recursive with dotted names; a tensor or module reachable twice is listed once) ----
  NamedTensors named_parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  // Parameters and buffers in torch's state_dict order (per module: parameters, buffers; then children).
  NamedTensors state_dict() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  std::vector<std::shared_ptr<Module>> children() const;
  // This module (name "") then every descendant, depth first. Pointers are valid while this module lives.
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

  // ---- lookup by dotted name; throws siam::Error naming the module and the known names ----
  Tensor& param(const std::string& name);
  Tensor& buffer(const std::string& name);
  Module& module(const std::string& name);
  bool has_param(const std::string& name) const;
  bool has_buffer(const std::string& name) const;

  // ---- mode ----
  Module& train(bool on = true);  // recursive
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient (set_to_none) or zeroes it in place.
  void zero_grad(bool set_to_none = true);
  int64_t num_parameters() const;

  // Converts floating parameters and buffers (to(DType)) or all of them (to(Device)); parameters stay
  // leaves with their requires_grad. Gradients are dropped. Tensors shared between modules stay shared.
  Module& to(DType dtype);
  Module& to(Device device);

  // One line per module, indented by depth: "name: Type(extra)".
  std::string str() const;
  // What str() prints in the parentheses (sizes, options); empty by default.
  virtual std::string extra_repr() const { return ""; }

 protected:
  // The undefined tensor that accessors of optional tensors (an absent bias) return.
  static const Tensor& none();

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name, const char* what) const;
  template <class Fn>
  void convert(Fn fn, bool floating_only);
  void str_into(std::string& out, const std::string& name, int depth) const;
  // Finds the owner of a dotted name and its last component; throws naming `fn` when a child is missing.
  const Module* resolve(const std::string& dotted, std::string& leaf, const char* fn, const char* what) const;

  std::string type_name_;
  bool training_ = true;
  std::deque<std::pair<std::string, Tensor>> params_;
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace siam::nn
