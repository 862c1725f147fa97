#!/usr/bin/python3
"""A short PyTorch pretraining run on Fashion-MNIST, as a control for siam's recipes: the same model, views,
optimizer and warm-up as configs/<method>_fmnist.yaml, written the way the methods' reference code writes them,
then the weighted kNN monitor (k = 200, t = 0.1, cosine) of the encoder. It answers "does PyTorch show the same
early behaviour?" for a method whose siam run looks wrong, without PyTorch at test time.

  /usr/bin/python3 bench/compare/torch_ssl_probe.py --method wmse --limit 15360 --epochs 1 --threads 2

Methods: wmse (W-MSE 2: sub-batches of --whiten-size, Cholesky whitening, normalized MSE; AdamW 2e-3, wd 1e-6)
and simclr (NT-Xent t 0.2; SGD 0.3, momentum 0.9, wd 5e-4). The learning rate warms up linearly over the first
epoch. Prints one JSON object: the method, steps, last loss, the random encoder's kNN and the trained one's.
"""
import argparse
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as T
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_resnet import ResNetW  # noqa: E402
from torch_simclr_step import nt_xent  # noqa: E402

ROOT = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


def idx(name):
    with gzip.open(os.path.join(ROOT, name)) as f:
        data = f.read()
    if data[2] == 8 and data[3] == 3:
        n, h, w = np.frombuffer(data[4:16], dtype=">i4")
        return np.frombuffer(data[16:], dtype=np.uint8).reshape(n, 1, h, w)
    return np.frombuffer(data[8:], dtype=np.uint8).astype(np.int64)


VIEW = T.Compose([T.RandomResizedCrop(28, scale=(0.2, 1.0), antialias=False), T.RandomHorizontalFlip(),
                  T.RandomApply([T.ColorJitter(0.4, 0.4)], p=0.8)])


def views(x):  # x: (B, 1, 28, 28) in [0, 1]
    return [(torch.stack([VIEW(im) for im in x]) - MEAN) / STD for _ in range(2)]


def whiten(x):  # W-MSE's Whitening2d (eps 0): Y = Xc L^{-T}, Sigma = L L^T; in f64 as siam does
    xc = (x - x.mean(0, keepdim=True)).double()
    cov = xc.t() @ xc / (x.shape[0] - 1)
    lower = torch.linalg.cholesky(cov)
    w = torch.linalg.solve_triangular(lower, torch.eye(x.shape[1], dtype=torch.float64), upper=False)
    return (xc @ w.t()).float()


def wmse_loss(z1, z2, size, gen):
    perm = torch.randperm(z1.shape[0], generator=gen).view(-1, size)
    loss = 0
    for ids in perm:
        a, b = F.normalize(whiten(z1[ids]), dim=1), F.normalize(whiten(z2[ids]), dim=1)
        loss = loss + (2 - 2 * (a * b).sum(1).mean())
    return loss / len(perm)


@torch.no_grad()
def features(enc, x):
    enc.eval()
    out = torch.cat([enc((x[i:i + 1024] - MEAN) / STD) for i in range(0, len(x), 1024)])
    enc.train()
    return F.normalize(out, dim=1)


@torch.no_grad()
def knn(enc, xtr, ytr, xte, yte, k=200, t=0.1):
    ftr, fte = features(enc, xtr), features(enc, xte)
    correct = 0
    for i in range(0, len(fte), 1000):
        sim, j = (fte[i:i + 1000] @ ftr.t()).topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], 10).scatter_add_(1, ytr[j], (sim / t).exp())
        correct += (votes.argmax(1) == yte[i:i + 1000]).sum().item()
    return correct / len(fte)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=["wmse", "simclr"], default="wmse")
    ap.add_argument("--limit", type=int, default=15360)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--whiten-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    xtr = torch.from_numpy(idx("train-images-idx3-ubyte.gz")[:a.limit].astype(np.float32) / 255)
    ytr = torch.from_numpy(idx("train-labels-idx1-ubyte.gz")[:a.limit])
    xte = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255)
    yte = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz"))

    enc = ResNetW(BasicBlock, [2, 2, 2, 2], 16, 1)
    if a.method == "wmse":
        head = nn.Sequential(nn.Linear(enc.feature_dim, 1024), nn.BatchNorm1d(1024), nn.ReLU(inplace=True),
                             nn.Linear(1024, 64))
        params = list(enc.parameters()) + list(head.parameters())
        lr = a.lr or 2e-3
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-6)
    else:
        head = nn.Sequential(nn.Linear(enc.feature_dim, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                             nn.Linear(512, 128))
        params = list(enc.parameters()) + list(head.parameters())
        lr = a.lr or 0.3
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    before = knn(enc, xtr, ytr, xte, yte)
    steps_per_epoch = a.limit // a.batch
    step, loss = 0, float("nan")
    for _ in range(a.epochs):
        order = torch.randperm(a.limit, generator=gen)
        for s in range(steps_per_epoch):
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / steps_per_epoch)
            v1, v2 = views(xtr[order[s * a.batch:(s + 1) * a.batch]])
            z = head(enc(torch.cat([v1, v2])))
            z1, z2 = z[:a.batch], z[a.batch:]
            out = wmse_loss(z1, z2, a.whiten_size, gen) if a.method == "wmse" else nt_xent(z1, z2, 0.2)
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            loss, step = out.item(), step + 1
            if step % 20 == 0:
                print("step %d loss %.4f" % (step, loss), file=sys.stderr, flush=True)
    print(json.dumps({"method": a.method, "steps": step, "loss": round(loss, 4), "knn_random": before,
                      "knn_trained": knn(enc, xtr, ytr, xte, yte)}), flush=True)


if __name__ == "__main__":
    main()
