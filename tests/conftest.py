"""Shared fixtures: tiny models, the real default model, the dev photos with boxes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """imagenet-val-300: $DEEPINSIDE_DATA, or ../shared/data/imagenet-val-300 beside the repo."""
    env = os.environ.get("DEEPINSIDE_DATA")
    for cand in ([Path(env)] if env else []) + [
        REPO.parent / "shared" / "data" / "imagenet-val-300",
        Path("/work/shared/data/imagenet-val-300"),
    ]:
        if (cand / "annotations.json").is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def dev_data() -> tuple[Path, list[dict]]:
    root = data_dir()
    if root is None:
        pytest.skip("imagenet-val-300 not found (set DEEPINSIDE_DATA)")
    return root, json.loads((root / "annotations.json").read_text())


@pytest.fixture(scope="session")
def lite0():
    import deepinside

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return deepinside.load_model("efficientnet_lite0")


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


@pytest.fixture
def tiny() -> TinyCNN:
    return make_tiny()
