// The launch tables of the CUDA multi-tensor kernels (kernels/cuda/multi_tensor.cu), built on the host in plain
// C++ so tests/cuda/fused_parity_test.cpp checks them on any machine.
//
// Tensor t (numel[t] elements, zero-length tensors skipped) is cut into chunks of `chunk` elements; one CUDA
// block per chunk. Global block numbers run over all chunks in tensor order (tensor t's chunks are the global
// blocks [first_block[t], first_block[t] + chunks of t)). The blocks are split into launches, each with at most
// `max_tensors` tensor slots and `max_blocks` blocks (what fits in one kernel's argument table); a tensor that
// does not fit whole continues in the next launch under a new slot.
#pragma once
#include <cstdint>
#include <vector>

namespace siam {

struct MtLaunch {
  std::vector<int32_t> tensors;      // slot -> tensor index
  std::vector<int32_t> block_slot;   // block -> slot
  std::vector<int64_t> block_chunk;  // block -> chunk index within its tensor
  int64_t block_base = 0;            // global number of this launch's block 0
};

struct MtLaunchPlan {
  std::vector<MtLaunch> launches;
  std::vector<int64_t> first_block;  // (n) global block of each tensor's chunk 0 (-1 for empty tensors)
  int64_t total_blocks = 0;
};

inline MtLaunchPlan mt_launch_plan(const int64_t* numel, int64_t n, int64_t chunk, int max_tensors, int max_blocks) {
  MtLaunchPlan plan;
  plan.first_block.assign(static_cast<size_t>(n), -1);
  MtLaunch cur;
  auto flush = [&] {
    if (!cur.block_slot.empty()) plan.launches.push_back(cur);
    cur = MtLaunch{};
    cur.block_base = plan.total_blocks;
  };
  for (int64_t t = 0; t < n; ++t) {
    if (numel[t] <= 0) continue;
    plan.first_block[t] = plan.total_blocks;
    const int64_t chunks = (numel[t] + chunk - 1) / chunk;
    for (int64_t c = 0; c < chunks; ++c) {
      const bool has_slot = !cur.tensors.empty() && cur.tensors.back() == t;
      if (static_cast<int>(cur.block_slot.size()) == max_blocks ||
          (!has_slot && static_cast<int>(cur.tensors.size()) == max_tensors))
        flush();
      if (cur.tensors.empty() || cur.tensors.back() != t) cur.tensors.push_back(static_cast<int32_t>(t));
      cur.block_slot.push_back(static_cast<int32_t>(cur.tensors.size()) - 1);
      cur.block_chunk.push_back(c);
      ++plan.total_blocks;
    }
  }
  flush();
  return plan;
}

}  // namespace siam
