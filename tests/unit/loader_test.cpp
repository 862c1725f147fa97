// The threaded loader: identical batches for 0, 1, 2 and 4 threads, shuffling, drop_last, sharding,
// errors in workers, skipped undecodable samples, shutdown.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "engine/data/loader.h"

namespace siam {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<data::Dataset> synthetic(int64_t n, int c = 3) {
  return std::make_shared<data::SyntheticDataset>(data::SyntheticOptions{.n = n, .h = 20, .w = 24, .c = c, .classes = 4, .seed = 9});
}

std::vector<data::ViewSpec> two_views_plus_small() {
  auto a = data::simclr_view(16, 3);  // count 2
  a.blur.p = 0.5;
  a.solarize.p = 0.3;
  a.mean = {0.5f};
  a.std = {0.25f};
  data::ViewSpec small = a;
  small.count = 1;
  small.height = small.width = 8;
  return {a, small};
}

std::vector<data::Batch> run_epochs(int threads, int64_t n, int64_t batch, int epochs, bool drop_last = true) {
  data::Loader loader(synthetic(n), data::ViewPipeline(two_views_plus_small(), 3),
                      {.batch_size = batch, .shuffle = true, .drop_last = drop_last, .seed = 5, .threads = threads});
  std::vector<data::Batch> out;
  for (int e = 0; e < epochs; ++e) {
    loader.start_epoch(e);
    data::Batch b;
    while (loader.next(b)) out.push_back(b);
  }
  return out;
}

TEST(Loader, IdenticalBatchesForAnyThreadCount) {
  auto ref = run_epochs(0, 45, 8, 2);
  ASSERT_EQ(ref.size(), 2u * (45 / 8));
  EXPECT_EQ(ref[0].views.size(), 3u);
  EXPECT_EQ(ref[0].views[0].shape(), (Shape{8, 3, 16, 16}));
  EXPECT_EQ(ref[0].views[2].shape(), (Shape{8, 3, 8, 8}));
  for (int threads : {1, 2, 4}) {
    auto got = run_epochs(threads, 45, 8, 2);
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ(got[i].step, ref[i].step);
      EXPECT_EQ(got[i].indices.to_vector<int64_t>(), ref[i].indices.to_vector<int64_t>()) << threads;
      EXPECT_EQ(got[i].labels.to_vector<int64_t>(), ref[i].labels.to_vector<int64_t>());
      for (size_t v = 0; v < ref[i].views.size(); ++v)
        ASSERT_EQ(got[i].views[v].to_vector<float>(), ref[i].views[v].to_vector<float>())
            << "threads " << threads << " batch " << i << " view " << v;
    }
  }
  // the two views of one sample differ, and an epoch changes the views of the same sample
  auto v0 = ref[0].views[0].to_vector<float>(), v1 = ref[0].views[1].to_vector<float>();
  EXPECT_NE(v0, v1);
}

TEST(Loader, ShufflesPerEpochAndDropsLast) {
  auto e = run_epochs(2, 21, 4, 2, /*drop_last=*/false);
  ASSERT_EQ(e.size(), 12u);  // 6 batches per epoch, the last of 1 sample
  EXPECT_EQ(e[5].indices.numel(), 1);
  std::vector<int64_t> first, second;
  for (int i = 0; i < 6; ++i) {
    auto a = e[static_cast<size_t>(i)].indices.to_vector<int64_t>(), b = e[static_cast<size_t>(6 + i)].indices.to_vector<int64_t>();
    first.insert(first.end(), a.begin(), a.end());
    second.insert(second.end(), b.begin(), b.end());
  }
  EXPECT_NE(first, second);
  std::sort(first.begin(), first.end());
  for (int64_t i = 0; i < 21; ++i) EXPECT_EQ(first[static_cast<size_t>(i)], i);  // a permutation
  EXPECT_EQ(e[0].epoch, 0);
  EXPECT_EQ(e[6].epoch, 1);
  // labels follow the indices (synthetic label = index % 4)
  auto ids = e[0].indices.to_vector<int64_t>(), labels = e[0].labels.to_vector<int64_t>();
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(labels[i], ids[i] % 4);
  auto d = run_epochs(1, 21, 4, 1, /*drop_last=*/true);
  EXPECT_EQ(d.size(), 5u);
}

TEST(Loader, ShardsByRank) {
  std::vector<int64_t> all;
  for (int r = 0; r < 3; ++r) {
    auto mine = data::epoch_order(20, 4, 1, true, r, 3);
    EXPECT_EQ(mine.size(), 7u);  // ceil(20 / 3), padded by wrapping
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::set<int64_t> uniq(all.begin(), all.end());
  EXPECT_EQ(uniq.size(), 20u);
  EXPECT_EQ(all.size(), 21u);
  // same seed and epoch on every rank: the shards come from one permutation
  auto full = data::epoch_order(20, 4, 1, true, 0, 1);
  EXPECT_EQ(data::epoch_order(20, 4, 1, true, 1, 3)[0], full[1]);
  data::Loader l(synthetic(20), data::ViewPipeline({data::simclr_view(8, 3)}, 3),
                 {.batch_size = 3, .seed = 1, .threads = 2, .rank = 2, .world_size = 3});
  EXPECT_EQ(l.batches_per_epoch(), 2);
  l.start_epoch(4);
  data::Batch b;
  ASSERT_TRUE(l.next(b));
  EXPECT_EQ(b.indices.to_vector<int64_t>()[0], data::epoch_order(20, 4, 1, true, 2, 3)[0]);
}

// A dataset that fails on chosen indices: DecodeError (skip) or a plain error (fatal).
class Flaky : public data::Dataset {
 public:
  Flaky(std::shared_ptr<data::Dataset> base, std::set<int64_t> undecodable, int64_t fatal)
      : base_(std::move(base)), bad_(std::move(undecodable)), fatal_(fatal) {}
  int64_t size() const override { return base_->size(); }
  int channels() const override { return base_->channels(); }
  data::Sample get(int64_t i) const override {
    if (bad_.count(i)) throw data::DecodeError("img" + std::to_string(i) + ".jpg", "cannot decode image 'img" + std::to_string(i) + ".jpg'");
    SIAM_CHECK(i != fatal_, "disk on fire");
    return base_->get(i);
  }
  std::string describe() const override { return "flaky"; }

 private:
  std::shared_ptr<data::Dataset> base_;
  std::set<int64_t> bad_;
  int64_t fatal_;
};

TEST(Loader, UndecodableSamplesAreSkippedAndCounted) {
  auto ds = std::make_shared<Flaky>(synthetic(16), std::set<int64_t>{3, 4, 9}, -1);
  for (int threads : {0, 3}) {
    data::Loader l(ds, data::ViewPipeline({data::simclr_view(8, 3)}, 3),
                   {.batch_size = 4, .shuffle = false, .seed = 2, .threads = threads});
    l.start_epoch(0);
    data::Batch b;
    std::vector<int64_t> ids;
    while (l.next(b)) {
      auto v = b.indices.to_vector<int64_t>();
      ids.insert(ids.end(), v.begin(), v.end());
    }
    ASSERT_EQ(ids.size(), 16u);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 0);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 9), 0);
    EXPECT_EQ(ids[3], 5);  // 3 and 4 are replaced by the next good index
    EXPECT_EQ(ids[4], 5);
    EXPECT_EQ(ids[9], 10);
    EXPECT_EQ(l.skipped(), 4);  // 3 (twice: 3 -> 4 -> 5), 4, 9
    EXPECT_EQ(l.skipped_names(), (std::vector<std::string>{"img3.jpg", "img4.jpg", "img9.jpg"}));
  }
}

TEST(Loader, WorkerErrorIsRethrownWithTheSampleIndex) {
  auto ds = std::make_shared<Flaky>(synthetic(16), std::set<int64_t>{}, 6);
  for (int threads : {0, 2}) {
    data::Loader l(ds, data::ViewPipeline({data::simclr_view(8, 3)}, 3),
                   {.batch_size = 4, .shuffle = false, .seed = 2, .threads = threads});
    l.start_epoch(0);
    data::Batch b;
    ASSERT_TRUE(l.next(b));  // batch 0 is fine
    try {
      l.next(b);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("sample 6 (epoch 0, batch 1): disk on fire"));
    }
    EXPECT_TRUE(l.next(b));  // the loader goes on with batch 2
    EXPECT_EQ(b.step, 2);
  }
}

TEST(Loader, ShutsDownCleanlyMidEpochAndRestartsEpochs) {
  for (int k = 0; k < 5; ++k) {
    data::Loader l(synthetic(64), data::ViewPipeline(two_views_plus_small(), 3),
                   {.batch_size = 4, .seed = 1, .threads = 4, .prefetch = 3});
    l.start_epoch(0);
    data::Batch b;
    ASSERT_TRUE(l.next(b));
    l.start_epoch(1);  // drops what was prepared for epoch 0
    ASSERT_TRUE(l.next(b));
    EXPECT_EQ(b.epoch, 1);
    EXPECT_EQ(b.step, 0);
  }  // destructor joins with work in flight
  data::Loader idle(synthetic(8), data::ViewPipeline({data::simclr_view(8, 3)}, 3), {.batch_size = 4, .threads = 2});
  data::Batch b;
  EXPECT_THROW(idle.next(b), Error);  // no epoch started
}

TEST(Loader, ReusesReleasedBuffersWithoutChangingBatches) {
  // The reference keeps every batch (no buffer can be reused); the consumer below copies each batch out and
  // drops it, so the loader refills the same few buffers.
  auto ref = run_epochs(0, 64, 4, 2);
  for (int threads : {0, 1, 3}) {
    data::Loader l(synthetic(64), data::ViewPipeline(two_views_plus_small(), 3),
                   {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 5, .threads = threads, .prefetch = 2});
    std::set<const void*> buffers;
    size_t i = 0;
    for (int e = 0; e < 2; ++e) {
      l.start_epoch(e);
      data::Batch b;
      while (l.next(b)) {
        buffers.insert(b.views[0].raw_data());
        ASSERT_LT(i, ref.size());
        EXPECT_EQ(b.indices.to_vector<int64_t>(), ref[i].indices.to_vector<int64_t>());
        EXPECT_EQ(b.labels.to_vector<int64_t>(), ref[i].labels.to_vector<int64_t>());
        for (size_t v = 0; v < b.views.size(); ++v)
          ASSERT_EQ(b.views[v].to_vector<float>(), ref[i].views[v].to_vector<float>()) << threads << " batch " << i;
        ++i;
      }
    }
    EXPECT_EQ(i, ref.size());
    // at most the prefetched batches, the one held, and one being released
    EXPECT_LE(buffers.size(), static_cast<size_t>(2 * std::max(threads, 1) + 3)) << threads;
    EXPECT_GT(l.batches_reused(), 0) << threads;
    EXPECT_EQ(l.batches_reused() + l.batches_allocated(), static_cast<int64_t>(ref.size()));
  }
  // A batch the consumer keeps (or a view of it) is never overwritten.
  data::Loader l(synthetic(64), data::ViewPipeline(two_views_plus_small(), 3), {.batch_size = 4, .seed = 5, .threads = 2});
  l.start_epoch(0);
  data::Batch first;
  ASSERT_TRUE(l.next(first));
  Tensor kept = first.views[1].narrow(0, 1, 2);  // a view: keeps the storage alive
  const auto snapshot = kept.to_vector<float>();
  const void* base = first.views[1].raw_data();
  first = data::Batch();
  data::Batch b;
  std::set<const void*> later;
  while (l.next(b)) later.insert(b.views[1].raw_data());
  EXPECT_EQ(kept.to_vector<float>(), snapshot);
  EXPECT_EQ(later.count(base), 0u);
}

TEST(Loader, BadOptions) {
  auto views = data::ViewPipeline({data::simclr_view(8, 3)}, 3);
  EXPECT_THROW(data::Loader(synthetic(8), views, {.batch_size = 0}), Error);
  EXPECT_THROW(data::Loader(synthetic(8), views, {.batch_size = 16}), Error);  // drop_last: no full batch
  EXPECT_THROW(data::Loader(synthetic(8, 1), views, {.batch_size = 4}), Error);  // channels mismatch
  EXPECT_THROW(data::Loader(synthetic(8), views, {.batch_size = 4, .rank = 2, .world_size = 2}), Error);
}

}  // namespace
}  // namespace siam

namespace siam {
namespace {

// pin_memory: pinned batches (the same values) with a CUDA device; without one, a clear error naming pinned
// memory instead of a silent pageable fallback.
TEST(Loader, PinMemoryGivesPinnedBatchesOrAClearError) {
  data::Loader plain(synthetic(8), data::ViewPipeline(two_views_plus_small(), 3),
                     {.batch_size = 4, .seed = 5, .threads = 0});
  data::Loader pinned(synthetic(8), data::ViewPipeline(two_views_plus_small(), 3),
                      {.batch_size = 4, .seed = 5, .threads = 0, .pin_memory = true});
  plain.start_epoch(0);
  pinned.start_epoch(0);
  data::Batch a, b;
  ASSERT_TRUE(plain.next(a));
  if (!cuda_available()) {
    try {
      pinned.next(b);
      FAIL() << "pin_memory without a CUDA device was accepted";
    } catch (const Error& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr("pinned"));
    }
    return;
  }
  ASSERT_TRUE(pinned.next(b));
  for (size_t v = 0; v < a.views.size(); ++v) {
    EXPECT_TRUE(b.views[v].is_pinned());
    EXPECT_EQ(a.views[v].to_vector<float>(), b.views[v].to_vector<float>());
  }
}

}  // namespace
}  // namespace siam
