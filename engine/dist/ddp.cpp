// DistributedDataParallel: bucketed gradient averaging launched from post-accumulate-grad hooks, reduced on a
// communication thread; see ddp.h.
#include "engine/dist/ddp.h"

#include <cstring>

#include "engine/ops/dispatch.h"
#include "kernels/cuda/stream.h"

namespace siam::dist {

struct DistributedDataParallel::State {
  DistributedDataParallel* ddp;
};

DistributedDataParallel::DistributedDataParallel(NamedTensors parameters, NamedTensors buffers, DDPOptions options,
                                                 Communicator* comm)
    : buffers_(std::move(buffers)), opt_(options) {
  SIAM_CHECK(opt_.bucket_mb > 0, "DistributedDataParallel: bucket_mb must be positive, got ", opt_.bucket_mb);
  Communicator& base = comm ? *comm : world();
  comm_ = base.duplicate(base.name() + ".ddp");

  for (auto& [name, p] : parameters) {
    SIAM_CHECK(p.defined(), "DistributedDataParallel: parameter '", name, "' is undefined");
    SIAM_CHECK(p.is_leaf(), "DistributedDataParallel: parameter '", name, "' is not a leaf tensor");
    if (!p.requires_grad()) continue;  // frozen: nothing to average
    params_.push_back({name, p});
  }
  // Buckets over the parameters in reverse order (backward reaches the last layers first).
  const double cap = opt_.bucket_mb * 1024.0 * 1024.0;
  double bytes = 0;
  for (int i = static_cast<int>(params_.size()) - 1; i >= 0; --i) {
    Param& q = params_[static_cast<size_t>(i)];
    const double nb = static_cast<double>(q.p.nbytes());
    bool fresh = buckets_.empty();
    if (!fresh) {
      const Param& first = params_[static_cast<size_t>(buckets_.back().params.front())];
      fresh = first.p.dtype() != q.p.dtype() || first.p.device() != q.p.device() || bytes + nb > cap;
    }
    if (fresh) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    q.bucket = static_cast<int>(buckets_.size()) - 1;
    q.offset = 0;
    for (int j : b.params) q.offset += params_[static_cast<size_t>(j)].p.numel();
    b.params.push_back(i);
    bytes += nb;
  }
  for (Bucket& b : buckets_) {
    int64_t n = 0;
    for (int j : b.params) n += params_[static_cast<size_t>(j)].p.numel();
    const Tensor& first = params_[static_cast<size_t>(b.params.front())].p;
    b.flat = zeros({n}, TensorOptions(first.dtype(), first.device()));
  }
  reset_step();
  if (comm_->world_size() == 1) return;  // nothing to synchronize; .grad stays exactly as backward left it

  check_same_layout();
  if (opt_.broadcast_at_start) {
    broadcast_parameters();
    broadcast_buffers();
  }
  state_ = std::make_shared<State>(State{this});
  if (opt_.overlap) {
    std::weak_ptr<State> weak = state_;
    for (size_t i = 0; i < params_.size(); ++i)
      params_[i].p.register_post_accumulate_hook([weak, i](const Tensor&) {
        if (auto s = weak.lock()) s->ddp->on_grad(static_cast<int>(i));
      });
    if (comm_->concurrent_ok()) thread_ = std::thread([this] { comm_loop(); });
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  state_.reset();  // the hooks become no-ops
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
}

// Every rank must bucket the same parameters (names, shapes, dtypes) or the all-reduces would pair unrelated
// gradients: one all-gather of a hash of the layout.
void DistributedDataParallel::check_same_layout() {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  int64_t numel = 0;
  for (const Param& q : params_) {
    mix(q.name.data(), q.name.size());
    for (int64_t s : q.p.shape()) mix(&s, sizeof s);
    const auto dt = static_cast<uint8_t>(q.p.dtype());
    mix(&dt, 1);
    numel += q.p.numel();
  }
  mix(&opt_.bucket_mb, sizeof opt_.bucket_mb);
  int64_t hv;
  std::memcpy(&hv, &h, sizeof hv);
  Tensor mine = from_vector_i64({hv, static_cast<int64_t>(params_.size()), numel}, {1, 3});
  std::vector<int64_t> all = comm_->all_gather(mine).to_vector<int64_t>();  // (W, 3)
  for (int r = 0; r < comm_->world_size(); ++r) {
    const int64_t* o = all.data() + 3 * r;
    SIAM_CHECK(o[0] == hv && o[1] == static_cast<int64_t>(params_.size()) && o[2] == numel,
               "DistributedDataParallel: rank ", comm_->rank(), " has ", params_.size(), " trainable parameters (",
               numel, " values) but rank ", r, " has ", o[1], " (", o[2], " values)",
               o[1] == static_cast<int64_t>(params_.size()) && o[2] == numel
                   ? " with other names, shapes, dtypes or bucket_mb"
                   : "",
               ": every rank must wrap the same model");
  }
}

void DistributedDataParallel::broadcast_parameters(int root) {
  NoGradGuard ng;
  for (Param& q : params_) {
    Tensor t = q.p.detach();
    if (t.is_contiguous()) {
      comm_->broadcast(t, root);
    } else {
      Tensor c = t.contiguous();
      comm_->broadcast(c, root);
      t.copy_(c);
    }
  }
}

void DistributedDataParallel::broadcast_buffers(int root) {
  NoGradGuard ng;
  for (auto& [name, b] : buffers_) {
    Tensor t = b.detach();
    if (t.is_contiguous()) {
      comm_->broadcast(t, root);
    } else {
      Tensor c = t.contiguous();
      comm_->broadcast(c, root);
      t.copy_(c);
    }
  }
}

void DistributedDataParallel::set_sync(bool on) { sync_ = on; }

std::vector<std::vector<std::string>> DistributedDataParallel::bucket_names() const {
  std::vector<std::vector<std::string>> out;
  for (const Bucket& b : buckets_) {
    out.emplace_back();
    for (int j : b.params) out.back().push_back(params_[static_cast<size_t>(j)].name);
  }
  return out;
}

void DistributedDataParallel::copy_in(int index) {
  NoGradGuard ng;
  Param& q = params_[static_cast<size_t>(index)];
  Tensor dst = buckets_[static_cast<size_t>(q.bucket)].flat.narrow(0, q.offset, q.p.numel()).view(q.p.shape());
  Tensor g = q.p.grad();
  if (g.defined())
    dst.copy_(g);
  else
    dst.zero_();
}

// A parameter's .grad was updated by backward (main thread).
void DistributedDataParallel::on_grad(int index) {
  if (!sync_) return;
  Param& q = params_[static_cast<size_t>(index)];
  Bucket& b = buckets_[static_cast<size_t>(q.bucket)];
  if (q.ready) {
    SIAM_CHECK(!b.launched, "DistributedDataParallel: parameter '", q.name,
               "' received a second gradient after its bucket was sent to the all-reduce: run all but the last "
               "backward of a step inside no_sync(), and call finish() before the next step");
    copy_in(index);  // accumulated again before its bucket left: take the new sum
    return;
  }
  copy_in(index);
  q.ready = true;
  if (--b.pending == 0 && thread_.joinable()) {
    const int before = next_launch_;
    launch_ready();
    launched_early_ += next_launch_ - before;
  }
}

void DistributedDataParallel::launch_ready() {
  while (next_launch_ < num_buckets() && buckets_[static_cast<size_t>(next_launch_)].pending == 0)
    launch(next_launch_++);
}

void DistributedDataParallel::launch(int index) {
  Bucket& b = buckets_[static_cast<size_t>(index)];
  b.launched = true;
  if constexpr (ops::kCudaBuild) {
    if (b.flat.is_cuda()) b.stream = cuda::current_stream(b.flat.device().index);
  }
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(index);
      ++outstanding_;
    }
    cv_.notify_all();
    return;
  }
  comm_->all_reduce(b.flat, ReduceOp::avg);
  b.done = true;
  ++reduced_total_;
}

namespace {
// One bucket's all-reduce on the communication thread. For a CUDA bucket the thread makes the bucket's device its
// own (not a DeviceGuard: its restore to device 0 would create a context there, on every rank), and takes the
// launching thread's stream as its current one, so that the collective starts after the copies into the bucket.
void reduce_on_thread(Communicator& comm, Tensor& flat, void* stream) {
  if constexpr (ops::kCudaBuild) {
    if (flat.is_cuda()) {
      cuda::set_device(flat.device().index);
      cuda::StreamGuard sg(stream, flat.device().index);
      comm.all_reduce(flat, ReduceOp::avg);
      return;
    }
  }
  comm.all_reduce(flat, ReduceOp::avg);
}
}  // namespace

void DistributedDataParallel::comm_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_
    const int index = queue_.front();
    queue_.pop_front();
    const bool failed = error_ != nullptr;
    lk.unlock();
    std::exception_ptr err;
    if (!failed) {  // after a failure the ranks are out of step: later buckets are not reduced
      try {
        Bucket& b = buckets_[static_cast<size_t>(index)];
        reduce_on_thread(*comm_, b.flat, b.stream);
      } catch (...) {
        err = std::current_exception();
      }
    }
    lk.lock();
    if (err && !error_) error_ = err;
    buckets_[static_cast<size_t>(index)].done = true;
    ++reduced_total_;
    --outstanding_;
    cv_.notify_all();
  }
}

void DistributedDataParallel::finish() {
  if (comm_->world_size() == 1 || !sync_) return;
  // Gradients that no hook delivered (parameters unused this step, overlap off): taken now.
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& q = params_[i];
    if (q.ready) continue;
    copy_in(static_cast<int>(i));
    q.ready = true;
    --buckets_[static_cast<size_t>(q.bucket)].pending;
  }
  launch_ready();
  if (thread_.joinable()) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return outstanding_ == 0; });
    if (error_) {
      lk.unlock();
      reset_step();
      std::rethrow_exception(error_);
    }
  }
  write_back();
  reset_step();
}

void DistributedDataParallel::write_back() {
  NoGradGuard ng;
  for (Param& q : params_) {
    Tensor avg = buckets_[static_cast<size_t>(q.bucket)].flat.narrow(0, q.offset, q.p.numel()).view(q.p.shape());
    Tensor g = q.p.grad();
    if (g.defined())
      g.copy_(avg);
    else
      q.p.set_grad(avg.clone());
  }
}

void DistributedDataParallel::reset_step() {
  for (Param& q : params_) q.ready = false;
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int>(b.params.size());
    b.launched = b.done = false;
  }
  next_launch_ = 0;
}

void DistributedDataParallel::all_reduce_grads() {
  if (comm_->world_size() == 1) return;
  SIAM_CHECK(next_launch_ == 0,
             "DistributedDataParallel::all_reduce_grads: the gradient hooks already started this "
             "step's bucketed all-reduce; call finish() instead (or use overlap = false, or run the "
             "backward inside no_sync())");
  NoGradGuard ng;
  for (Param& q : params_) {
    Tensor g = q.p.grad();
    if (!g.defined()) {
      g = zeros(q.p.shape(), q.p.options());
      q.p.set_grad(g);
    } else if (!g.is_contiguous()) {
      g = g.contiguous();
      q.p.set_grad(g);
    }
    comm_->all_reduce(g, ReduceOp::avg);
  }
  reset_step();
}

}  // namespace siam::dist
