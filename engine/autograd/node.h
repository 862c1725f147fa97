// The autograd tape. Every differentiable op that sees an input requiring a gradient records one Node:
// the edges to its inputs' nodes and a backward closure that captures only what backward needs
// (flashlight style). Nodes have one output each; ops with several outputs are built from views.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace siam::autograd {

class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) {}
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  // One gradient per input edge (undefined where the input needs none), given the output's gradient.
  virtual std::vector<Tensor> apply(const Tensor& grad_out) = 0;
  // Frees what backward captured; a second walk through this node then fails with a clear error.
  virtual void release() { released_ = true; }
  bool released() const { return released_; }

  struct InputMeta {
    Shape shape;
    DType dtype;
  };
  std::vector<std::shared_ptr<Node>> next;  // per input; null when that input needs no gradient
  std::vector<InputMeta> inputs;            // shapes the gradients must have
  std::vector<GradHook> pre_hooks;          // hooks of the tensor this node produced

 protected:
  std::string name_;
  bool released_ = false;
};

// Backward closure: (gradient of the output, which inputs need a gradient) -> one gradient per input.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad, const std::vector<bool>& needs)>;

class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : Node(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(const Tensor& grad_out) override;
  void release() override {
    fn_ = nullptr;
    released_ = true;
  }

 private:
  BackwardFn fn_;
};

// The sink of a leaf that requires a gradient: runs its hooks and adds into leaf.grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const Tensor& grad_out) override;
  void release() override {}  // leaves outlive any one backward pass

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// True when grad mode is on and any defined input requires a gradient.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a backward node to `out` whose inputs are `inputs` (call only when needs_grad(inputs)).
// `out` must be a fresh tensor produced by the op. Returns out.
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn);

// The node a gradient for `t` flows into: its grad_fn, its leaf accumulator, or null.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Runs backward from `root` with gradient `grad` (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace siam::autograd
