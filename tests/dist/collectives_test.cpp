// The communicator's collectives across the ranks against hand computations, shape checks, and the
// timeout that names a hung rank.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "engine/dist/dist.h"
#include "tests/unit/test_util.h"

namespace siam::test {
namespace {

using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;

// Rank r's tensor: value(r, i) = 100 r + i (exact in f32), shape (rows, 3).
Tensor rank_tensor(int r, int64_t rows, DType dt = DType::f32) {
  std::vector<double> v(static_cast<size_t>(rows * 3));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 100.0 * r + static_cast<double>(i);
  return from_vector(v, {rows, 3}, dt);
}

// MPI, or MPI for CPU tensors and NCCL for CUDA tensors in a build with NCCL on a machine with a GPU per rank.
TEST(DistCollectives, WorldIsMpi) {
  auto& c = dist::world();
  EXPECT_THAT(c.backend(), AnyOf("mpi", "nccl+mpi"));
  EXPECT_GE(c.world_size(), 2);
  EXPECT_EQ(dist::is_main(), c.rank() == 0);
  EXPECT_GE(c.local_rank(), 0);
  EXPECT_LT(c.local_rank(), c.world_size());
}

TEST(DistCollectives, AllReduceSumAvgMax) {
  auto& c = dist::world();
  const int W = c.world_size(), me = c.rank();
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::i32}) {
    Tensor s = rank_tensor(me, 4, dt), m = rank_tensor(me, 4, dt);
    c.all_reduce(s, dist::ReduceOp::sum);
    c.all_reduce(m, dist::ReduceOp::max);
    auto sv = s.to_vector<double>(), mv = m.to_vector<double>();
    for (size_t i = 0; i < sv.size(); ++i) {
      double want = 0;
      for (int r = 0; r < W; ++r) want += 100.0 * r + static_cast<double>(i);
      EXPECT_EQ(sv[i], want) << dtype_name(dt) << " sum at " << i;
      EXPECT_EQ(mv[i], 100.0 * (W - 1) + static_cast<double>(i)) << dtype_name(dt) << " max at " << i;
    }
  }
  Tensor a = rank_tensor(me, 2);
  c.all_reduce(a, dist::ReduceOp::avg);
  auto av = a.to_vector<double>();
  for (size_t i = 0; i < av.size(); ++i) EXPECT_DOUBLE_EQ(av[i], 50.0 * (W - 1) + static_cast<double>(i));
  // u8 max, and a scalar
  Tensor u = full({5}, me + 3, DType::u8);
  c.all_reduce(u, dist::ReduceOp::max);
  EXPECT_EQ(u.to_vector<int64_t>()[4], W + 2);
  Tensor sc = scalar_tensor(me + 1.0);
  c.all_reduce(sc, dist::ReduceOp::sum);
  EXPECT_EQ(sc.item(), W * (W + 1) / 2.0);
}

TEST(DistCollectives, AllGatherInRankOrder) {
  auto& c = dist::world();
  const int W = c.world_size();
  Tensor g = c.all_gather(rank_tensor(c.rank(), 2));
  ASSERT_EQ(g.shape(), (Shape{2 * W, 3}));
  auto v = g.to_vector<double>();
  for (int r = 0; r < W; ++r)
    for (int i = 0; i < 6; ++i) EXPECT_EQ(v[static_cast<size_t>(r * 6 + i)], 100.0 * r + i);
  // a non-contiguous input, and bf16 (moved as 16-bit words)
  Tensor t = rank_tensor(c.rank(), 3).t();  // (3, 3) transposed view
  Tensor gt = c.all_gather(t);
  EXPECT_EQ(gt.slice(0, 3 * c.rank(), 3 * c.rank() + 3).to_vector<double>(), t.to_vector<double>());
  Tensor b = c.all_gather(rank_tensor(c.rank(), 1, DType::bf16));
  EXPECT_EQ(b.dtype(), DType::bf16);
  EXPECT_EQ(b.to_vector<double>()[3 * (W - 1)], 100.0 * (W - 1));
}

TEST(DistCollectives, ReduceScatterBlocks) {
  auto& c = dist::world();
  const int W = c.world_size(), me = c.rank();
  Tensor t = rank_tensor(me, 2 * W);  // (2W, 3): every rank's row k holds 100 r + 3k + j
  Tensor s = c.reduce_scatter(t, dist::ReduceOp::sum);
  ASSERT_EQ(s.shape(), (Shape{2, 3}));
  auto v = s.to_vector<double>();
  for (int i = 0; i < 6; ++i) {
    double want = 0;
    for (int r = 0; r < W; ++r) want += 100.0 * r + 6 * me + i;
    EXPECT_EQ(v[static_cast<size_t>(i)], want);
  }
  Tensor a = c.reduce_scatter(t, dist::ReduceOp::avg);
  EXPECT_DOUBLE_EQ(a.to_vector<double>()[0], 50.0 * (W - 1) + 6 * me);
  Tensor m = c.reduce_scatter(t, dist::ReduceOp::max);
  EXPECT_EQ(m.to_vector<double>()[0], 100.0 * (W - 1) + 6 * me);
}

TEST(DistCollectives, BroadcastFromEveryRoot) {
  auto& c = dist::world();
  for (int root = 0; root < c.world_size(); ++root) {
    Tensor t = rank_tensor(c.rank(), 2, DType::f64);
    c.broadcast(t, root);
    EXPECT_EQ(t.to_vector<double>(), rank_tensor(root, 2, DType::f64).to_vector<double>()) << "root " << root;
  }
  c.barrier();
}

TEST(DistCollectives, DuplicateIsIndependent) {
  auto& c = dist::world();
  auto d = c.duplicate("dup");
  EXPECT_EQ(d->rank(), c.rank());
  EXPECT_EQ(d->world_size(), c.world_size());
  EXPECT_EQ(d->name(), "dup");
  Tensor t = full({3}, 1.0);
  d->all_reduce(t, dist::ReduceOp::sum);
  EXPECT_EQ(t.to_vector<double>()[2], c.world_size());
}

TEST(DistCollectives, ErrorsNameTheRankAndShapes) {
  auto& c = dist::world();
  // different shapes on the ranks: all_gather refuses instead of mixing rows
  Tensor t = zeros({c.rank() + 1, 2});
  EXPECT_THAT(
      error_of([&] { c.all_gather(t); }),
      AllOf(HasSubstr("all_gather"), HasSubstr("rank " + std::to_string(c.rank()) + " has f32 " + shape_str(t.shape())),
            HasSubstr("but rank " + std::to_string(c.rank() == 0 ? 1 : 0) + " has f32 [")));
  EXPECT_THAT(error_of([&] {
                c.reduce_scatter(zeros({c.world_size() + 1, 2}), dist::ReduceOp::sum);
              }),
              HasSubstr("does not split into"));
  Tensor nc = zeros({3, 4}).t();
  EXPECT_THAT(error_of([&] { c.all_reduce(nc, dist::ReduceOp::sum); }), HasSubstr("contiguous"));
  Tensor i = zeros({2}, DType::i64);
  EXPECT_THAT(error_of([&] { c.all_reduce(i, dist::ReduceOp::avg); }), HasSubstr("avg needs a floating"));
  Tensor h = zeros({2}, DType::bf16);
  EXPECT_THAT(error_of([&] { c.all_reduce(h, dist::ReduceOp::sum); }), HasSubstr("bf16"));
  Tensor f = zeros({2});
  EXPECT_THAT(error_of([&] { c.broadcast(f, c.world_size()); }), HasSubstr("outside world"));
  c.barrier();  // the ranks are still in step
}

// A rank that never arrives: the others stop after the timeout with an error naming it, and the world
// recovers once the late rank joins (the abandoned collective completes).
TEST(DistCollectives, HungRankTimesOutNamingIt) {
  auto& c = dist::world();
  const double saved = c.timeout_s();
  Tensor t = full({4}, 1.0);
  if (c.rank() == 0) {
    c.set_timeout_s(0.3);
    const auto t0 = std::chrono::steady_clock::now();
    std::string err = error_of([&] { c.all_reduce(t, dist::ReduceOp::sum); });
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_THAT(err, AllOf(HasSubstr("all_reduce"), HasSubstr("timed out on rank 0"), HasSubstr("'world'"),
                           HasSubstr("rank(s) 1"), HasSubstr("did not answer")));
    EXPECT_GE(waited, 0.3);
    c.set_timeout_s(saved);
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // "hung" past rank 0's deadline
    c.all_reduce(t, dist::ReduceOp::sum);                          // ... then joins the abandoned collective
    EXPECT_EQ(t.to_vector<double>()[0], c.world_size());
  }
  c.barrier();
}

// A rank waiting in another communicator's collective answers the query: it is named as behind.
TEST(DistCollectives, RankInAnotherCollectiveIsNamedBehind) {
  auto& c = dist::world();
  auto other = c.duplicate("other");
  const double saved = c.timeout_s();
  Tensor t = full({4}, 1.0);
  if (c.rank() == 0) {
    c.set_timeout_s(0.3);
    std::string err = error_of([&] { c.all_reduce(t, dist::ReduceOp::sum); });
    EXPECT_THAT(err, AllOf(HasSubstr("timed out on rank 0"), HasSubstr("have not reached it"),
                           HasSubstr("1 (at collective #")));
    c.set_timeout_s(saved);
    other->barrier();  // releases rank 1, which then completes the abandoned all_reduce
  } else {
    other->barrier();
    c.all_reduce(t, dist::ReduceOp::sum);
  }
  c.barrier();
}

}  // namespace
}  // namespace siam::test
