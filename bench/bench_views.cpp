// View pipeline throughput: SimCLR's two views per image through the threaded Loader.
//
//   BM_views_simclr_cpu/<size>/<threads>   size 28: Fashion-MNIST-like 28x28x1 (crop, flip, jitter b/c)
//                                          size 32: CIFAR-like 32x32x3 (crop, flip, jitter b/c/s/h, gray)
//                                          size 224: 256x256 JPEGs decoded by stb_image each time, then
//                                                    crop to 224, flip, jitter, gray, blur (p 0.5, k 23)
//   BM_views_decode_cpu/256/1              the JPEG decode alone (256x256x3), to split the 224 figure
// Counters: items_per_second = source images per second (each gives 2 views); bytes = view bytes written
// per second (2 * 3 * size^2 * 4 per image for RGB); bytes_peak = the prefetched batch buffers
// (threads * prefetch batches of 2 views).
// Each iteration takes one batch of 64 images from the loader (restarting the epoch when exhausted), so
// the worker threads run ahead exactly as in training. Compare with bench/compare/torchvision_views.py.
// Run: build/bench/siam_bench --benchmark_filter=BM_views
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>

#include "engine/data/loader.h"

namespace {

using namespace siam;
constexpr int64_t kBatch = 64;

std::shared_ptr<data::Dataset> make_source(int size) {
  if (size == 28) return std::make_shared<data::SyntheticDataset>(data::SyntheticOptions{.n = 512, .h = 28, .w = 28, .c = 1});
  if (size == 32) return std::make_shared<data::SyntheticDataset>(data::SyntheticOptions{.n = 512, .h = 32, .w = 32, .c = 3});
  // 224: a folder of 256x256 JPEGs written once per process
  static std::string dir;
  if (dir.empty()) {
    dir = (std::filesystem::temp_directory_path() / "siam_bench_views_jpeg").string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    data::SyntheticDataset src({.n = 64, .h = 256, .w = 256, .c = 3, .classes = 1, .seed = 1});
    for (int64_t i = 0; i < src.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "/img%03lld.jpg", static_cast<long long>(i));
      data::write_jpg(dir + name, src.get(i).image, 90);
    }
  }
  return std::make_shared<data::ImageFolderDataset>(data::ImageFolderOptions{.root = dir, .channels = 3});
}

data::ViewSpec simclr_spec(int size) {
  data::ViewSpec v = data::simclr_view(size, size == 28 ? 1 : 3);  // count 2
  if (size == 28) {
    v.mean = {0.286f};
    v.std = {0.353f};
  } else {
    v.mean = {0.485f, 0.456f, 0.406f};
    v.std = {0.229f, 0.224f, 0.225f};
  }
  return v;
}

void BM_views_simclr_cpu(benchmark::State& st) {
  const int size = static_cast<int>(st.range(0));
  const int threads = static_cast<int>(st.range(1));
  auto ds = make_source(size);
  data::ViewSpec spec = simclr_spec(size);
  data::LoaderOptions opt{.batch_size = kBatch, .seed = 1, .threads = threads, .prefetch = 2};
  data::Loader loader(ds, data::ViewPipeline({spec}, ds->channels()), opt);
  int64_t epoch = 0;
  loader.start_epoch(epoch);
  data::Batch b;
  for (auto _ : st) {
    if (!loader.next(b)) {
      loader.start_epoch(++epoch);
      loader.next(b);
    }
    benchmark::DoNotOptimize(b.views[0].raw_data());
  }
  const double view_bytes = 2.0 * ds->channels() * size * size * 4;
  st.SetItemsProcessed(st.iterations() * kBatch);
  st.counters["bytes"] = benchmark::Counter(view_bytes * kBatch, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = view_bytes * kBatch * opt.prefetch * std::max(threads, 1);
}
BENCHMARK(BM_views_simclr_cpu)
    ->ArgNames({"size", "threads"})
    ->Args({28, 1})->Args({28, 2})
    ->Args({32, 1})->Args({32, 2})
    ->Args({224, 1})->Args({224, 2})
    ->MinTime(0.5)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_views_decode_cpu(benchmark::State& st) {
  auto ds = make_source(224);
  int64_t i = 0;
  for (auto _ : st) {
    data::Sample s = ds->get(i++ % ds->size());
    benchmark::DoNotOptimize(s.image.data.data());
  }
  st.SetItemsProcessed(st.iterations());
  st.counters["bytes"] = benchmark::Counter(256.0 * 256 * 3, benchmark::Counter::kIsIterationInvariantRate);
  st.counters["bytes_peak"] = 256.0 * 256 * 3;
}
BENCHMARK(BM_views_decode_cpu)->ArgNames({"size", "threads"})->Args({256, 1})->MinTime(0.3)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
