// DistributedDataParallel across the ranks: start-up broadcast, five SGD steps equal to five single-process
// steps on the doubled batch, bucketed overlap equal to a plain all-reduce, no_sync accumulation, parameters
// without a gradient, a model mismatch between the ranks, and a rank that hangs between buckets.
#include "engine/dist/ddp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#if SIAM_WITH_MPI
#include <mpi.h>
#endif

#include <chrono>
#include <cstdio>
#include <thread>

#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/reduce.h"
#include "engine/optim/sgd.h"
#include "tests/dist/counting_comm.h"
#include "tests/dist/dist_util.h"
#include "tests/unit/test_util.h"  // error_of

namespace siam::test {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Whether the MPI behind `c` grants MPI_THREAD_MULTIPLE when asked: Open MPI >= 3 always does (its thread
// support is no longer a build option), so on the mpi backend a communicator without it is a bug, not a
// limitation of the machine. Also checks that concurrent_ok() agrees with MPI's own answer.
bool thread_multiple_expected(const dist::Communicator& c) {
#if SIAM_WITH_MPI
  if (c.backend() != "mpi") return false;
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  EXPECT_EQ(c.concurrent_ok(), provided == MPI_THREAD_MULTIPLE) << "concurrent_ok() disagrees with MPI_Query_thread";
#if defined(OMPI_MAJOR_VERSION)
  return OMPI_MAJOR_VERSION >= 3;
#else
  return false;
#endif
#else
  (void)c;
  return false;
#endif
}

// Step `s`'s global batch: inputs (W B, 8) and regression targets (W B, 6).
std::pair<Tensor, Tensor> step_batch(int s, int64_t rows) {
  return {global_batch({rows, 8}, 1000 + s), global_batch({rows, 6}, 2000 + s)};
}

TEST(DistDDP, FiveSgdStepsMatchSingleProcessOnDoubledBatch) {
  auto& c = dist::world();
  const int64_t B = 4, rows = B * c.world_size();
  auto ref = make_mlp(false, 3);
  auto mine = make_mlp(true, 300 + c.rank());   // different on every rank: DDP broadcasts rank 0's ...
  if (c.rank() == 0) mine = make_mlp(true, 3);  // ... which equals the reference
  dist::DistributedDataParallel ddp(mine->named_parameters(), mine->named_buffers(), {.bucket_mb = 0.001});
  EXPECT_GT(ddp.num_buckets(), 1);
  const optim::SGDOptions so{.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4};
  optim::SGD opt_ref(ref->parameters(), so), opt(mine->parameters(), so);
  for (int s = 0; s < 5; ++s) {
    auto [x, y] = step_batch(s, rows);
    mse_loss(ref->forward(x), y).backward();
    opt_ref.step();
    ref->zero_grad();
    mse_loss(mine->forward(my_rows(x, c)), my_rows(y, c)).backward();  // this rank's mean
    ddp.finish();
    opt.step();
    mine->zero_grad();
  }
  auto sr = ref->state_dict(), sm = mine->state_dict();
  ASSERT_EQ(sr.size(), sm.size());
  for (size_t i = 0; i < sr.size(); ++i) {
    EXPECT_EQ(sr[i].first, sm[i].first);
    EXPECT_REL_NEAR(sm[i].second, sr[i].second, 1e-5, "after 5 steps: " << sm[i].first);
  }
}

TEST(DistDDP, BucketedOverlapEqualsPlainAllReduce) {
  auto& c = dist::world();
  const int64_t rows = 5 * c.world_size();
  auto [x, y] = step_batch(7, rows);
  auto a = make_mlp(true, 9, 8, 32, 6), b = make_mlp(true, 9, 8, 32, 6);
  dist::DistributedDataParallel da(a->named_parameters(), a->named_buffers(), {.bucket_mb = 0.0005});
  dist::DistributedDataParallel db(b->named_parameters(), b->named_buffers());
  EXPECT_EQ(da.overlapping(), c.concurrent_ok());
  ASSERT_GT(da.num_buckets(), 1);
  // Without MPI_THREAD_MULTIPLE the buckets are reduced in finish() and the overlap is not tested: that may
  // pass quietly only where the MPI cannot grant it.
  if (thread_multiple_expected(c)) {
    ASSERT_TRUE(c.concurrent_ok()) << "this Open MPI grants MPI_THREAD_MULTIPLE, but the " << c.backend()
                                   << " communicator reports no concurrent use (dist::init asked for less?): "
                                      "DDP's overlap of the all-reduces with backward would go untested";
  }
  // bucketed: launched by the hooks while backward runs
  mse_loss(a->forward(my_rows(x, c)), my_rows(y, c)).backward();
  if (c.concurrent_ok()) {
    ASSERT_TRUE(da.overlapping()) << "MPI_THREAD_MULTIPLE was granted but DDP has no communication thread";
    // every parameter gets its gradient in this backward: every bucket leaves from a hook, none in finish()
    EXPECT_EQ(da.buckets_launched_early(), da.num_buckets());
  } else {
    std::fprintf(stderr, "[rank %d] %s: no MPI_THREAD_MULTIPLE; buckets reduced in finish(), overlap untested\n",
                 c.rank(), ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  da.finish();
  EXPECT_EQ(da.buckets_reduced(), da.num_buckets());
  // plain: backward without communication, then one all-reduce per parameter
  {
    auto ns = db.no_sync();
    mse_loss(b->forward(my_rows(x, c)), my_rows(y, c)).backward();
  }
  db.all_reduce_grads();
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(pa[i].second.grad().to_vector<double>(), pb[i].second.grad().to_vector<double>()) << pa[i].first;
}

// Gradient accumulation: two micro-batches, the first under no_sync: one reduction of the summed gradients.
// DDP gets a counting communicator: it is duplicated once (DDP's own), and on that duplicate no collective runs
// during the no_sync micro-batch and exactly one all-reduce per bucket (nothing else) after it.
TEST(DistDDP, NoSyncAccumulatesThenReducesOnce) {
  auto& c = dist::world();
  const int64_t rows = 4 * c.world_size();
  auto a = make_mlp(true, 4), b = make_mlp(true, 4);  // their SyncBatchNorms use world(), not `counting`
  CountingCommunicator counting(c);
  dist::DistributedDataParallel da(a->named_parameters(), a->named_buffers(), {.bucket_mb = 0.001}, &counting);
  dist::DistributedDataParallel db(b->named_parameters(), b->named_buffers(), {.overlap = false});
  ASSERT_GT(da.num_buckets(), 1);
  EXPECT_EQ(counting.counts().duplicate, 1);
  EXPECT_EQ(counting.counts().total(), 1) << "DDP issues its collectives on its duplicate only";
  const CollectiveCounts& dup = counting.duplicate_counts(c.name() + ".ddp");
  const int64_t at_start = dup.total();  // the layout check and the broadcasts from rank 0
  EXPECT_EQ(dup.all_reduce, 0);
  int64_t during_no_sync = -1;
  for (int mb = 0; mb < 2; ++mb) {
    auto [x, y] = step_batch(20 + mb, rows);
    if (mb == 0) {
      auto ns = da.no_sync();
      mse_loss(a->forward(my_rows(x, c)), my_rows(y, c)).backward();
      EXPECT_EQ(da.buckets_reduced(), 0);
      during_no_sync = dup.total() - at_start;
    } else {
      mse_loss(a->forward(my_rows(x, c)), my_rows(y, c)).backward();
    }
    mse_loss(b->forward(my_rows(x, c)), my_rows(y, c)).backward();
  }
  da.finish();
  EXPECT_EQ(during_no_sync, 0) << "collectives ran during the no_sync micro-batch";
  EXPECT_EQ(dup.all_reduce, da.num_buckets()) << "one all-reduce per bucket, after the last micro-batch";
  EXPECT_EQ(dup.total() - at_start, da.num_buckets()) << "collectives other than the buckets' all-reduces";
  EXPECT_EQ(counting.counts().total(), 1);
  EXPECT_EQ(da.buckets_reduced(), da.num_buckets());
  db.all_reduce_grads();
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_REL_NEAR(pa[i].second.grad(), pb[i].second.grad(), 1e-6, "accumulated " << pa[i].first);
}

// A parameter used on rank 0 only, and one used nowhere: the average treats missing gradients as zero.
TEST(DistDDP, ParametersWithoutGradient) {
  auto& c = dist::world();
  Tensor used = zeros({3}).set_requires_grad(), some = zeros({3}).set_requires_grad();
  Tensor unused = zeros({2}).set_requires_grad();
  dist::DistributedDataParallel ddp({{"used", used}, {"some", some}, {"unused", unused}}, {}, {.bucket_mb = 1e-5});
  Tensor coef = from_vector({1, 2, 3}, {3});
  Tensor loss = sum(used * coef);
  if (c.rank() == 0) loss = loss + sum(some * coef);
  loss.backward();
  ddp.finish();
  EXPECT_EQ(used.grad().to_vector<double>(), coef.to_vector<double>());
  EXPECT_EQ(some.grad().to_vector<double>(), (coef / static_cast<double>(c.world_size())).to_vector<double>());
  ASSERT_TRUE(unused.grad().defined());
  EXPECT_EQ(unused.grad().to_vector<double>(), std::vector<double>(2, 0.0));
}

TEST(DistDDP, SecondBackwardWithoutFinishIsAnError) {
  auto& c = dist::world();
  Tensor p = ones({4}).set_requires_grad();
  dist::DistributedDataParallel ddp({{"p", p}}, {});
  sum(p * 2.0).backward();
  if (ddp.overlapping()) {
    try {
      sum(p * 3.0).backward();
      ADD_FAILURE() << "no error for a second backward after the bucket left";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("second gradient"));
    }
  }
  ddp.finish();
  c.barrier();
}

// A rank that hangs in computation while DDP's communication thread is mid-step: both ranks' threads have reduced
// the first two buckets together, then rank 1 stops (outside every collective) before its last bucket is ready.
// Rank 0's thread waits in that bucket's all-reduce; finish() throws within the timeout a siam::Error naming
// rank 1 instead of hanging. Rank 1 then wakes, its last all-reduce completes rank 0's abandoned one, and the
// ranks are in step again. The buckets are fed by separate backward passes, so where rank 1 stops does not
// depend on the order in which one backward reaches the parameters.
TEST(DistDDP, RankHungBetweenBucketsIsNamedByFinish) {
  auto& c = dist::world();
  Tensor p0 = zeros({3}).set_requires_grad(), p1 = zeros({3}).set_requires_grad(), p2 = zeros({3}).set_requires_grad();
  // one parameter per bucket, launched in reverse registration order: p2, p1, p0
  dist::DistributedDataParallel ddp({{"p0", p0}, {"p1", p1}, {"p2", p2}}, {}, {.bucket_mb = 1e-6});
  ASSERT_EQ(ddp.bucket_names(), (std::vector<std::vector<std::string>>{{"p2"}, {"p1"}, {"p0"}}));
  if (!ddp.overlapping()) GTEST_SKIP() << "no communication thread (MPI granted no MPI_THREAD_MULTIPLE)";
  const Tensor coef = from_vector({1, 2, 3}, {3});
  sum(p2 * coef).backward();  // bucket 0, to the communication thread at once
  sum(p1 * coef).backward();  // bucket 1
  const auto t_reduced = std::chrono::steady_clock::now();
  while (ddp.buckets_reduced() < 2 && std::chrono::steady_clock::now() - t_reduced < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(ddp.buckets_reduced(), 2) << "the first two buckets were not reduced across the ranks";
  if (c.rank() == 0) {
    const double saved = ddp.comm().timeout_s();
    ddp.comm().set_timeout_s(0.5);  // the communication thread is idle: it reads the timeout in its next wait
    const auto t0 = std::chrono::steady_clock::now();
    sum(p0 * coef).backward();  // bucket 2: its all-reduce waits for rank 1
    const std::string err = error_of([&] { ddp.finish(); });
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_THAT(err, AllOf(HasSubstr("all_reduce"), HasSubstr("'world.ddp'"), HasSubstr("timed out on rank 0"),
                           HasSubstr("rank(s) 1 did not answer")));
    EXPECT_GE(waited, 0.5);
    EXPECT_LT(waited, 2.5) << "finish() took far longer than the 0.5 s timeout (rank 1 wakes after 3 s)";
    ddp.comm().set_timeout_s(saved);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // "hung" well past rank 0's deadline
    sum(p0 * coef).backward();                                     // ... then joins the abandoned all-reduce
    ddp.finish();
    for (const Tensor& p : {p0, p1, p2}) EXPECT_EQ(p.grad().to_vector<double>(), coef.to_vector<double>());
  }
  c.barrier();
}

TEST(DistDDP, DifferentModelsOnTheRanksAreRefused) {
  auto& c = dist::world();
  Tensor p = zeros({c.rank() + 2}).set_requires_grad();
  try {
    dist::DistributedDataParallel ddp({{"p", p}}, {});
    ADD_FAILURE() << "no error for different models";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("every rank must wrap the same model"));
  }
}

TEST(DistDDP, BroadcastsBuffers) {
  auto& c = dist::world();
  auto m = make_mlp(true, 40 + c.rank());
  {
    NoGradGuard ng;
    Tensor(m->buffer("1.running_mean")).fill_(c.rank() + 1.0);
  }
  dist::DistributedDataParallel ddp(m->named_parameters(), m->named_buffers());
  EXPECT_EQ(m->buffer("1.running_mean").to_vector<double>()[0], 1.0);
  auto m0 = make_mlp(true, 40);
  EXPECT_EQ(m->param("0.weight").to_vector<double>(), m0->param("0.weight").to_vector<double>());
}

}  // namespace
}  // namespace siam::test
