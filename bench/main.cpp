// Benchmark entry point: the same BLAS kernels as the siam program (engine/core/blas.h), then Google Benchmark,
// with three guards for the runs on a GPU, so that one faulting kernel does not cost the figures of the others.
// Each finishes the --benchmark_out JSON with the benchmarks reported so far, prints a "[siam-guard] ..." line
// and stops the process; scripts/gpu_check.sh then runs the benchmarks that did not run yet in a fresh process,
// without the one at fault:
//  - after each benchmark, a CUDA context poisoned by a kernel fault (siam::cuda_sticky_error): exit code 87,
//    "[siam-guard] sticky after <benchmark>: <error>";
//  - an exception that leaves a benchmark (a failed CUDA check inside it): exit code 88,
//    "[siam-guard] exception: <what>";
//  - no benchmark reported for SIAM_BENCH_STALL_S seconds (unset or 0: no watchdog, as some CPU benchmarks run
//    for minutes on 2 cores; gpu_check sets 90): exit code 86,
//    "[siam-guard] hung: nothing reported for <s> s (the last benchmark reported: <name>)".
// SIAM_BENCH_SIMULATE=<benchmark name>:sticky|throw|hang[,...] makes those benchmarks' reports end so, which tests the
// guards and gpu_check.sh's resume on a machine without a GPU (tests/gpu_check_resume_test.sh).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/core/blas.h"
#include "engine/core/cuda_health.h"
#include "tests/simulated_faults.h"

namespace {

constexpr int kExitHung = 86;
constexpr int kExitSticky = 87;
constexpr int kExitException = 88;

std::mutex g_mu;                                 // guards everything below
benchmark::BenchmarkReporter* g_file = nullptr;  // the JSON reporter, when --benchmark_out is given
std::string g_last = "(none)";                   // the last benchmark reported
std::string g_pending;                           // a sticky error seen by the display, for the file reporter
auto g_reported = std::chrono::steady_clock::now();
std::map<std::string, std::string> g_simulate;  // benchmark -> throw, hang or sticky (SIAM_BENCH_SIMULATE)

benchmark::BenchmarkReporter* g_json_display = nullptr;  // the display, when it writes JSON to stdout

// Finishes the JSON file (and a JSON display) with what was reported, prints the guard's line and stops.
// Called with g_mu held.
[[noreturn]] void stop(int code, const std::string& line) {
  for (benchmark::BenchmarkReporter* r : {g_file, g_json_display}) {
    if (!r) continue;
    r->Finalize();
    r->GetOutputStream().flush();
  }
  std::fflush(stdout);
  std::fprintf(stderr, "[siam-guard] %s\n", line.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

// A simulated fault of SIAM_BENCH_SIMULATE, before the JSON reporter sees the benchmark (a throw or a hang
// stands for a fault inside it).
void simulate_before(const std::string& name) {
  auto it = g_simulate.find(name);
  if (it == g_simulate.end()) return;
  if (it->second == "throw") throw std::runtime_error("simulated exception in " + name + " (SIAM_BENCH_SIMULATE)");
  if (it->second == "hang")
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

// Called with g_mu held after the display reported a benchmark: looks for a poisoned context.
void check_after(const std::string& name) {
  g_last = name;
  g_reported = std::chrono::steady_clock::now();
  if (auto it = g_simulate.find(name); it != g_simulate.end() && it->second == "sticky")
    g_pending = "simulated (SIAM_BENCH_SIMULATE)";
  if (g_pending.empty()) g_pending = siam::cuda_sticky_error();
}

// The display on stdout: the console table, or JSON with --benchmark_format=json (a reporter passed to
// RunSpecifiedBenchmarks replaces the one that flag would choose, so the flag is honoured here).
template <class Base> class Display : public Base {
 public:
  using Base::Base;
  using Run = benchmark::BenchmarkReporter::Run;
  void ReportRuns(const std::vector<Run>& runs) override {
    Base::ReportRuns(runs);
    if (runs.empty()) return;
    const std::string name = runs.front().benchmark_name();
    simulate_before(name);
    std::lock_guard<std::mutex> lock(g_mu);
    check_after(name);
    if (!g_pending.empty() && !g_file) stop(kExitSticky, "sticky after " + g_last + ": " + g_pending);
  }
};

class File : public benchmark::JSONReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    JSONReporter::ReportRuns(runs);
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g_pending.empty()) stop(kExitSticky, "sticky after " + g_last + ": " + g_pending);
  }
};

void on_terminate() {
  std::string what = "unknown exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
  }
  std::lock_guard<std::mutex> lock(g_mu);
  stop(kExitException, "exception after " + g_last + ": " + what);
}

std::atomic<bool> g_done{false};  // main is returning: the watchdog ends

void watch(double stall_s) {
  while (!g_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    std::lock_guard<std::mutex> lock(g_mu);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_reported).count();
    if (s > stall_s)
      stop(kExitHung,
           "hung: nothing reported for " + std::to_string(int(s)) + " s (the last benchmark reported: " + g_last + ")");
  }
}

}  // namespace

int main(int argc, char** argv) {
  siam::ensure_fast_blas(argv);
  benchmark::AddCustomContext("blas", siam::blas_info());
  bool file_out = false, json_display = false;
  for (int i = 1; i < argc; ++i) {
    file_out |= std::strncmp(argv[i], "--benchmark_out=", 16) == 0;
    json_display |= std::strcmp(argv[i], "--benchmark_format=json") == 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  g_simulate = siam::test::simulated_faults("SIAM_BENCH_SIMULATE", "throw");
  const char* st = std::getenv("SIAM_BENCH_STALL_S");
  const double stall_s = st && *st ? std::atof(st) : 0.0;
  g_reported = std::chrono::steady_clock::now();
  std::thread watcher;
  if (stall_s > 0) watcher = std::thread(watch, stall_s);
  std::set_terminate(on_terminate);

  Display<benchmark::ConsoleReporter> console(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                                      : benchmark::ConsoleReporter::OO_None);
  Display<benchmark::JSONReporter> json;
  benchmark::BenchmarkReporter* display = &console;
  if (json_display) {
    display = &json;
    std::lock_guard<std::mutex> lock(g_mu);
    g_json_display = &json;
  }
  File file;
  if (file_out) {
    g_file = &file;
    benchmark::RunSpecifiedBenchmarks(display, &file);
  } else {
    benchmark::RunSpecifiedBenchmarks(display);
  }
  benchmark::Shutdown();
  g_done = true;
  if (watcher.joinable()) watcher.join();
  return 0;
}
