#!/usr/bin/env python3
"""torchvision's SimCLR views on this machine, beside siam's BM_views_simclr_cpu (bench/bench_views.cpp).

Same work per image as the siam benchmark: two views of
  28x28x1   (Fashion-MNIST-like): RandomResizedCrop(28, scale=(0.2, 1)), flip, ColorJitter(0.4, 0.4) p=0.8,
            ToTensor, Normalize
  32x32x3   (CIFAR-like): RandomResizedCrop(32, scale=(0.2, 1)), flip, ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8,
            RandomGrayscale(0.2), ToTensor, Normalize
  224x224x3 (ImageNet-like): decode a 256x256 JPEG, RandomResizedCrop(224), flip, ColorJitter(0.4, 0.4, 0.4,
            0.1) p=0.8, RandomGrayscale(0.2), GaussianBlur(23, (0.1, 2)) p=0.5, ToTensor, Normalize
in the two usual forms: "pil" (PIL images, what the SimCLR/BYOL/MoCo reference code uses) and "tensor"
(float tensors, the formulation siam's kernels follow). Images/s are measured on 1 worker (the main process,
torch.set_num_threads(1)) and on N DataLoader worker processes, batch 64.

Run with Debian's python3-torch and python3-torchvision (scripts/setup.sh does not install them):
  /usr/bin/python3 bench/compare/torchvision_views.py [--workers 2] [--seconds 3] [--json out.json]
"""
import argparse
import io
import json
import os
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
import torchvision
import torchvision.transforms as T


def simclr(size, channels, form):
    jitter = T.ColorJitter(0.4, 0.4) if channels == 1 else T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    ops = [T.RandomResizedCrop(size, scale=(0.2 if size <= 32 else 0.08, 1.0), antialias=False) if form == "tensor"
           else T.RandomResizedCrop(size, scale=(0.2 if size <= 32 else 0.08, 1.0)),
           T.RandomHorizontalFlip(), T.RandomApply([jitter], p=0.8)]
    if channels == 3:
        ops.append(T.RandomGrayscale(0.2))
    if size >= 64:
        ops.append(T.RandomApply([T.GaussianBlur(23, (0.1, 2.0))], p=0.5))
    mean, std = ([0.286], [0.353]) if channels == 1 else ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    if form == "pil":
        ops += [T.ToTensor(), T.Normalize(mean, std)]
    else:
        ops = [T.ConvertImageDtype(torch.float32)] + ops + [T.Normalize(mean, std)]
    return T.Compose(ops)


class Views(Dataset):
    """n images of (size, size, channels); 224 means 256x256 JPEG bytes decoded on every access."""

    def __init__(self, size, channels, form, n=512):
        rng = np.random.default_rng(0)
        self.form, self.size = form, size
        src = 256 if size == 224 else size
        shape = (src, src) if channels == 1 else (src, src, 3)
        self.images = []
        yy, xx = np.mgrid[0:src, 0:src].astype(np.float32) / src
        for _ in range(n if size != 224 else 64):
            # smooth content like siam's SyntheticDataset (a disc over a gradient, a little noise): JPEG
            # decode time depends on it, and noise would make the decode several times slower
            cy, cx, r = rng.random(3) * [1, 1, 0.3] + [0, 0, 0.15]
            base = 0.35 * (xx + yy) / 2 + 0.55 * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
            a = base[..., None] * rng.random(3 if channels == 3 else 1)[None, None, :] + 0.02 * rng.random((src, src, 1))
            a = (np.clip(a, 0, 1) * 255).astype(np.uint8).reshape(shape)
            if size == 224:
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, format="JPEG", quality=90)
                self.images.append(buf.getvalue())
            else:
                self.images.append(a)
        self.t = simclr(size, channels, form)

    def __len__(self):
        return 1 << 30

    def __getitem__(self, i):
        x = self.images[i % len(self.images)]
        img = Image.open(io.BytesIO(x)).convert("RGB") if self.size == 224 else Image.fromarray(x)
        if self.form == "tensor":
            img = torch.from_numpy(np.asarray(img).copy())
            img = img.unsqueeze(0) if img.dim() == 2 else img.permute(2, 0, 1)
        return self.t(img), self.t(img)


def rate(ds, workers, seconds, batch=64):
    if workers == 0:
        torch.set_num_threads(1)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(batch):
                ds[n]
                n += 1
        return n / (time.perf_counter() - t0)
    dl = DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=False, prefetch_factor=2)
    it = iter(dl)
    for _ in range(workers * 2):
        next(it)  # warm up the workers
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(it)
        n += batch
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size, ch in [(28, 1), (32, 3), (224, 3)]:
        for form in ["pil", "tensor"]:
            ds = Views(size, ch, form)
            one = rate(ds, 0, a.seconds)
            many = rate(ds, a.workers, a.seconds) if a.workers > 0 else float("nan")
            rows.append({"size": size, "channels": ch, "form": form, "images_per_s_1": one,
                         f"images_per_s_{a.workers}w": many})
            print(f"torchvision {torchvision.__version__} simclr {size}x{size}x{ch} {form:6s}: {one:9.1f} images/s on 1 thread, "
                  f"{many:9.1f} on {a.workers} workers", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
