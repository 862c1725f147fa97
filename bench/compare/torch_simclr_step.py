#!/usr/bin/python3
"""Times one SimCLR training step in PyTorch (CPU, f32), compute only, as bench/bench_methods.cpp's
BM_simclr_step_cpu does in siam: the Fashion-MNIST reference recipe of issue #7.

  /usr/bin/python3 bench/compare/torch_simclr_step.py --threads 2 [--batch 256] [--min-time 3]

Step: both views (2 x 256 images 1x28x28, concatenated) through a ResNet-18 (CIFAR stem, width 16), the
projector 128-512(BN, ReLU)-128, NT-Xent at temperature 0.2 written the usual way (normalize, 2N x 2N
similarity matrix, diagonal masked, cross-entropy), backward, SGD (momentum 0.9, weight decay 5e-4) step.
Prints one JSON object: ms per step (median) and images/s (source images, 2 views each).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_resnet import ResNetW  # noqa: E402


def nt_xent(z1, z2, t):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    s = z @ z.t() / t
    s.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(s, target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--min-time", type=float, default=3.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    enc = ResNetW(BasicBlock, [2, 2, 2, 2], 16, 1)
    proj = nn.Sequential(nn.Linear(enc.feature_dim, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                         nn.Linear(512, 128))
    params = list(enc.parameters()) + list(proj.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    x1 = torch.randn(a.batch, 1, 28, 28)
    x2 = torch.randn(a.batch, 1, 28, 28)

    def step():
        z = proj(enc(torch.cat([x1, x2])))
        loss = nt_xent(z[: a.batch], z[a.batch:], 0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < a.min_time or len(times) < 3:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    print(json.dumps({"name": "torch_simclr_step/%d" % a.batch, "threads": torch.get_num_threads(),
                      "steps": len(times), "ms_per_step": round(ms, 2),
                      "images_per_s": round(a.batch / (ms / 1000), 1)}), flush=True)


if __name__ == "__main__":
    main()
