"""deepinside.layers: finding a layer, the default layer, and any layout as a grid."""

from __future__ import annotations

import pytest
import torch
from models import make_tiny
from torch import nn

from deepinside.engine import trace
from deepinside.layers import find_layer, last_feature_map, layer_layout, to_grid


def test_find_layer_by_name_pattern_and_module_and_close_names_on_a_miss():
    net = make_tiny()
    assert find_layer(net, "conv2") == "conv2"
    assert find_layer(net, "bn*") == "bn2"  # a pattern: the last match in named_modules order
    assert find_layer(net, net.fc) == "fc"
    with pytest.raises(ValueError, match="conv1"):  # the close names
        find_layer(net, "conv_1")
    with pytest.raises(ValueError, match="not a submodule"):
        find_layer(net, nn.Linear(2, 2))
    with pytest.raises(TypeError):
        find_layer(net, 3)


def test_layouts_and_to_grid_for_each_family():
    net = nn.Module()
    x = torch.arange(2 * 4 * 3 * 5, dtype=torch.float32).reshape(2, 4, 3, 5)  # [B, C, h, w]
    assert layer_layout(net, x.shape, (6, 10)) == "NCHW"
    assert to_grid(net, x, image_size=(6, 10)) is x
    last = x.permute(0, 2, 3, 1)  # channels-last [B, h, w, C], as Swin's
    assert layer_layout(net, last.shape, (6, 10)) == "NHWC"
    torch.testing.assert_close(to_grid(net, last, image_size=(6, 10)), x)
    net.num_prefix_tokens = 1  # a ViT: a class token, then the 3 x 5 patch tokens row by row
    tokens = torch.cat([torch.full((2, 1, 4), -1.0), x.flatten(2).transpose(1, 2)], dim=1)
    assert layer_layout(net, tokens.shape, (6, 10)) == "NLC"
    torch.testing.assert_close(to_grid(net, tokens, image_size=(6, 10)), x)


@pytest.mark.parametrize("shape, why", [((2, 7), "vector per image"), ((2, 4, 1, 1), "1 x 1"),
                                        ((2, 1, 8), "token")])
def test_outputs_that_are_not_maps_are_errors_that_say_why(shape, why):
    with pytest.raises(ValueError, match=why):
        to_grid(nn.Module(), torch.zeros(shape), layer=None, image_size=(8, 8))


def test_to_grid_refuses_an_output_that_is_not_batched_per_image():
    with pytest.raises(ValueError, match="not the batch of 2 images"):
        to_grid(nn.Module(), torch.zeros(8, 4, 3, 3), batch=2)


def test_the_default_layer_is_the_last_feature_map_not_a_pooling_or_identity():
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()))
    net.add_module("same", nn.Identity())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(4, 3))
    traced = trace(net.eval(), torch.zeros(1, 3, 8, 8))
    assert last_feature_map(net, traced, (8, 8)) == "features"
    with pytest.raises(ValueError, match="no layer with a spatial"):
        last_feature_map(net, [t for t in traced if t[0] == "fc"], (8, 8))


def test_a_model_without_a_spatial_layer_is_one_actionable_line_for_every_layer_method():
    """A multilayer perceptron on the flattened pixels has no feature map: every method that
    takes a layer says so in one line and names what works instead, which does."""
    from deepinside.methods import get_method, list_methods

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(2, 3, 8, 8)
    layered = [n for n, info in list_methods().items()
               if any(p.name == "layer" for p in info.params)]
    assert {"gradcam", "scorecam", "ablationcam", "eigencam"} <= set(layered)
    for name in layered:
        with pytest.raises(ValueError, match=r"no layer with a spatial feature map.*pass "
                           r"layer=NAME, or use a method that needs no layer \(e\.g\. "
                           r"gradient") as e:
            get_method(name)(mlp, x, 1)
        assert "\n" not in str(e.value)
    assert get_method("gradient")(mlp, x, 1).abs().amax() > 0
