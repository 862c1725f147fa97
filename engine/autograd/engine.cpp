// Backward pass: a dependency-counted walk of the tape from the root, summing gradients that meet at a node.
#include <unordered_map>

#include "engine/autograd/node.h"
#include "engine/ops/elementwise.h"

namespace siam::autograd {

namespace {
thread_local bool g_grad_enabled = true;
}  // namespace
}  // namespace siam::autograd

namespace siam {
bool grad_mode_enabled() { return autograd::g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(autograd::g_grad_enabled) { autograd::g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { autograd::g_grad_enabled = prev_; }
}  // namespace siam

namespace siam::autograd {

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_out) {
  if (!fn_)
    SIAM_FAIL("backward through op '", name_, "' a second time: its saved tensors were freed by an earlier "
              "backward(); pass retain_graph=true to the first backward() to walk the graph twice");
  std::vector<bool> needs(next.size());
  for (size_t i = 0; i < next.size(); ++i) needs[i] = next[i] != nullptr;
  return fn_(grad_out, needs);
}

std::vector<Tensor> AccumulateGrad::apply(const Tensor& grad_out) {
  Tensor replaced;
  const Tensor* gp = &grad_out;
  for (auto& hook : leaf_->leaf_hooks) {
    if (auto r = hook(*gp)) {
      replaced = *r;
      gp = &replaced;
    }
  }
  const Tensor& g = *gp;
  if (!leaf_->grad) {
    // Take the incoming buffer when nobody else holds it (the walker's reference is the only one);
    // otherwise copy, so later in-place accumulation never writes into another tensor's gradient.
    bool exclusive = gp == &grad_out && g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 &&
                     g.is_contiguous() && g.dtype() == leaf_->dtype;
    leaf_->grad = exclusive ? g.impl_ptr() : g.clone().impl_ptr();
  } else {
    Tensor(leaf_->grad).add_(g);
  }
  Tensor leaf(leaf_);
  for (auto& hook : leaf_->post_accumulate_hooks) hook(leaf);
  return {};
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}
bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined()) return nullptr;
  auto& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.requires_grad) return nullptr;
  auto acc = impl.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    impl.grad_accumulator = acc;
  }
  return acc;
}

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next.reserve(inputs.size());
  node->inputs.reserve(inputs.size());
  for (const auto& in : inputs) {
    node->next.push_back(gradient_edge(in));
    node->inputs.push_back({in.defined() ? in.shape() : Shape{}, in.defined() ? in.dtype() : DType::f32});
  }
  out.impl().grad_fn = std::move(node);
  return out;
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  std::shared_ptr<Node> root_node = gradient_edge(root);
  SIAM_CHECK(root_node, "backward(): the tensor does not require a gradient and has no grad_fn "
                        "(did every input come from detach() or a NoGradGuard scope?)");
  SIAM_CHECK(grad.shape() == root.shape(), "backward(): gradient of shape ", shape_str(grad.shape()),
             " given for a tensor of shape ", shape_str(root.shape()));

  // Count, for every reachable node, how many edges lead into it.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root_node.get()};
  deps[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& child : n->next) {
      if (!child) continue;
      auto [it, inserted] = deps.try_emplace(child.get(), 0);
      it->second += 1;
      if (inserted) stack.push_back(child.get());
    }
  }

  NoGradGuard no_grad;
  std::unordered_map<Node*, Tensor> buffers;
  buffers[root_node.get()] = grad;
  std::vector<Node*> ready{root_node.get()};
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    Tensor g;
    if (auto it = buffers.find(n); it != buffers.end()) {
      g = std::move(it->second);
      buffers.erase(it);
    }
    std::vector<Tensor> grads;
    if (g.defined()) {
      if (n->released())
        SIAM_FAIL("backward through op '", n->name(), "' a second time: its saved tensors were freed by an "
                  "earlier backward(); pass retain_graph=true to the first backward() to walk the graph twice");
      for (auto& hook : n->pre_hooks) {
        if (auto r = hook(g)) g = *r;
      }
      grads = n->apply(g);
      if (!retain_graph) n->release();
    }
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* child = n->next[i].get();
      if (!child) continue;
      if (i < grads.size() && grads[i].defined()) {
        SIAM_ASSERT(grads[i].shape() == n->inputs[i].shape, "op '", n->name(), "' backward gave input ", i,
                    " a gradient of shape ", shape_str(grads[i].shape()), ", expected ",
                    shape_str(n->inputs[i].shape));
        auto& buf = buffers[child];
        if (!buf.defined()) {
          buf = grads[i];
        } else if (buf.impl_ptr().use_count() == 1 && buf.storage().use_count() == 1 && buf.is_contiguous()) {
          buf.add_(grads[i]);
        } else {
          buf = add(buf, grads[i]);
        }
      }
      if (--deps[child] == 0) ready.push_back(child);
    }
  }
}

}  // namespace siam::autograd
