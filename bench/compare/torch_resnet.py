#!/usr/bin/python3
"""Times the models of bench/bench_models.cpp in PyTorch (CPU, f32): one forward + backward of a ResNet
encoder, loss = sum(features * r), BN in training mode, no optimizer step; the same batch, input and
thread count as siam_bench.

  /usr/bin/python3 bench/compare/torch_resnet.py --threads 2 [--which r18w16,r18w64,r50] [--min-time 2]

Prints one JSON object per benchmark: name, batch, threads, ms per step (median of the timed steps) and
images/s. The ResNet is torchvision's BasicBlock/Bottleneck with a width parameter and a CIFAR stem (conv1
3x3 stride 1, no max pool), as in tests/golden/make_resnet_golden.py.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck


class ResNetW(nn.Module):
    def __init__(self, block, layers, width=64, in_ch=3, cifar=True):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False) if cifar else nn.Conv2d(in_ch, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, width, layers[0], 1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = width * 8 * block.expansion

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def bench(name, model, batch, in_ch, size, min_time):
    model.train()
    x = torch.randn(batch, in_ch, size, size)
    r = torch.randn(batch, model.feature_dim)

    def step():
        model.zero_grad(set_to_none=True)
        (model(x) * r).sum().backward()

    step()  # warm-up
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    return {"name": name, "batch": batch, "threads": torch.get_num_threads(), "steps": len(times),
            "ms_per_step": round(ms, 2), "images_per_s": round(batch / (ms / 1000), 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--which", default="r18w16,r18w64,r50")
    ap.add_argument("--min-time", type=float, default=2.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    todo = a.which.split(",")
    if "r18w16" in todo:
        print(json.dumps(bench("torch_resnet18_cifar_fwdbwd/16/256", ResNetW(BasicBlock, [2, 2, 2, 2], 16, 1), 256, 1, 28,
                               a.min_time)), flush=True)
    if "r18w64" in todo:
        print(json.dumps(bench("torch_resnet18_cifar_fwdbwd/64/256", ResNetW(BasicBlock, [2, 2, 2, 2], 64, 1), 256, 1, 28,
                               a.min_time)), flush=True)
    if "r50" in todo:
        print(json.dumps(bench("torch_resnet50_fwdbwd/8/224", ResNetW(Bottleneck, [3, 4, 6, 3], 64, 3, cifar=False), 8, 3,
                               224, a.min_time)), flush=True)


if __name__ == "__main__":
    main()
