// barrier() across the ranks: no rank leaves before the last one has arrived.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "engine/dist/dist.h"

namespace siam::test {
namespace {

// Rank 1 arrives 300 ms late. Rank 0's clock starts before the first barrier, which rank 1 cannot leave before
// rank 0 has entered it: rank 0 leaves the second barrier at least 300 ms after its clock started, whatever
// the skew between the ranks' exits from the first.
TEST(DistBarrier, WaitsForTheLastRankToArrive) {
  auto& c = dist::world();
  if (c.world_size() < 2) GTEST_SKIP() << "needs 2 ranks";
  using Clock = std::chrono::steady_clock;
  const auto late = std::chrono::milliseconds(300);
  const auto t0 = Clock::now();
  c.barrier();
  if (c.rank() == 1) std::this_thread::sleep_for(late);
  c.barrier();
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  if (c.rank() == 0) {
    EXPECT_GE(waited, 0.3) << "rank 0 left the barrier before rank 1 arrived";
    EXPECT_LT(waited, 0.3 + 10.0) << "the barrier took far longer than rank 1's delay";
  }
  c.barrier();
}

}  // namespace
}  // namespace siam::test
