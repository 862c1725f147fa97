// Test entry point: the same BLAS kernels as the siam program (engine/core/blas.h), then GoogleTest, with two
// guards for the runs on a GPU, where one faulting kernel would otherwise cost the whole run's results:
//  - after each test, a CUDA context poisoned by a kernel fault (siam::cuda_sticky_error) stops the process with
//    exit code 87 and the line "[siam-guard] sticky <Suite.Test>: <error>": every later test would only fail
//    with the same error;
//  - a test that runs longer than SIAM_TEST_TIMEOUT_S seconds (default 180; 0 turns the watchdog off) stops it
//    with exit code 86 and the line "[siam-guard] hung <Suite.Test> after <s> s" (a kernel that never ends).
// scripts/gpu_check.sh then runs the tests that did not run yet in a fresh process, without the one at fault.
// SIAM_TEST_SIMULATE=<Suite.Test>:sticky|hang|crash[,...] makes those tests end so (after they ran), which tests
// the guards and gpu_check.sh's resume on a machine without a GPU (tests/gpu_check_resume_test.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "engine/core/blas.h"
#include "engine/core/cuda_health.h"
#include "tests/simulated_faults.h"

namespace {

constexpr int kExitHung = 86;
constexpr int kExitSticky = 87;

std::string full_name(const testing::TestInfo& t) { return std::string(t.test_suite_name()) + "." + t.name(); }

[[noreturn]] void stop(int code, const std::string& line) {
  std::fflush(stdout);
  std::fprintf(stderr, "[siam-guard] %s\n", line.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

class Guard : public testing::EmptyTestEventListener {
 public:
  explicit Guard(double timeout_s) : timeout_s_(timeout_s) {
    simulate_ = siam::test::simulated_faults("SIAM_TEST_SIMULATE", "crash");
    if (timeout_s_ > 0) watcher_ = std::thread([this] { watch(); });
  }
  ~Guard() override {  // at exit, when GoogleTest deletes its listeners
    done_ = true;
    if (watcher_.joinable()) watcher_.join();
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  void OnTestStart(const testing::TestInfo& t) override {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = full_name(t);
    started_ = std::chrono::steady_clock::now();
  }

  void OnTestEnd(const testing::TestInfo& t) override {
    const std::string name = full_name(t);
    {
      std::lock_guard<std::mutex> lock(mu_);
      current_.clear();
    }
    if (auto it = simulate_.find(name); it != simulate_.end()) {
      const std::string& kind = it->second;
      if (kind == "crash") std::abort();
      if (kind == "hang") {
        {
          std::lock_guard<std::mutex> lock(mu_);
          current_ = name;
          started_ = std::chrono::steady_clock::now();
        }
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      if (kind == "sticky") stop(kExitSticky, "sticky " + name + ": simulated (SIAM_TEST_SIMULATE)");
    }
    const std::string err = siam::cuda_sticky_error();
    if (!err.empty()) stop(kExitSticky, "sticky " + name + ": " + err);
  }

 private:
  void watch() {
    while (!done_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      std::lock_guard<std::mutex> lock(mu_);
      if (current_.empty()) continue;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      if (s > timeout_s_) stop(kExitHung, "hung " + current_ + " after " + std::to_string(int(s)) + " s");
    }
  }

  double timeout_s_;
  std::map<std::string, std::string> simulate_;  // test -> crash, hang or sticky
  std::mutex mu_;
  std::string current_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

}  // namespace

int main(int argc, char** argv) {
  siam::ensure_fast_blas(argv);
  ::testing::InitGoogleTest(&argc, argv);
  const char* t = std::getenv("SIAM_TEST_TIMEOUT_S");
  const double timeout_s = t && *t ? std::atof(t) : 180.0;
  // Appended after the default printer, so the "[ RUN      ]" line is out before a test can hang or crash.
  ::testing::UnitTest::GetInstance()->listeners().Append(new Guard(timeout_s));
  return RUN_ALL_TESTS();
}
