// Method base: view batching, head construction, frozen copies. (methods/method.h)
#include "methods/method.h"

#include <algorithm>
#include <numeric>

#include "engine/ops/shape.h"
#include "kernels/common/philox.h"

namespace siam::methods {

Method::Method(std::string type_name, std::shared_ptr<models::ResNet> encoder)
    : nn::Module(std::move(type_name)), encoder_(std::move(encoder)) {
  SIAM_CHECK(encoder_ != nullptr, this->type_name(), ": no encoder given");
  register_module("encoder", encoder_);
}

nn::NamedTensors Method::trainable_parameters() const {
  nn::NamedTensors out;
  for (auto& [name, p] : named_parameters())
    if (p.requires_grad()) out.emplace_back(name, p);
  return out;
}

int64_t Method::check_views(const std::vector<Tensor>& views) const {
  SIAM_CHECK(static_cast<int>(views.size()) >= min_views(), type_name(), ": needs at least ", min_views(),
             " views per sample, got ", views.size(), " (set `count` in the views: section)");
  const int64_t b = views[0].size(0);
  for (size_t v = 0; v < views.size(); ++v) {
    SIAM_CHECK(views[v].dim() == 4, type_name(), ": view ", v, " must be (B, C, H, W), got ",
               shape_str(views[v].shape()));
    SIAM_CHECK(views[v].size(0) == b, type_name(), ": view ", v, " has ", views[v].size(0), " samples, view 0 has ", b);
  }
  SIAM_CHECK(b >= 2, type_name(), ": a batch of ", b, " sample is too small (batch norm and the loss need >= 2)");
  return b;
}

std::vector<Tensor> Method::encode(nn::Module& encoder, const std::vector<Tensor>& views) {
  // Group views by spatial size, keeping the first appearance order; one forward per group.
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::vector<size_t>>> groups;
  for (size_t v = 0; v < views.size(); ++v) {
    std::pair<int64_t, int64_t> hw{views[v].size(2), views[v].size(3)};
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == hw; });
    if (it == groups.end())
      groups.push_back({hw, {v}});
    else
      it->second.push_back(v);
  }
  std::vector<Tensor> out(views.size());
  for (auto& [hw, ids] : groups) {
    if (ids.size() == 1 || opt_.per_view_forward) {
      for (size_t v : ids) out[v] = encoder(views[v]);
      continue;
    }
    std::vector<Tensor> xs;
    for (size_t v : ids) xs.push_back(views[v]);
    Tensor f = encoder(cat(xs, 0));  // (k*B, F)
    auto parts = chunk(f, static_cast<int64_t>(ids.size()), 0);
    for (size_t k = 0; k < ids.size(); ++k) out[ids[k]] = parts[k];
  }
  return out;
}

std::vector<Tensor> Method::project(nn::Module& head, const std::vector<Tensor>& feats) {
  if (feats.size() == 1) return {head(feats[0])};
  if (opt_.per_view_forward) {
    std::vector<Tensor> out;
    for (const auto& f : feats) out.push_back(head(f));
    return out;
  }
  std::vector<int64_t> sizes;
  for (auto& f : feats) sizes.push_back(f.size(0));
  Tensor y = head(cat(feats, 0));  // (sum B_v, out)
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(y.narrow(0, at, s));
    at += s;
  }
  return out;
}

std::shared_ptr<models::MLP> Method::make_head(int64_t in_dim, const HeadOptions& h) {
  return models::mlp({.in_dim = in_dim,
                      .hidden_dim = h.hidden,
                      .out_dim = h.out,
                      .layers = h.layers,
                      .hidden_bn = h.hidden_bn,
                      .hidden_bias = h.bias,
                      .last_bias = !h.last_bn || h.last_bn_affine,
                      .last_bn = h.last_bn,
                      .last_bn_affine = h.last_bn_affine});
}

Tensor Method::gather_rows(const Tensor& z) const {
  dist::Communicator& c = comm();
  return c.world_size() == 1 ? z : dist::all_gather_rows(z, c);
}

BatchStatHooks Method::batch_stat_hooks(int64_t local_rows) const {
  dist::Communicator* c = &comm();
  BatchStatHooks h;
  h.all_reduce_sum = [c](const Tensor& t) { return dist::all_reduce_sum(t, *c); };
  h.global_batch = local_rows * c->world_size();
  return h;
}

Tensor Method::gather_rows_nograd(const Tensor& z) const {
  dist::Communicator& c = comm();
  return c.world_size() == 1 ? z : c.all_gather(z.detach().contiguous());
}

std::vector<int64_t> Method::permutation(int64_t n, uint64_t purpose, int64_t step) const {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates on counter-based draws
    Philox4 b = philox_block(opt_.seed ^ (purpose << 40), static_cast<uint64_t>(step), static_cast<uint64_t>(i));
    uint64_t r = (static_cast<uint64_t>(b.v[0]) << 32) | b.v[1];
    std::swap(p[i], p[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

void Method::copy_into(nn::Module& dst, const nn::Module& src) {
  NoGradGuard ng;
  auto sp = src.named_parameters(), dp = dst.named_parameters();
  auto sb = src.named_buffers(), db = dst.named_buffers();
  SIAM_CHECK(sp.size() == dp.size() && sb.size() == db.size(), "copy_into: ", src.type_name(), " and ", dst.type_name(),
             " differ in their parameters");
  for (size_t i = 0; i < sp.size(); ++i) {
    dp[i].second.copy_(sp[i].second);
    dp[i].second.set_requires_grad(false);
  }
  for (size_t i = 0; i < sb.size(); ++i) db[i].second.copy_(sb[i].second);
}

}  // namespace siam::methods
