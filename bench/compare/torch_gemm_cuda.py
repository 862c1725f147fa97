#!/usr/bin/env python3
"""PyTorch's cuBLAS rates on the GPU, the references of issue 3's goals (run by scripts/gpu_check_run.py on the
GPU machine, whose python3 has a CUDA PyTorch; never in CI).

- bf16 GEMM at n^3 (default 8192): torch.matmul of two (n, n) bf16 tensors, f32 accumulation inside cuBLAS, as
  siam_bench's BM_gemm_bf16_cuda/n times cuBLASLt; goal: siam >= 80 percent of this rate.
- device copy: tensor.copy_ of 256 MiB f32, bytes counted as read + write (BM_copy_cuda counts the same), a
  cross-check of the copy rate the elementwise and EMA goals are measured against.

Each is timed with CUDA events over `--iters` calls after 3 warm-up calls, best of `--rounds` rounds. Prints one
JSON line: {"torch", "device", "gemm_bf16": {"n", "tflops"}, "copy": {"bytes", "gbps"}}; with no CUDA device, a
JSON line with "error" and exit status 1.
    python3 bench/compare/torch_gemm_cuda.py [--n 8192] [--iters 20] [--rounds 3]
"""
import argparse
import json
import sys


def timed(torch, fn, iters, rounds):
    """Best seconds per call over `rounds` rounds of `iters` calls, timed by CUDA events."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / iters)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(json.dumps({"error": f"no PyTorch: {e}"}))
        return 1
    if not torch.cuda.is_available():
        print(json.dumps({"torch": torch.__version__, "error": "torch.cuda.is_available() is False"}))
        return 1
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False  # f32 accumulation, as siam
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    n = a.n
    x = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    y = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    z = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    s = timed(torch, lambda: torch.matmul(x, y, out=z), a.iters, a.rounds)
    out["gemm_bf16"] = {"n": n, "seconds": s, "tflops": 2.0 * n ** 3 / s / 1e12}
    del x, y, z
    elems = 1 << 26  # 256 MiB of f32, as BM_copy_cuda/67108864
    src = torch.randn(elems, device="cuda")
    dst = torch.empty_like(src)
    s = timed(torch, lambda: dst.copy_(src), a.iters, a.rounds)
    out["copy"] = {"bytes": 8 * elems, "seconds": s, "gbps": 8.0 * elems / s / 1e9}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
