"""Signed maps and their scale: colours centred on 0, colour bars, the methods grid."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepinside import render


def test_sign_modes_take_the_right_part():
    m = np.array([[-2.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(render.sign_part(m, "absolute"), [[2, 0], [1, 3]])
    np.testing.assert_array_equal(render.sign_part(m, "positive"), [[0, 0], [1, 3]])
    np.testing.assert_array_equal(render.sign_part(m, "negative"), [[2, 0], [0, 0]])
    np.testing.assert_array_equal(render.sign_part(m, "all"), m)
    with pytest.raises(ValueError, match="sign must be one of"):
        render.sign_part(m, "both")


def test_diverging_colours_are_centred_on_zero():
    m = np.array([[-1.0, 0.0, 1.0]], dtype=np.float32)
    rgb, limit, cmap = render.colourize(m, "all", limit=1.0)
    lut = render._lut("RdBu_r")
    assert cmap == "RdBu_r" and limit == 1.0
    np.testing.assert_array_equal(rgb[0, 0], lut[0])  # -limit: the blue end
    np.testing.assert_array_equal(rgb[0, 2], lut[-1])  # +limit: the red end
    np.testing.assert_array_equal(rgb[0, 1], lut[len(lut) // 2])  # 0: the middle (white)
    # a map and its negation swap ends; magnitudes keep today's look
    flipped, _, _ = render.colourize(-m, "all", limit=1.0)
    np.testing.assert_array_equal(flipped[0, ::-1], rgb[0])
    pos = np.abs(np.random.default_rng(0).normal(size=(8, 8))).astype(np.float32)
    np.testing.assert_array_equal(render.colourize(pos, "absolute")[0], render.heatmap(pos))


def test_colour_bar_and_grid_are_drawn(tmp_path):
    img = np.zeros((50, 60, 3), dtype=np.uint8)
    out = render.with_colour_bar(img, -0.5, 0.5, "RdBu_r")
    assert out.shape[0] == 50 and out.shape[1] > 60 + 16
    photo = Image.new("RGB", (40, 30), (100, 120, 140))
    rng = np.random.default_rng(1)
    maps = [(f"m{i}", rng.normal(size=(30, 40)).astype(np.float32), s)
            for i, s in enumerate(["absolute", "all", "positive", "all", "negative", "all"])]
    path = render.save_map_grid(tmp_path / "grid.png", photo, maps, columns=4)
    w, h = Image.open(path).size
    assert h > 1.2 * w / 4 and w < 2 * h * 4 / 2  # a grid of rows, not one long strip
    render.save_map_grid(tmp_path / "shared.png", photo, maps, shared_scale=True)
