#!/usr/bin/python3
"""PyTorch CPU reference timings for the InfoNCE benchmarks of bench/bench_siamese.cpp (siam_bench BM_nce_*).

What is timed: the usual unfused NT-Xent (SimCLR) as PyTorch users write it, forward + backward:
    z = F.normalize(torch.cat([z1, z2]), dim=1); s = (z @ z.T / t).masked_fill(eye, -1e9); F.cross_entropy(s, pos)
at N = 1024 and 4096 (2N rows), D = 128, t = 0.1, f32; FLOPs counted as siam counts them: 6 (2N)^2 D (forward
2 M^2 D + backward 4 M^2 D, normalization and softmax not counted).

Run with Debian's python3-torch (2 threads unless --threads):
    /usr/bin/python3 bench/compare/torch_losses.py
--skylakex sets OPENBLAS_CORETYPE=SkylakeX before torch loads: Debian's torch matmul goes through the system
OpenBLAS, which does not know this CPU and otherwise runs its SSE3 "Prescott" kernels (docs/PERF.md).
--siam-bench build/bench/siam_bench --rounds 3 alternates siam_bench (BM_nce_fused, BM_nce_unfused) and PyTorch
size by size, so that both see the same machine load, and prints the medians and the ratios (set OMP_NUM_THREADS
to --threads for siam). --json FILE writes every run.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def bench(fn, min_time):
    """One warm-up call, then calls until min_time has passed (at least 2); mean seconds per call, as Google
    Benchmark reports for siam_bench."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time and n >= 2:
            return el / n


def nt_xent_case(torch, F, n, d, min_time, temperature=0.1):
    m = 2 * n
    z1 = torch.randn(n, d, requires_grad=True)
    z2 = torch.randn(n, d, requires_grad=True)
    pos = (torch.arange(m) + n) % m
    self_mask = torch.eye(m, dtype=torch.bool)  # built once, outside the timed step

    def fwd_bwd():
        z1.grad = None
        z2.grad = None
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        s = z @ z.t() / temperature
        s = s.masked_fill(self_mask, -1e9)  # self-similarity masked
        F.cross_entropy(s, pos).backward()

    t = bench(fwd_bwd, min_time)
    flops = 6.0 * m * m * d
    return {"name": "torch_nt_xent/N:%d/D:%d" % (n, d), "N": n, "D": d, "ms": t * 1e3, "gflops": flops / t / 1e9}


def run_torch(args, sizes):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return [nt_xent_case(torch, F, n, args.dim, args.min_time) for n in sizes]


def run_siam(args, n):
    """siam_bench's BM_nce_fused and BM_nce_unfused at (N, D) as {name: ms}."""
    out = subprocess.run(
        [args.siam_bench, "--benchmark_filter=BM_nce_(fused|unfused)/N:%d/D:%d/" % (n, args.dim),
         "--benchmark_format=json"],
        check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    res = {}
    for b in json.loads(out.stdout)["benchmarks"]:
        scale = {"ms": 1.0, "us": 1e-3, "ns": 1e-6, "s": 1e3}[b["time_unit"]]
        res[b["name"].split("/")[0]] = b["real_time"] * scale
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096], help="N (rows per view)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--skylakex", action="store_true", help="OPENBLAS_CORETYPE=SkylakeX for torch's OpenBLAS")
    ap.add_argument("--siam-bench", help="siam_bench binary: alternate siam and PyTorch runs")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write all runs to this file")
    args = ap.parse_args()
    if args.skylakex:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"  # read when torch loads libblas

    runs = []
    if not args.siam_bench:
        for r in run_torch(args, args.sizes):
            print("%-28s %9.1f ms %7.1f GFLOP/s" % (r["name"], r["ms"], r["gflops"]))
            runs.append(r)
    else:
        # One PyTorch process per round would reload torch; keep it in this process and alternate per size.
        for rnd in range(args.rounds):
            for n in args.sizes:
                s = run_siam(args, n)
                t = run_torch(args, [n])[0]
                runs.append({"round": rnd, "N": n, "torch_ms": t["ms"], "fused_ms": s.get("BM_nce_fused"),
                             "unfused_ms": s.get("BM_nce_unfused")})
                print("round %d N=%d: torch %.1f ms, siam fused %.1f ms, siam unfused %.1f ms" %
                      (rnd, n, t["ms"], runs[-1]["fused_ms"], runs[-1]["unfused_ms"]), file=sys.stderr)
        print("| N (2N rows), D=%d | PyTorch unfused | siam unfused | siam fused | fused vs PyTorch | fused vs unfused |"
              % args.dim)
        print("|---|---:|---:|---:|---:|---:|")
        for n in args.sizes:
            rs = [r for r in runs if r["N"] == n]
            tm = statistics.median(r["torch_ms"] for r in rs)
            fm = statistics.median(r["fused_ms"] for r in rs)
            um = statistics.median(r["unfused_ms"] for r in rs)
            # per-round ratios (same load within a round), then their median
            rt = statistics.median(r["torch_ms"] / r["fused_ms"] for r in rs)
            ru = statistics.median(r["unfused_ms"] / r["fused_ms"] for r in rs)
            flops = 6.0 * (2 * n) ** 2 * args.dim
            print("| %d (%d) | %.1f ms (%.0f GFLOP/s) | %.1f ms (%.0f) | %.1f ms (%.0f) | %.2fx | %.2fx |" %
                  (n, 2 * n, tm, flops / tm / 1e6, um, flops / um / 1e6, fm, flops / fm / 1e6, rt, ru))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
