// The threaded batch loader; see loader.h.
#include "engine/data/loader.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "engine/ops/dispatch.h"
#include "kernels/common/philox.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/stream.h"

namespace siam::data {

std::vector<int64_t> epoch_order(int64_t n, int64_t epoch, uint64_t seed, bool shuffle, int rank, int world_size) {
  SIAM_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "Loader: rank ", rank, " outside world of size ",
             world_size);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  if (shuffle) {
    const uint64_t stream = (0x5348ull << 48) | (static_cast<uint64_t>(epoch) & 0xFFFFFFFFFFFFull);  // "SH"
    for (int64_t i = n - 1; i > 0; --i) {
      Philox4 b = philox_block(seed, stream, static_cast<uint64_t>(i));
      const uint64_t r = (static_cast<uint64_t>(b.v[0]) << 32) | b.v[1];
      std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(r % static_cast<uint64_t>(i + 1))]);
    }
  }
  if (world_size == 1) return p;
  const int64_t per_rank = (n + world_size - 1) / world_size, total = per_rank * world_size;
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t pos = rank; pos < total; pos += world_size) mine.push_back(p[static_cast<size_t>(pos % n)]);
  return mine;
}

Loader::Loader(std::shared_ptr<const Dataset> dataset, ViewPipeline views, LoaderOptions opt)
    : dataset_(std::move(dataset)), views_(std::move(views)), opt_(opt) {
  SIAM_CHECK(dataset_ != nullptr, "Loader: no dataset");
  SIAM_CHECK(dataset_->size() > 0, "Loader: the dataset is empty (", dataset_->describe(), ")");
  SIAM_CHECK(opt.batch_size >= 1, "Loader: batch_size must be >= 1, got ", opt.batch_size);
  SIAM_CHECK(opt.threads >= 0 && opt.threads <= 256, "Loader: threads must be in [0, 256], got ", opt.threads);
  SIAM_CHECK(opt.prefetch >= 1, "Loader: prefetch must be >= 1, got ", opt.prefetch);
  SIAM_CHECK(opt.world_size >= 1 && opt.rank >= 0 && opt.rank < opt.world_size, "Loader: rank ", opt.rank,
             " outside world of size ", opt.world_size);
  SIAM_CHECK(views_.channels() == dataset_->channels(), "Loader: the view pipeline expects ", views_.channels(),
             "-channel images, the dataset gives ", dataset_->channels(), " (", dataset_->describe(), ")");
  SIAM_CHECK(batches_per_epoch() > 0, "Loader: ", dataset_->size(), " samples over ", opt.world_size,
             " rank(s) make no full batch of ", opt.batch_size, " (drop_last)");
  for (int t = 0; t < opt.threads; ++t) workers_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = dataset_->size();
  const int64_t per_rank = opt_.world_size == 1 ? n : (n + opt_.world_size - 1) / opt_.world_size;
  return opt_.drop_last ? per_rank / opt_.batch_size : (per_rank + opt_.batch_size - 1) / opt_.batch_size;
}

void Loader::start_epoch(int64_t epoch) {
  SIAM_CHECK(epoch >= 0, "Loader::start_epoch: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> order = epoch_order(dataset_->size(), epoch, opt_.seed, opt_.shuffle, opt_.rank, opt_.world_size);
  std::unique_lock<std::mutex> lk(mu_);
  ++generation_;
  ready_cv_.wait(lk, [&] { return in_flight_ == 0; });  // jobs of the previous epoch finish and are dropped
  ready_.clear();
  order_ = std::move(order);
  epoch_ = epoch;
  num_batches_ = batches_per_epoch();
  next_job_ = next_out_ = 0;
  lk.unlock();
  work_cv_.notify_all();
}

Sample Loader::get_or_skip(int64_t& index) const {
  const int64_t n = dataset_->size();
  for (int64_t attempt = 0; attempt < n; ++attempt) {
    const int64_t i = (index + attempt) % n;
    try {
      Sample s = dataset_->get(i);
      index = i;
      return s;
    } catch (const DecodeError& e) {
      std::lock_guard<std::mutex> lk(skip_mu_);
      ++skipped_;
      if (skipped_names_.insert(e.path()).second)
        std::fprintf(stderr, "warning: skipping undecodable sample %lld: %s\n", static_cast<long long>(i), e.what());
    }
  }
  SIAM_FAIL("Loader: no sample of ", dataset_->describe(), " could be decoded");
}

namespace {
bool released(const Tensor& t) { return t.impl_ptr().use_count() == 1 && t.storage().use_count() == 1; }
}  // namespace

bool Loader::take_free_buffers(int64_t batch, Batch& out) const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  if (!opt_.reuse_buffers) {
    ++allocated_;
    return false;
  }
  for (auto it = pool_.begin(); it != pool_.end(); ++it) {
    if (it->indices.numel() != batch || !released(it->labels) || !released(it->indices)) continue;
    bool free = true;
    for (const Tensor& t : it->views) free = free && released(t);
    if (!free) continue;
    std::atomic_thread_fence(std::memory_order_acquire);  // the consumer's last reads happen before our writes
    out = std::move(*it);
    pool_.erase(it);
    ++reused_;
    return true;
  }
  ++allocated_;
  return false;
}

void Loader::remember(const Batch& handed_out) {
  if (!opt_.reuse_buffers) return;
  std::lock_guard<std::mutex> lk(pool_mu_);
  const size_t cap = static_cast<size_t>(opt_.prefetch) * static_cast<size_t>(std::max(opt_.threads, 1)) + 2;
  if (pool_.size() >= cap) pool_.erase(pool_.begin());  // the consumer still holds the oldest: let it go
  pool_.push_back(handed_out);
}

int64_t Loader::batches_reused() const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  return reused_;
}

int64_t Loader::batches_allocated() const {
  std::lock_guard<std::mutex> lk(pool_mu_);
  return allocated_;
}

Batch Loader::build(const std::vector<int64_t>& indices, int64_t epoch, int64_t step) const {
  const int64_t B = static_cast<int64_t>(indices.size());
  const int C = views_.channels();
  Batch b;
  if (take_free_buffers(B, b)) {
    if constexpr (ops::kCudaBuild) {
      // The consumer may have queued an asynchronous copy of these views to the GPU and let them go before
      // it finished: wait for it before writing them again.
      if (opt_.pin_memory)
        for (const Tensor& v : b.views) cuda::pinned_host_wait(v.storage()->data());
    }
  } else {
    for (int v = 0; v < views_.num_views(); ++v)
      b.views.push_back(empty({B, C, views_.view(v).height, views_.view(v).width},
                              TensorOptions(DType::f32).with_pinned(opt_.pin_memory)));
    b.labels = empty({B}, DType::i64);
    b.indices = empty({B}, DType::i64);
  }
  b.epoch = epoch;
  b.step = step;
  int64_t* labels = b.labels.data<int64_t>();
  int64_t* ids = b.indices.data<int64_t>();
  for (int64_t i = 0; i < B; ++i) {
    int64_t index = indices[static_cast<size_t>(i)];
    try {
      Sample s = get_or_skip(index);
      SIAM_CHECK(s.image.c == C, "the dataset returned a ", s.image.c, "-channel image, expected ", C);
      for (int v = 0; v < views_.num_views(); ++v) {
        const ViewSpec& spec = views_.view(v);
        float* out = b.views[static_cast<size_t>(v)].data<float>() + i * C * spec.height * spec.width;
        views_.make_view(s.image, v, opt_.seed, static_cast<uint64_t>(epoch), index, out);
      }
      labels[i] = s.label;
      ids[i] = index;
    } catch (const std::exception& e) {
      SIAM_FAIL("Loader: sample ", index, " (epoch ", epoch, ", batch ", step, "): ", e.what());
    }
  }
  return b;
}

void Loader::worker_loop() {
  if constexpr (ops::kCudaBuild) {
    if (opt_.pin_memory) cuda::set_device(opt_.pin_device);
  }
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    const int64_t capacity = static_cast<int64_t>(opt_.prefetch) * std::max(opt_.threads, 1);
    work_cv_.wait(lk, [&] { return stop_ || (next_job_ < num_batches_ && next_job_ < next_out_ + capacity); });
    if (stop_) return;
    const int64_t job = next_job_++;
    const uint64_t gen = generation_;
    const int64_t epoch = epoch_;
    const int64_t begin = job * opt_.batch_size;
    const int64_t end = std::min<int64_t>(begin + opt_.batch_size, static_cast<int64_t>(order_.size()));
    std::vector<int64_t> ids(order_.begin() + begin, order_.begin() + end);
    ++in_flight_;
    lk.unlock();
    Ready r;
    try {
      r.batch = build(ids, epoch, job);
    } catch (...) {
      r.error = std::current_exception();
    }
    lk.lock();
    --in_flight_;
    if (gen == generation_) ready_.emplace(job, std::move(r));
    ready_cv_.notify_all();
  }
}

bool Loader::next(Batch& out) {
  std::unique_lock<std::mutex> lk(mu_);
  SIAM_CHECK(epoch_ >= 0, "Loader::next: call start_epoch(epoch) first");
  if (next_out_ >= num_batches_) return false;
  const int64_t job = next_out_;
  if (workers_.empty()) {
    const int64_t begin = job * opt_.batch_size;
    const int64_t end = std::min<int64_t>(begin + opt_.batch_size, static_cast<int64_t>(order_.size()));
    std::vector<int64_t> ids(order_.begin() + begin, order_.begin() + end);
    ++next_out_;
    const int64_t epoch = epoch_;
    lk.unlock();
    out = Batch();  // release the previous batch first, so its buffers can take this one
    out = build(ids, epoch, job);
    remember(out);
    return true;
  }
  ready_cv_.wait(lk, [&] { return ready_.count(job) > 0; });
  Ready r = std::move(ready_.at(job));
  ready_.erase(job);
  ++next_out_;
  lk.unlock();
  work_cv_.notify_all();
  if (r.error) std::rethrow_exception(r.error);
  out = std::move(r.batch);
  remember(out);
  return true;
}

int64_t Loader::skipped() const {
  std::lock_guard<std::mutex> lk(skip_mu_);
  return skipped_;
}

std::vector<std::string> Loader::skipped_names() const {
  std::lock_guard<std::mutex> lk(skip_mu_);
  return {skipped_names_.begin(), skipped_names_.end()};
}

}  // namespace siam::data
