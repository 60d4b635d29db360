"""One register / list / get with "did you mean" (deepinside.registry) and its three users."""

from __future__ import annotations

import pytest

import deepinside
from deepinside.registry import Registry, did_you_mean


def test_register_get_list_and_mapping():
    r: Registry[int] = Registry("colour", hint="or #rrggbb")
    r.register("red", 1)
    r.register("green", 2)
    r.register("dark-red", 3)
    assert r.get("green") == 2 and r["red"] == 1 and "red" in r and len(r) == 3
    assert r.list() == ["red", "green", "dark-red"] and r.list("*red") == ["red", "dark-red"]
    assert r.get("blue", None) is None
    assert dict(r) == {"red": 1, "green": 2, "dark-red": 3}
    with pytest.raises(KeyError, match=r"unknown colour 'gren'; did you mean green .*#rrggbb"):
        r.get("gren")
    with pytest.raises(ValueError):
        r.register("", 0)


def test_decorator_returns_the_function_itself():
    r: Registry[tuple] = Registry("thing")

    @r.decorator("twice", lambda fn: (fn, "doubles"))
    def twice(x):
        return 2 * x

    assert twice(3) == 6 and r["twice"] == (twice, "doubles")


def test_did_you_mean():
    assert did_you_mean("gradcan", ["gradcam", "occlusion"]) == "; did you mean gradcam"
    assert did_you_mean("zzz", ["gradcam"]) == ""


def test_models_methods_and_recipes_share_it():
    with pytest.raises(KeyError, match="did you mean gradcam"):
        deepinside.get_method("gradcan")
    assert list(deepinside.list_methods("gradcam*")) == ["gradcam", "gradcam_pp"]
    assert list(deepinside.list_models("*lite0")) == ["efficientnet_lite0"]
    with pytest.raises(deepinside.ModelLoadError, match=r"did you mean efficientnet_lite.*known"):
        deepinside.load_model("efficientnet_lite")
    assert "paper" in deepinside.RECIPES and deepinside.RECIPES["paper"].method == "gradient"
    with pytest.raises(KeyError, match="did you mean paper"):
        deepinside.RECIPES.get("papr")
