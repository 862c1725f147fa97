#!/usr/bin/python3
"""Writes tests/golden/resnet18_w16_cifar.safetensors: the golden data of tests/unit/models_golden_test.cpp.

A ResNet-18 of width 16 (stage widths 16, 32, 64, 128), CIFAR stem (conv1 3x3 stride 1, no max pool),
1 input channel, no fc, built from torchvision's BasicBlock with torchvision's module names and
initialization. The file holds
  model.<name>       its state_dict (conv weights rounded to bf16 and stored as BF16 so the file stays
                     under 2 MB; the model computes with exactly those values; BN tensors in F32, with
                     random gammas, betas and running statistics so both modes are exercised)
  input              x (8, 1, 28, 28)
  loss_weight        r (8, 128): the loss is sum(features_train * r)
  features.eval      model.eval()(x)
  features.train     model.train()(x) (batch statistics)
  grad.<name>        d loss / d parameter, for every BN parameter and every conv weight of up to 20k
                     elements (conv1, layer1, layer2, layer3.0.conv1 and the downsample convs: the others are left out for size)
  running.<name>     the BN running statistics after the train-mode forward (momentum 0.1)
Everything is computed in f32 with one thread. Run: /usr/bin/python3 tests/golden/make_resnet_golden.py
(PyTorch 1.13, torchvision 0.14; safetensors is written by hand, no extra package needed).
"""
import json
import os
import struct

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, resnet18

WIDTH, BATCH, IN_CH, SIZE = 16, 8, 1, 28
GRAD_MAX_NUMEL = 20000


class ResNetW(nn.Module):
    """torchvision.models.ResNet with a width parameter and a CIFAR stem (same names, same init)."""

    def __init__(self, layers, width=64, in_ch=3, cifar=True, num_classes=0):
        super().__init__()
        self.inplanes = width
        if cifar:
            self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_ch, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0], 1)
        self.layer2 = self._make_layer(width * 2, layers[1], 2)
        self.layer3 = self._make_layer(width * 4, layers[2], 2)
        self.layer4 = self._make_layer(width * 8, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 8, num_classes) if num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x) if self.fc is not None else x


DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous()
        data = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # Our builder at width 64 with an ImageNet stem and fc must match torchvision's resnet18 key for key.
    ref = {k: tuple(v.shape) for k, v in resnet18().state_dict().items()}
    ours = {k: tuple(v.shape) for k, v in ResNetW([2, 2, 2, 2], 64, 3, cifar=False, num_classes=1000).state_dict().items()}
    assert ref == ours, "ResNetW does not reproduce torchvision's resnet18 names and shapes"

    model = ResNetW([2, 2, 2, 2], WIDTH, IN_CH, cifar=True)
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(m.weight.bfloat16().float())
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    state = [(k, v.clone()) for k, v in model.state_dict().items()]

    x = torch.randn(BATCH, IN_CH, SIZE, SIZE, generator=g)
    r = torch.randn(BATCH, WIDTH * 8, generator=g)
    model.eval()
    with torch.no_grad():
        f_eval = model(x)
    model.train()
    f_train = model(x)
    (f_train * r).sum().backward()

    tensors = []
    for k, v in state:
        is_conv_w = v.dim() == 4
        tensors.append(("model." + k, v.bfloat16() if is_conv_w else v))
    tensors += [("input", x), ("loss_weight", r), ("features.eval", f_eval), ("features.train", f_train.detach())]
    for k, p in model.named_parameters():
        if p.dim() == 1 or p.numel() <= GRAD_MAX_NUMEL:
            tensors.append(("grad." + k, p.grad))
    for k, b in model.named_buffers():
        if "running" in k:
            tensors.append(("running." + k, b))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resnet18_w16_cifar.safetensors")
    meta = {"torch": torch.__version__, "model": "resnet18", "width": str(WIDTH), "stem": "cifar",
            "in_channels": str(IN_CH), "batch": str(BATCH), "loss": "sum(features.train * loss_weight)"}
    save_safetensors(out, tensors, meta)
    print(f"wrote {out}: {os.path.getsize(out)} bytes, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
