"""Hugging Face image classifiers (issue #19): ``hf:DIR`` loads a ``save_pretrained`` folder
offline with its own processor and names, and every method works on every family.

The models are tiny random ones built from configs (``hf_models.py``), batch-norm statistics
set on random images; nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
from hf_models import FAMILIES, LABELS, build, family, save
from test_model_families import _assert_unchanged, _options, _same_up_to_rounding, _snapshot

import deepinside
from deepinside.engine import default_layer
from deepinside.methods import get_method, list_methods

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

ALL_METHODS = ("vit", "resnet", "pvt")  # every registered method on these; a few on the others
FEW = ("gradient", "gradcam", "integrated_gradients")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hf")
    return {name: save(name, root / name) for name in FAMILIES}


@pytest.fixture(scope="module")
def photo():
    from PIL import Image
    from skimage import data

    return Image.fromarray(data.chelsea()).convert("RGB")  # 451 x 300, not square


@pytest.mark.parametrize("name", FAMILIES)
def test_hf_folder_gives_the_processors_probabilities_and_names(folders, photo, name):
    """Same probabilities as the user's own processor + model on a photo (1e-4), names from
    id2label, the default CAM layer of the family, the paper's map == autograd on .logits."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    clf = deepinside.load_model(f"hf:{folders[name]}")
    assert clf.class_names == ["cat", "dog", "bird"] and clf.name == f"hf:{folders[name]}"
    proc = AutoImageProcessor.from_pretrained(folders[name])
    model = AutoModelForImageClassification.from_pretrained(folders[name]).eval()
    with torch.no_grad():
        want = model(**proc(images=photo, return_tensors="pt")).logits
    x = deepinside.photos_to_batch([photo], clf.preprocessing, crop=True)
    got = deepinside.forward_logits(clf, x)
    torch.testing.assert_close(got.softmax(1), want.softmax(1), rtol=0, atol=1e-4)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    assert clf.top_classes(got)[0][0]["name"] == ["cat", "dog", "bird"][int(want.argmax())]

    size = family(name).size
    xs = deepinside.photos_to_batch([photo, photo.rotate(90, expand=True)], clf.preprocessing,
                                    crop=False)
    assert xs.shape == (2, 3, size, size)
    assert default_layer(clf.module, xs) == family(name).default
    leaf = xs.clone().requires_grad_(True)
    logits = model(leaf).logits
    top = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, top[:, None]).sum(), leaf)
    torch.testing.assert_close(deepinside.saliency(clf, xs), g.abs().amax(1),
                               rtol=1e-4, atol=1e-5 * float(g.abs().max()))
    cam = get_method("gradcam")(clf, xs, relu=False)
    assert torch.isfinite(cam).all() and (cam.abs().amax(dim=(1, 2)) > 0).all()


def _methods():
    for name in FAMILIES:
        for method in sorted(list_methods()) if name in ALL_METHODS else FEW:
            yield pytest.param(name, method, id=f"{name}-{method}")


_MODELS: dict = {}


@pytest.mark.parametrize(("name", "method"), list(_methods()))
def test_methods_on_an_in_memory_hf_model(name, method):
    """A PreTrainedModel passed as it is: finite maps, batched == one by one, the model (in
    training mode, trainable) left exactly as it was."""
    if name not in _MODELS:
        model, proc = build(name)
        model.train()
        _MODELS[name] = (model, deepinside.load_model(
            model, preprocessing=deepinside.Preprocessing.from_processor(proc)))
    model, clf = _MODELS[name]
    assert clf.module is model and clf.class_names == ["cat", "dog", "bird"]
    size = family(name).size
    fam = type("F", (), {"size": size, "narrow": family(name).narrow})
    fn = get_method(method)
    opts, per_channel = _options(fn, fam)
    x = torch.randn((2, 3, size, size), generator=torch.Generator().manual_seed(2))
    t = torch.tensor([1, 2])
    before = _snapshot(model)
    whole = fn(clf, x, t, **opts)
    assert whole.shape == (2, size, size) and torch.isfinite(whole).all()
    if not per_channel:
        for i in (0, 1):
            _same_up_to_rounding(fn(clf, x[i : i + 1], int(t[i]), **opts), whole[i : i + 1])
    _assert_unchanged(model, before)


def test_hf_errors_are_one_line(tmp_path, folders):
    (tmp_path / "empty").mkdir()
    cases = {
        f"hf:{tmp_path / 'empty'}": "is not a Hugging Face model folder",
        f"hf:{tmp_path / 'nowhere'}": "no such folder",
        "hf:someone/no-such-model-here": "not in the local Hugging Face cache",
    }
    for spec, match in cases.items():
        with pytest.raises(deepinside.ModelLoadError, match=match) as e:
            deepinside.load_model(spec)
        assert "\n" not in str(e.value)
    bert = tmp_path / "bert"
    transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                            intermediate_size=8).save_pretrained(bert)
    with pytest.raises(deepinside.ModelLoadError, match="is not an image classifier") as e:
        deepinside.load_model(f"hf:{bert}")
    assert "\n" not in str(e.value)
    bare = tmp_path / "bare"
    build("resnet")[0].save_pretrained(bare)  # the model without its processor
    with pytest.raises(deepinside.ModelLoadError, match="has no usable image processor"):
        deepinside.load_model(f"hf:{bare}")
    with pytest.raises(deepinside.ModelLoadError, match="--num-classes 5 does not match"):
        deepinside.load_model(f"hf:{folders['resnet']}", num_classes=5)


def test_the_fast_copy_folds_an_hf_models_batch_norm():
    """The folded copy of an HF ResNet (whose forward returns a ModelOutput) is made and exact."""
    from deepinside.engine import eval_mode
    from deepinside.fastmodel import fast_copy

    model, _ = build("resnet")
    x = torch.randn((2, 3, 32, 32), generator=torch.Generator().manual_seed(3))
    net = fast_copy(model, x)
    assert net is not None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    with torch.no_grad(), eval_mode(model):
        want = model(x).logits
    torch.testing.assert_close(deepinside.forward_logits(model, x), want, rtol=1e-4,
                               atol=1e-5 * float(want.abs().max()))


def test_a_timm_model_saved_through_transformers_loads_with_timms_own_preprocessing(tmp_path):
    """A ``TimmWrapper`` classifier saved without an image processor (its config holds none)
    takes timm's data config; its ViT's prefix (class and 4 register) tokens are read from
    the timm model inside, so a 2 x 2 grid of 9 tokens is not taken for 3 x 3."""
    from timm.data import resolve_data_config

    from deepinside.engine import capture_layer

    torch.manual_seed(0)
    cfg = transformers.TimmWrapperConfig(
        architecture="vit_tiny_patch16_224", num_labels=3, id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
        model_args={"img_size": 32, "depth": 2, "reg_tokens": 4, "dynamic_img_size": True})
    model = transformers.TimmWrapperForImageClassification(cfg).eval()
    model.save_pretrained(tmp_path)
    clf = deepinside.load_model(f"hf:{tmp_path}")
    assert clf.class_names == ["cat", "dog", "bird"]
    assert clf.preprocessing == deepinside.Preprocessing.from_timm(
        resolve_data_config({}, model=clf.module.timm_model))
    x = torch.randn((2, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(deepinside.forward_logits(clf, x), model(x).logits)
    assert default_layer(clf.module, x) == "timm_model.blocks.1.norm1"
    seen = []
    hook = model.timm_model.blocks[1].norm1.register_forward_hook(
        lambda _m, _a, o: seen.append(o))
    try:
        with torch.no_grad():
            model(x)
    finally:
        hook.remove()
    cap = capture_layer(clf, x, 0)
    want = seen[0][:, 5:].reshape(2, 2, 2, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(cap.activations, want)
