"""The toy models of the tests, defined once (as Captum's ``testing/helpers/basic_models.py``).

Each is small enough for finite differences or hand-computed gradients; none downloads anything.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepinside.models import Classifier, Preprocessing


class TinyCNN(nn.Module):
    """conv-BN-ReLU-maxpool-conv-BN-ReLU6-avgpool-linear: small enough for finite differences."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.act2 = nn.ReLU6()
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.act2(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def make_tiny(seed: int = 0, dtype=torch.float32) -> TinyCNN:
    """A TinyCNN with random weights and non-trivial batch-norm statistics, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    m = TinyCNN()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for bn in (m.bn1, m.bn2):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.3)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
    return m.eval().to(dtype)

class LinearNet(nn.Module):
    """S(I) = W flatten(I) + b: the paper's objective then has the optimum I* = w_c / (2 lambda)."""

    def __init__(self, size: int = 8, classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = nn.Linear(3 * size * size, classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
            self.fc.bias.copy_(torch.randn(classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))

class SumNet(nn.Module):
    """logit 0 = sum of all inputs, logit 1 = 0: its score drops by 1 per deleted unit pixel."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x):
        s = x.sum(dim=(1, 2, 3)) * self.w
        return torch.stack([s, torch.zeros_like(s)], dim=1)

class TinyFeatures(nn.Module):
    """conv-BN-ReLU twice (the second strided), global average pooling, linear; on 32 x 32."""

    def __init__(self, k: int = 6):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
        )
        self.head = nn.Linear(8, k)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def tiny_classifier(k: int = 6) -> Classifier:
    """A TinyFeatures with random weights and batch-norm statistics, as a 6-class Classifier."""
    torch.manual_seed(0)
    net = TinyFeatures(k)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return Classifier(net, Preprocessing(input_size=(32, 32), resize_size=36),
                      [f"class{i}, thing {i}" for i in range(k)], name="tiny")

ORIGINAL_RELU = F.relu  # to check that nothing patched it
ACTS = ["relu_module", "relu_inplace", "functional", "tensor_method", "relu_", "relu6", "hardtanh"]


def activation(kind: str, x: torch.Tensor) -> torch.Tensor:
    """One rectifier of the given kind (module, in place, functional, method, ...) applied to x."""
    if kind == "relu_module":
        return nn.ReLU()(x)
    if kind == "relu_inplace":
        return nn.ReLU(inplace=True)(x)
    if kind == "functional":
        return F.relu(input=x)
    if kind == "tensor_method":
        return x.relu()
    if kind == "relu_":
        return torch.relu_(x)
    if kind == "relu6":
        return nn.ReLU6(inplace=True)(x)
    if kind == "hardtanh":
        return nn.Hardtanh(-0.5, 0.5)(x)
    if kind == "none":
        return x
    raise AssertionError(kind)


def bounds(kind: str) -> tuple[float, float]:
    """Where the rectifier of this kind passes its gradient: lo < x < hi."""
    return {"relu6": (0.0, 6.0), "hardtanh": (-0.5, 0.5)}.get(kind, (0.0, math.inf))

class ToyNet(nn.Module):
    """conv -> act -> maxpool -> conv -> act -> maxpool -> linear, on 3 x 16 x 16."""

    def __init__(self, act: str = "relu_module", classes: int = 5, scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.act = act
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 * scale)
        self.fail = False

    def stages(self, x):
        z1 = self.conv1(x)
        a1 = activation(self.act, z1.clone())
        p1 = F.max_pool2d(a1, 2)
        z2 = self.conv2(p1)
        a2 = activation(self.act, z2.clone())
        if self.fail:
            raise RuntimeError("forced failure")
        p2 = F.max_pool2d(a2, 2)
        return z1, a1, p1, z2, a2, p2

    def forward(self, x):
        return self.fc(self.stages(x)[-1].flatten(1))

class SmoothNet(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))

class Scale(nn.Module):
    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s

class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = make_tiny()

    def forward(self, x):
        self.inner(x)
        raise RuntimeError("boom half-way")

class BiasFreeNet(nn.Module):
    """conv - act - maxpool - conv - act - average pool - linear, no biases, on 3 x 16 x 16:
    LRP-epsilon conserves its relevance."""

    def __init__(self, act: str = "relu_module", classes: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.act = act
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(8 * 2 * 2, classes, bias=False)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        a = F.max_pool2d(activation(self.act, self.conv1(x)), 2)
        return self.fc(self.pool(activation(self.act, self.conv2(a))).flatten(1))


class PixelSegmenter(nn.Module):
    """A toy segmenter: ``{"out": Tensor[B, K, H, W]}`` where each pixel's logits depend only on
    that pixel (a 1 x 1 convolution after a pointwise nonlinearity), as torchvision's
    segmentation models return them."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g))

    def forward(self, x: torch.Tensor) -> dict:
        return {"out": self.conv(torch.tanh(x) + x * x)}


class Unreadable(nn.Module):
    """Returns something no target can read: a string."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> str:
        return "nothing to see"


class CornerNet(nn.Module):
    """logit 0 = mean of the bottom-right quarter of the input (all channels), logit 1 = mean
    of its centre quarter: the model of a class that reads a corner, and of one that reads the
    object in the middle. Linear, so an erased region's effect is known exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        corner = x[:, :, h // 2:, w // 2:].mean(dim=(1, 2, 3))
        centre = x[:, :, h // 4: h - h // 4, w // 4: w - w // 4].mean(dim=(1, 2, 3))
        return torch.stack([corner, centre], dim=1) * self.scale


def corner_classifier() -> Classifier:
    """:class:`CornerNet` on 32 x 32 inputs, classes ``corner`` and ``centre``."""
    return Classifier(CornerNet().eval(), Preprocessing(input_size=(32, 32), resize_size=32),
                      ["corner", "centre"], name="corner")
