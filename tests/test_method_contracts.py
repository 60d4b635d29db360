"""The contract every registered method keeps, in one table-driven suite (Captum's style).

Each test runs over ``list_methods()``, so a new method file is checked without editing this
one: batched equals one by one, finite maps of the input's size, the caller's model and
tensors untouched (train/eval flags, ``requires_grad``, weights, ``.grad``, hooks), nothing
left behind after an error, and a :class:`MethodInfo` that describes the function.
``LIGHT`` only makes the costly methods cheap here (a method not listed runs with its
defaults); a method with several entries is checked with each (chunks that cross images).
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from models import ORIGINAL_RELU, ToyNet, tiny_classifier

from deepinside.engine import input_gradient
from deepinside.fastmodel import fast_copy, has_hooks
from deepinside.methods import get_method, list_methods
from deepinside.methods._registry import COSTS

torch.set_num_threads(1)

LIGHT: dict[str, list[dict]] = {
    "smoothgrad": [{"samples": 3, "batch_size": 4}],
    "integrated_gradients": [{"steps": 5, "batch_size": 7}],
    "occlusion": [{"window": 6, "stride": 3, "batch_size": 10}],
    "rise": [{"masks": 40, "grid": 4, "batch_size": 16},
             {"masks": 40, "grid": 4, "batch_size": 13}],
    "extremal_perturbation": [{"iterations": 6, "step": 2, "sigma": 4, "max_blur": 3,
                               "batch_size": 2}],
    "gradient_shap": [{"samples": 3, "batch_size": 4},
                      {"samples": 4, "noise": 0.1, "batch_size": 5}],
    "deeplift": [{}, {"batch_size": 2}],
    "scorecam": [{"batch_size": 16}, {"batch_size": 5}],
    "ablationcam": [{"batch_size": 16}, {"batch_size": 5}],
}
METHODS = sorted(list_methods())
CASES = [pytest.param(name, opts, id=f"{name}-{i}" if i else name)
         for name in METHODS for i, opts in enumerate(LIGHT.get(name, [{}]))]
LAYER = "features.5"  # tiny_classifier's second ReLU: Tensor[B, 8, 16, 16]


def light(name: str) -> dict:
    return dict(LIGHT.get(name, [{}])[0])


def _images(b=3, size=16, seed=1):
    return torch.randn((b, 3, size, size), generator=torch.Generator().manual_seed(seed))


def _takes(name: str, option: str) -> bool:
    return option in inspect.signature(get_method(name)).parameters


@pytest.mark.parametrize(("name", "opts"), CASES)
def test_batched_equals_one_by_one(name, opts):
    net = ToyNet("relu_inplace").eval()
    x = _images(3)
    t = torch.tensor([4, 0, 2])
    fn = get_method(name)
    whole = fn(net, x, t, **opts)
    assert whole.shape == (3, 16, 16)
    assert torch.isfinite(whole).all()
    for i in range(3):
        one = fn(net, x[i : i + 1], int(t[i]), **opts)
        atol = 1e-5 * float(whole.abs().max())  # occlusion: differences of logits
        torch.testing.assert_close(whole[i : i + 1], one, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", METHODS)
def test_caller_state_untouched(name):
    net = ToyNet("relu_inplace")
    net.train()
    net.conv2.eval()
    net.conv1.weight.requires_grad_(False)
    x = _images(2)
    x.requires_grad_(False)
    before = x.clone()
    params = {k: v.clone() for k, v in net.state_dict().items()}
    get_method(name)(net, x, **light(name))
    assert torch.equal(x, before) and not x.requires_grad
    assert net.training and not net.conv2.training and net.conv1.training
    assert not net.conv1.weight.requires_grad and net.conv2.weight.requires_grad
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in params.items())
    assert all(p.grad is None for p in net.parameters())
    assert not has_hooks(net)
    assert torch._C._len_torch_function_stack() == 0  # no rectifier rule left active
    assert F.relu(torch.tensor([-1.0])).item() == 0.0


@pytest.mark.parametrize("name", METHODS)
def test_batched_equals_one_by_one_and_the_classifier_is_untouched(name):
    """On a Classifier with mixed train/eval flags, inputs that require grad, and (for the
    layer methods) a layer chosen by name."""
    clf = tiny_classifier()
    net = clf.module
    net.train()
    net.features[1].eval()  # mixed flags must come back as they were
    net.head.weight.requires_grad_(True)
    flags = {n: m.training for n, m in net.named_modules()}
    grads = {n: p.requires_grad for n, p in net.named_parameters()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = _images(3, 32, seed=2)
    x.requires_grad_(True)
    t = torch.tensor([1, 2, 4])
    kw = light(name)
    if _takes(name, "layer"):
        kw["layer"] = LAYER
    fn = get_method(name)
    batched = fn(clf, x, t, **kw)
    one = torch.cat([fn(clf, x[i : i + 1], t[i : i + 1], **kw) for i in range(3)])
    torch.testing.assert_close(batched, one, rtol=1e-4, atol=1e-5 * float(one.abs().max()))
    assert batched.shape == (3, 32, 32) and batched.requires_grad is False
    assert {n: m.training for n, m in net.named_modules()} == flags
    assert {n: p.requires_grad for n, p in net.named_parameters()} == grads
    assert all(p.grad is None for p in net.parameters()) and x.grad is None and x.requires_grad
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert not has_hooks(net)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("fast", [False, True])
def test_nothing_left_behind_after_an_error(name, fast):
    net = ToyNet("relu_module").eval()
    x = _images(2)
    net.fail = True
    opts = light(name)
    with pytest.raises(RuntimeError, match="forced failure"):
        get_method(name)(net, x, 1, fast=fast, **opts)
    assert torch._C._len_torch_function_stack() == 0  # no rectifier rule left active
    assert F.relu is ORIGINAL_RELU
    assert not has_hooks(net)
    net.fail = False  # and the model (and its private copy) still work as before
    copy = fast_copy(net, x)
    assert copy is None or not has_hooks(copy)
    torch.testing.assert_close(
        get_method("gradient")(net, x, 1, fast=fast),
        input_gradient(net, x, 1, fast=False)[0].abs().amax(1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_method_info_describes_the_function(name):
    info = list_methods()[name]
    assert info.fn is get_method(name) and info.name == name
    assert info.description and "http" in info.paper
    assert info.cost in COSTS
    signature = inspect.signature(info.fn).parameters
    for p in info.params:
        assert signature[p.name].default == p.default, p.name
        assert (p.min is None) == (p.max is None), p.name
        if p.min is not None and p.default is not None:
            assert p.min <= p.default <= p.max, p.name
        if p.choices is not None and p.default is not None:
            assert p.default in p.choices, p.name
        assert p.request == (p.name not in ("fast", "amp", "compiled", "upsample_to_input",
                                            "progress")), p.name
    for option in info.demo:
        assert option in signature, option


@pytest.mark.parametrize("name", METHODS)
def test_an_unsigned_method_gives_no_negative_value(name):
    info = list_methods()[name]
    m = info.fn(ToyNet("relu_inplace").eval(), _images(2), **light(name))
    if not info.signed:
        assert float(m.min()) >= 0.0, name
