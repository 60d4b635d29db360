"""Your model on the command line (issue #19): a fine-tuned head with its class names, a
factory, a Hugging Face folder, and ``--target`` read by targets.py; bad models in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from deepinside.cli import main

NAMES = ["apple", "banana", "cherry", "date"]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A torchvision MobileNetV3-small with a 4-class head, its state dict and names files."""
    from safetensors.torch import save_file
    from torchvision.models import mobilenet_v3_small

    d = tmp_path_factory.mktemp("head")
    torch.manual_seed(0)
    net = mobilenet_v3_small(weights=None, num_classes=4).eval()
    save_file(net.state_dict(), str(d / "w.safetensors"))
    (d / "names.txt").write_text("\n".join(NAMES) + "\n")
    (d / "names.json").write_text(json.dumps({str(i): n for i, n in enumerate(NAMES)}))
    (d / "three.json").write_text(json.dumps(NAMES[:3]))
    Image.fromarray(data.chelsea()).resize((120, 80)).save(d / "cat.png")
    return d


def _run(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_fine_tuned_head_speaks_its_own_names(head, capsys, tmp_path):
    model = ["--model", "torchvision:mobilenet_v3_small", "--weights", head / "w.safetensors"]
    for names in ("names.txt", "names.json"):
        rc, out, _ = _run(capsys, "classify", head / "cat.png", *model, "--class-names",
                          head / names, "--json", "--top-k", "4")
        assert rc == 0
        assert sorted(t["name"] for t in json.loads(out)[0]["top"]) == sorted(NAMES)
    rc, _, err = _run(capsys, "saliency", head / "cat.png", *model, "--class-names",
                      head / "names.txt", "-t", "top2", "--out", tmp_path / "s")
    assert rc == 0, err
    for j in (1, 2):
        assert np.load(tmp_path / "s" / f"cat_top{j}_saliency.npy").shape == (80, 120)
    rc, _, err = _run(capsys, "saliency", head / "cat.png", *model, "--class-names",
                      head / "names.txt", "-t", "banana, date", "--out", tmp_path / "sum")
    assert rc == 0 and (tmp_path / "sum" / "cat_overlay.png").is_file(), err
    rc, out, err = _run(capsys, "localize", head / "cat.png", *model, "--class-names",
                        head / "names.txt", "-t", "cherry", "--json", "--out", tmp_path / "l")
    assert rc == 0, err
    assert json.loads(out)[0]["localizations"][0]["name"] == "cherry"


def test_every_bad_model_is_one_line(head, capsys, tmp_path):
    model = ["--model", "torchvision:mobilenet_v3_small", "--weights", head / "w.safetensors"]
    (tmp_path / "notmodel").mkdir()
    cases = [
        ([*model, "--num-classes", "10"], "--num-classes 10 does not match"),
        ([*model, "--class-names", head / "three.json"], "has 3 names, but the model has 4"),
        (["--model", f"hf:{tmp_path / 'notmodel'}"], "is not a Hugging Face model folder"),
        (["--model", "no_such_module_xyz:build"], "cannot import 'no_such_module_xyz'"),
        ([*model, "-t", "durian"], "unknown class 'durian'"),
    ]
    for args, words in cases:
        rc, out, err = _run(capsys, "saliency", head / "cat.png", *args, "--out",
                            tmp_path / "o")
        assert rc == 2 and words in err and err.strip().count("\n") == 0, err


FACTORIES = """
import torch
nn = torch.nn


def build(num_classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


class Seg(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return {"out": self.conv(x)}
"""


def test_a_factory_builds_the_model_and_one_without_logits_is_one_line(head, capsys, tmp_path,
                                                                       monkeypatch):
    (tmp_path / "my_models.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "n.txt").write_text("a\nb\n")
    rc, out, err = _run(capsys, "classify", head / "cat.png", "--model", "my_models:build",
                        "--num-classes", "2", "--class-names", tmp_path / "n.txt", "--json")
    assert rc == 0, err
    assert {t["name"] for t in json.loads(out)[0]["top"]} == {"a", "b"}
    rc, _, err = _run(capsys, "saliency", head / "cat.png", "--model", "my_models:Seg",
                      "--out", tmp_path / "o")
    assert rc == 2 and err.strip().count("\n") == 0
    assert "returns Tensor[1, 2, 224, 224], not class logits Tensor[B, K]" in err
