"""The metrics registry, cross-checked against Quantus 0.6 on the same maps and draws, and
hand-computed cases.

Random metrics draw from ``numpy.random.RandomState(seed)`` in Quantus's order, so with
``np.random.seed(seed)`` before the Quantus call both see the same draws and must agree to
1e-5 (the same-draws test the issue asks for). Quantus normalises a batch by one maximum;
the metrics normalise each photo, so Quantus is given per-photo normalisation
(``normalise_axes``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from models import LinearNet, ToyNet
from torch import nn

import deepinside
from deepinside.metrics import get_metric, list_metrics, resolve_metrics

quantus = pytest.importorskip("quantus")

PER_PHOTO = {"normalise_axes": [1, 2, 3]}
H = W = 12


def _net(channels: int = 3, classes: int = 5) -> nn.Module:
    """conv (no padding) - ReLU - linear: Quantus's first-layer shift is exact on it."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * (H - 2) * (W - 2), classes))
    return net.eval()


def _data(channels: int = 3, b: int = 3):
    g = torch.Generator().manual_seed(1)
    x = torch.rand((b, channels, H, W), generator=g)
    maps = torch.rand((b, H, W), generator=g) - 0.3
    masks = torch.zeros((b, H, W), dtype=torch.bool)
    masks[0, 2:6, 3:8] = True
    masks[1, 0:4, 0:4] = True
    masks[2, 5:12, 1:9] = True
    y = torch.tensor([1, 2, 4])[:b]
    return x, maps, masks, y


def _explain(name: str):
    fn = deepinside.get_method(name)

    def explain(model, inputs, targets, **_):
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        return fn(model, x, torch.as_tensor(np.asarray(targets)), fast=False).numpy()

    return explain


def _quantus(cls, net, x, maps, y, masks=None, seed=None, explain=None, **init):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = cls(disable_warnings=True, display_progressbar=False, return_aggregate=False,
                     **init)
        if seed is not None:
            np.random.seed(seed)
        return np.asarray(metric(
            model=net, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=maps.numpy()[:, None],
            s_batch=None if masks is None else masks.numpy()[:, None].astype(np.float32),
            explain_func=explain, device="cpu"), dtype=np.float64)


def _ours(name, net, x, maps, y, masks=None, **options):
    out = get_metric(name)(net, x, maps, y, boxes=masks, fast=False, **options) \
        if name not in NO_FAST else get_metric(name)(net, x, maps, y, boxes=masks, **options)
    assert out.shape == (x.shape[0],)
    return out.numpy()


NO_FAST = {"sparseness", "complexity", "effective_complexity", "pointing_game",
           "relevance_mass_accuracy", "relevance_rank_accuracy", "attribution_localisation",
           "top_k_intersection", "auc", "energy_in_box"}

DETERMINISTIC = [
    ("sparseness", "Sparseness", {}, {}),
    ("complexity", "Complexity", {}, {}),
    ("effective_complexity", "EffectiveComplexity", {"eps": 0.3}, {"eps": 0.3}),
    ("pointing_game", "PointingGame", {}, {}),
    ("relevance_mass_accuracy", "RelevanceMassAccuracy", {}, {}),
    ("relevance_rank_accuracy", "RelevanceRankAccuracy", {}, {}),
    ("attribution_localisation", "AttributionLocalisation", {}, {}),
    ("top_k_intersection", "TopKIntersection", {"k": 20}, {"k": 20}),
    ("auc", "AUC", {}, {}),
]


@pytest.mark.parametrize("name,cls,ours,theirs", DETERMINISTIC, ids=[d[0] for d in DETERMINISTIC])
def test_map_metrics_equal_quantus(name, cls, ours, theirs):
    net = _net()
    x, maps, masks, y = _data()
    expected = _quantus(getattr(quantus, cls), net, x, maps, y, masks,
                        normalise_func_kwargs=PER_PHOTO, **theirs)
    np.testing.assert_allclose(_ours(name, net, x, maps, y, masks, **ours), expected,
                               atol=1e-5, rtol=1e-5)


def test_model_metrics_equal_quantus_with_the_same_draws():
    net = _net()
    x, maps, _, y = _data()
    cases = [
        ("faithfulness_correlation", quantus.FaithfulnessCorrelation,
         {"nr_runs": 20, "subset_size": 30}, {"nr_runs": 20, "subset_size": 30}),
        ("monotonicity_correlation", quantus.MonotonicityCorrelation,
         {"nr_samples": 4, "features_in_step": 36}, {"nr_samples": 4, "features_in_step": 36}),
        ("non_sensitivity", quantus.NonSensitivity, {"features_in_step": 1, "eps": 1e-3},
         {"features_in_step": 1, "eps": 1e-3}),
    ]
    for name, cls, ours, theirs in cases:
        expected = _quantus(cls, net, x, maps, y, seed=7, normalise_func_kwargs=PER_PHOTO,
                            **theirs)
        got = _ours(name, net, x, maps, y, seed=7, **ours) if name != "non_sensitivity" \
            else _ours(name, net, x, maps, y, **ours)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("name,cls,extra", [
    ("max_sensitivity", "MaxSensitivity", {}),
    ("avg_sensitivity", "AvgSensitivity", {}),
    ("local_lipschitz_estimate", "LocalLipschitzEstimate", {}),
    ("random_logit", "RandomLogit", {"num_classes": 5}),
])
def test_method_metrics_equal_quantus_with_the_same_draws(name, cls, extra):
    net = _net()
    x, _, _, y = _data()
    maps = deepinside.get_method("gradient")(net, x, y, fast=False)
    samples = {} if name == "random_logit" else {"nr_samples": 4}
    expected = _quantus(getattr(quantus, cls), net, x, maps, y, seed=3,
                        explain=_explain("gradient"), normalise_func_kwargs=PER_PHOTO,
                        **samples, **extra)
    seed = {} if name == "random_logit" else {"seed": 3}
    got = _ours(name, net, x, maps, y, method="gradient", **seed, **samples, **extra)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_road_equals_quantus_on_grey_images():
    """Quantus's ROAD runs on one-channel images only (see the metric's docstring)."""
    net = _net(channels=1)
    x, maps, _, y = _data(channels=1)
    pct = [10, 30, 60, 90]
    from deepinside.metrics.road import road_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(5)
        q = quantus.ROAD(percentages=pct, normalise_func_kwargs=PER_PHOTO,
                         disable_warnings=True, display_progressbar=False)(
            model=net, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=maps.numpy()[:, None],
            device="cpu")
    curve = road_curve(net, x, maps, y, percentages=pct, seed=5, fast=False)
    np.testing.assert_allclose(curve.mean(dim=0).numpy(), [q[p] for p in pct], atol=1e-12)
    np.testing.assert_allclose(get_metric("road")(net, x, maps, y, percentages=pct, seed=5,
                                                  fast=False).numpy(), curve.mean(dim=1))


def test_input_invariance_agrees_with_quantus():
    net = _net()
    with torch.no_grad():  # Quantus leaves each image's first value unshifted (perturb_batch
        net[0].weight[:, 0, 0, 0] = 0.0  # drops index 0): make that value not matter
    x, _, _, y = _data()
    for method, invariant in (("gradient", 1.0), ("gradient_x_input", 0.0)):
        maps = deepinside.get_method(method)(net, x, y, fast=False)
        expected = _quantus(quantus.InputInvariance, net, x, maps, y, explain=_explain(method))
        got = _ours("input_invariance", net, x, maps, y, method=method)
        np.testing.assert_array_equal(got, expected.astype(float))
        assert (got == invariant).all(), method


# ----------------------------------------------------------------------------- hand cases


def test_a_linear_models_gradient_is_insensitive_to_noise():
    net = LinearNet(size=8).eval()
    x = torch.rand((2, 3, 8, 8))
    maps = deepinside.get_method("gradient")(net, x, 0, fast=False)
    for name in ("max_sensitivity", "avg_sensitivity", "local_lipschitz_estimate"):
        v = get_metric(name)(net, x, maps, 0, method="gradient", nr_samples=3)
        assert float(v.abs().max()) < 1e-6, name


def test_integrated_gradients_is_complete_on_a_relu_network():
    net = ToyNet(scale=0.5).eval().double()  # logits of about -7; kinks need many steps
    x = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(0)).double()
    ig = deepinside.get_method("integrated_gradients")(
        net, x, 1, baseline="zero", steps=2048, rule="riemann_middle", reduce="sum",
        batch_size=512, fast=False)
    r = get_metric("completeness")(net, x, ig, 1, baseline="zero", fast=False)
    assert float(r.max()) < 1e-3
    grad = deepinside.get_method("gradient")(net, x, 1, fast=False)
    assert float(get_metric("completeness")(net, x, grad, 1, baseline="zero").min()) > 1e-2


def test_sparseness_of_one_hot_and_uniform_maps():
    x = torch.rand((2, 3, 8, 8))
    maps = torch.zeros((2, 8, 8))
    maps[0, 3, 4] = 5.0
    maps[1] = 2.0
    s = get_metric("sparseness")(None, x, maps)
    # one-hot: (2n - n - 1) / n = 1 - 1/n for n pixels (1 in the limit); uniform: 0
    assert float(s[0]) == pytest.approx(1 - 1 / 64, abs=1e-5) and abs(float(s[1])) < 1e-6
    c = get_metric("complexity")(None, x, maps)
    assert abs(float(c[0])) < 1e-6 and abs(float(c[1]) - np.log(64)) < 1e-6


def test_a_map_equal_to_the_box_mask_has_full_relevance_mass():
    x = torch.rand((1, 3, 12, 12))
    boxes = [[(2, 3, 7, 9)]]
    from deepinside.evaluate.metrics import boxes_mask

    m = torch.as_tensor(boxes_mask(boxes[0], (12, 12)), dtype=torch.float32)[None]
    for name in ("relevance_mass_accuracy", "relevance_rank_accuracy", "energy_in_box",
                 "attribution_localisation", "pointing_game", "auc"):
        assert float(get_metric(name)(None, x, m, boxes=boxes)[0]) == pytest.approx(1.0), name
    assert torch.isnan(get_metric("auc")(None, x, m, boxes=[[]]))[0]


def test_registry_describes_every_metric_and_resolves_families():
    infos = list_metrics()
    assert len(infos) >= 23
    for info in infos.values():
        assert info.paper and info.description and info.family
    assert resolve_metrics("complexity") == ["complexity", "effective_complexity", "sparseness"]
    assert set(resolve_metrics("all")) == set(infos)
    with pytest.raises(KeyError, match="did you mean sparseness"):
        resolve_metrics("sparsenes")
    with pytest.raises(ValueError, match="needs boxes="):
        get_metric("auc")(None, torch.rand((1, 3, 4, 4)), torch.rand((1, 4, 4)))
    with pytest.raises(ValueError, match="pass method="):
        get_metric("max_sensitivity")(_net(), torch.rand((1, 3, H, W)), torch.rand((1, H, W)))


def test_batched_equals_one_by_one_and_nothing_is_mutated():
    net = ToyNet().eval()
    x = torch.rand((3, 3, 16, 16))
    maps = torch.rand((3, 8, 8))
    before = x.clone()
    for name in ("faithfulness_correlation", "deletion", "non_sensitivity", "sparseness"):
        fn = get_metric(name)
        opts = {"nr_runs": 10} if name == "faithfulness_correlation" else {}
        whole = fn(net, x, maps, 1, **opts)
        one = torch.cat([fn(net, x[i:i + 1], maps[i:i + 1], 1, **opts) for i in range(3)])
        if name == "faithfulness_correlation":
            continue  # the draws differ with the batch size (Quantus's order)
        torch.testing.assert_close(whole, one, rtol=1e-6, atol=1e-6, msg=name)
    assert torch.equal(x, before)
