"""deepinside.methods._registry: what a method says about itself, read from its signature."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pytest

from deepinside.methods import list_methods
from deepinside.methods._registry import METHODS, Param, Range, read_params, register_method


def _method(model, images, target=None, *, steps: Annotated[int, Range(2, 9)] = 4,
            mode: Literal["a", "b"] = "a", noise: float = 0.1, layer=None, seed: int = 0,
            progress=None, fast: bool = True, table=(1, 2), **more):
    return images


def test_params_come_from_the_annotations_then_the_shared_names():
    p = {q.name: q for q in read_params(_method)}
    assert list(p) == ["steps", "mode", "noise", "layer", "seed", "progress", "fast"]  # no
    assert (p["steps"].kind, p["steps"].min, p["steps"].max) == ("int", 2, 9)  # tuple, **more
    assert p["mode"].kind == "choice" and p["mode"].choices == ("a", "b")
    assert (p["noise"].min, p["noise"].max, p["noise"].finite) == (0.0, 1.0, True)  # shared
    assert p["seed"].max == 2**31 - 1 and p["layer"].kind == "layer"
    assert [q.role for q in p.values()] == ["option"] * 5 + ["callback", "engine"]
    assert p["mode"].spec() == {"type": "str", "default": "a", "choices": ["a", "b"]}


@pytest.mark.parametrize(("value", "error"), [
    (3, None), (True, "of type int"), (2.5, "of type int"), (10, "between 2 and 9"),
    ("3", "of type int")])
def test_a_param_checks_type_and_bounds(value, error):
    steps = Param("steps", "int", 4, min=2, max=9)
    if error is None:
        assert steps.check(value) == value
    else:
        with pytest.raises(ValueError, match=error):
            steps.check(value)


def test_floats_must_be_finite_and_choices_and_layers_known():
    noise = Param("noise", "float", 0.1, min=0.0, max=1.0, finite=True)
    assert noise.check(1) == 1.0 and isinstance(noise.check(1), float)
    with pytest.raises(ValueError, match="finite"):
        Param("scale", "float", 1.0, finite=True).check(math.nan)
    with pytest.raises(ValueError, match="one of a, b"):
        Param("mode", "choice", "a", choices=("a", "b")).check("c")
    layer = Param("layer", "layer", None)
    assert layer.check("blocks.*", layers=["stem", "blocks.0", "blocks.1"]) == "blocks.*"
    assert layer.check(None) is None
    with pytest.raises(ValueError, match="did you mean blocks.1"):
        layer.check("blocks.l", layers=["stem", "blocks.0", "blocks.1"])


def test_check_options_refuses_unknown_names_and_engine_switches():
    info = list_methods()["integrated_gradients"]
    assert info.check_options({"steps": 8, "baseline": "blur"}) == {"steps": 8,
                                                                    "baseline": "blur"}
    with pytest.raises(ValueError, match="has no parameter 'colour'"):
        info.check_options({"colour": "red"})
    with pytest.raises(ValueError, match="not an option a request may set"):
        info.check_options({"fast": False})
    with pytest.raises(ValueError, match="between 1 and 256"):
        info.check_options({"steps": 100000})


def test_register_method_checks_its_facts():
    with pytest.raises(ValueError, match="cost"):
        register_method("zz_bad", "x", "https://x", cost="quick")(_method)
    with pytest.raises(ValueError, match="report"):
        register_method("zz_bad", "x", "https://x", report="yes")(_method)
    assert "zz_bad" not in METHODS


def test_a_methods_default_sign_and_the_options_that_keep_its_sign():
    infos = list_methods()
    ig, gradcam, lrp = infos["integrated_gradients"], infos["gradcam"], infos["lrp"]
    assert (ig.default_sign, lrp.default_sign, gradcam.default_sign) == ("all", "all", "absolute")
    assert ig.sign_options("all") == ig.sign_options("negative") == {"reduce": "sum"}
    assert ig.sign_options("absolute") == {} and gradcam.sign_options("all") == {}
    assert ig.signs == ("absolute", "positive", "negative", "all")
    assert gradcam.signs == (gradcam.default_sign,)  # a map of magnitudes: no other part
