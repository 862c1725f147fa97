#!/usr/bin/python3
"""Writes tests/golden/methods_golden.safetensors: the golden data of tests/unit/methods_golden_test.cpp.

Each method's loss written in PyTorch the way its reference code writes it (SimCLR's NT-Xent as a 2N x 2N
cross-entropy, MoCo v2's logits against a queue, BYOL's and SimSiam's cosine losses with the stop-gradient,
Barlow Twins' BN-standardized cross-correlation, VICReg's three terms, W-MSE's Cholesky whitening), on a
small network of siam's shapes (BYOL, SimSiam and W-MSE with one forward per view, as their reference code;
the others with both views in one forward, as siam runs them): a ResNet-18 of width 2 with the CIFAR stem and 1 input channel on 8x8 views,
batch 16, the method's default heads narrowed to hidden 24 / out 12 (predictor hidden 10). siam's methods are
checked against these, independently of siam's own primitive-op references (tests/unit/methods_test.cpp).

For each method M the file holds
  M.model.<name>   the method's state_dict with siam's module names (encoder, projector, predictor, MoCo's
                   queue), stored as F32: the model is rounded to f32 first and then computes in f64 with
                   exactly those values. BYOL's target_* and MoCo's key_* networks start as copies of the
                   online ones, so the test fills them from encoder.* and projector.*.
  M.loss           the loss (F64), M.grad.<name> d loss / d parameter for every trainable parameter (F32)
and, shared, view0 and view1 (16, 1, 8, 8) (F32 values). The forward and backward run in f64 with one thread
(the test runs siam in f64, so the comparison measures the algebra, not f32 summation order).

  /usr/bin/python3 tests/golden/make_methods_golden.py      (PyTorch 1.13, torchvision 0.14)
"""
import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_resnet_golden import ResNetW, save_safetensors  # noqa: E402

WIDTH, BATCH, SIZE = 2, 16, 8
HIDDEN, OUT, PRED_HIDDEN = 24, 12, 10
TEMPERATURE, QUEUE = 0.2, 20


def mlp(in_dim, hidden, out, layers, bias=True, last_bn=False, last_affine=True):
    """models::MLP: (Linear, BN, ReLU) x (layers - 1), Linear, optional BN; indices as nn.Sequential's."""
    mods = []
    for _ in range(layers - 1):
        mods += [nn.Linear(in_dim, hidden, bias=bias), nn.BatchNorm1d(hidden), nn.ReLU()]
        in_dim = hidden
    mods.append(nn.Linear(in_dim, out, bias=not last_bn or last_affine))
    if last_bn:
        mods.append(nn.BatchNorm1d(out, affine=last_affine))
    return nn.Sequential(*mods)


def nt_xent(z1, z2, t):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    s = z @ z.t() / t
    s.fill_diagonal_(float("-inf"))
    return F.cross_entropy(s, torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]))


def moco_infonce(q, k, queue, t):
    q = F.normalize(q, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / t
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))


def cos_loss(p, z):  # 2 - 2 cos, mean over rows
    return 2 - 2 * F.cosine_similarity(p, z, dim=1).mean()


def barlow(z1, z2, lam=5e-3):
    bn = nn.BatchNorm1d(z1.shape[1], affine=False).double()
    c = bn(z1).t() @ bn(z2) / z1.shape[0]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lam * off


def vicreg(x, y, sim=25.0, var=25.0, cov=1.0):
    n, d = x.shape
    repr_loss = F.mse_loss(x, y)
    x, y = x - x.mean(0), y - y.mean(0)
    std_x, std_y = torch.sqrt(x.var(0) + 1e-4), torch.sqrt(y.var(0) + 1e-4)
    std_loss = F.relu(1 - std_x).mean() / 2 + F.relu(1 - std_y).mean() / 2
    off = lambda m: m - torch.diag(torch.diagonal(m))  # noqa: E731
    cov_x, cov_y = x.t() @ x / (n - 1), y.t() @ y / (n - 1)
    cov_loss = off(cov_x).pow(2).sum() / d + off(cov_y).pow(2).sum() / d
    return sim * repr_loss + var * std_loss + cov * cov_loss


def whiten(x):  # W-MSE's Whitening2d (eps 0): Y = Xc L^{-T}, Sigma = Xc^T Xc / (M - 1) = L L^T
    xc = x - x.mean(0, keepdim=True)
    lower = torch.linalg.cholesky(xc.t() @ xc / (x.shape[0] - 1))
    return xc @ torch.linalg.solve_triangular(lower, torch.eye(x.shape[1], dtype=x.dtype), upper=False).t()


def build(name, enc):
    m = nn.Module()
    m.encoder = enc
    f = enc.feature_dim if hasattr(enc, "feature_dim") else WIDTH * 8
    if name == "simsiam":
        m.projector = mlp(f, HIDDEN, OUT, 3, bias=False, last_bn=True, last_affine=False)
        m.predictor = mlp(OUT, PRED_HIDDEN, OUT, 2, bias=False)
    elif name == "barlow_twins":
        m.projector = mlp(f, HIDDEN, OUT, 3, bias=False)
    elif name == "vicreg":
        m.projector = mlp(f, HIDDEN, OUT, 3)
    else:
        m.projector = mlp(f, HIDDEN, OUT, 2)
    if name == "byol":
        m.predictor = mlp(OUT, PRED_HIDDEN, OUT, 2)
        m.target_encoder = copy.deepcopy(m.encoder)
        m.target_projector = copy.deepcopy(m.projector)
    if name == "moco":
        m.key_encoder = copy.deepcopy(m.encoder)
        m.key_projector = copy.deepcopy(m.projector)
        m.register_buffer("queue", F.normalize(torch.randn(QUEUE, OUT), dim=1))
    with torch.no_grad():  # f32 values, then f64 arithmetic
        for t in list(m.parameters()) + list(m.buffers()):
            if t.is_floating_point():
                t.copy_(t.float().double() if t.dtype == torch.float64 else t.float())
    m = m.double()
    if name in ("byol", "moco"):
        for online, frozen in ((m.encoder, m.target_encoder if name == "byol" else m.key_encoder),
                               (m.projector, m.target_projector if name == "byol" else m.key_projector)):
            frozen.load_state_dict(online.state_dict())
    if name == "moco":  # siam's MoCo loss normalizes the queue rows; the f32-rounded ones are 1 +- 1e-8 long
        m.raw_queue = m.queue.clone()  # a plain attribute: the f32 values the file holds
        m.queue = F.normalize(m.queue, dim=1)
    return m


def loss_of(name, m, v0, v1):
    # BYOL, SimSiam and W-MSE: one forward per view, as their reference code (siam's per_view_forward, their
    # default); the others: both views in one forward, siam's choice for them (docs/DECISIONS.md).
    both = lambda enc, head: head(enc(torch.cat([v0, v1]))).chunk(2)  # noqa: E731
    if name in ("byol", "simsiam", "wmse"):
        both = lambda enc, head: (head(enc(v0)), head(enc(v1)))  # noqa: E731
    if name == "simclr":
        return nt_xent(*both(m.encoder, m.projector), TEMPERATURE)
    if name == "moco":
        q1, q2 = both(m.encoder, m.projector)
        with torch.no_grad():
            k1, k2 = (F.normalize(k, dim=1) for k in both(m.key_encoder, m.key_projector))
        return 0.5 * (moco_infonce(q1, k2, m.queue, TEMPERATURE) + moco_infonce(q2, k1, m.queue, TEMPERATURE))
    if name == "byol":
        p1, p2 = (m.predictor(z) for z in both(m.encoder, m.projector))
        with torch.no_grad():
            t1, t2 = both(m.target_encoder, m.target_projector)
        return cos_loss(p1, t2) + cos_loss(p2, t1)
    if name == "simsiam":
        z1, z2 = both(m.encoder, m.projector)
        p1, p2 = m.predictor(z1), m.predictor(z2)
        return -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2
    if name == "barlow_twins":
        return barlow(*both(m.encoder, m.projector))
    if name == "vicreg":
        return vicreg(*both(m.encoder, m.projector))
    if name == "wmse":  # one sub-batch (whiten_size = the batch): row order does not change the loss
        z1, z2 = both(m.encoder, m.projector)
        return cos_loss(F.normalize(whiten(z1), dim=1), F.normalize(whiten(z2), dim=1))
    raise ValueError(name)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    v0 = torch.randn(BATCH, 1, SIZE, SIZE).double()
    v1 = (v0 + 0.5 * torch.randn(BATCH, 1, SIZE, SIZE).double()).float().double()  # two views, shared content
    tensors = [("view0", v0.float()), ("view1", v1.float())]
    for name in ["simclr", "moco", "byol", "simsiam", "barlow_twins", "vicreg", "wmse"]:
        m = build(name, ResNetW([2, 2, 2, 2], WIDTH, 1, cifar=True))
        state = {k: v.clone() for k, v in m.state_dict().items()}  # before the forward moves running stats
        if name == "moco":
            state["queue"] = m.raw_queue  # siam normalizes these f32 values in f64, as above
        loss = loss_of(name, m, v0, v1)
        loss.backward()
        frozen = ("target_", "key_")
        tensors += [(f"{name}.model.{k}", v.float() if v.is_floating_point() else v)
                    for k, v in state.items() if not k.startswith(frozen)]
        tensors.append((f"{name}.loss", loss.detach().reshape([])))
        tensors += [(f"{name}.grad.{k}", p.grad.float()) for k, p in m.named_parameters() if not k.startswith(frozen)]
        print(f"{name}: loss {loss.item():.6f}")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "methods_golden.safetensors")
    save_safetensors(out, tensors, {"generator": "tests/golden/make_methods_golden.py"})
    print(f"wrote {out}: {os.path.getsize(out)} bytes, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
