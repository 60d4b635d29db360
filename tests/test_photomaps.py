"""deepinside.photomaps: photos -> maps at each photo's size; photos -> batch -> logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import tiny_classifier
from PIL import Image

from deepinside.engine import forward_logits
from deepinside.images import model_batch
from deepinside.photomaps import forward_photos, photo_maps


def _photos(n=5):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8))
            for i in range(n)]


def test_forward_photos_is_the_batch_then_one_forward_pass():
    clf = tiny_classifier()
    photos = _photos(3)
    for crop in (False, True):
        x, logits = forward_photos(clf, photos, crop=crop)
        want = model_batch(clf, photos, crop=crop)
        assert x.device == clf.device and x.dtype == clf.dtype
        torch.testing.assert_close(x, want)
        torch.testing.assert_close(logits, forward_logits(clf, want))


def test_progress_is_done_and_total_and_the_old_increments_still_work():
    clf = tiny_classifier()
    photos = _photos(5)
    calls: list[tuple[int, int]] = []
    photo_maps(clf, photos, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    steps: list[int] = []
    with pytest.warns(DeprecationWarning, match="progress"):
        photo_maps(clf, photos, batch_size=2, progress=steps.append)
    assert steps == [2, 2, 1]


def test_the_old_home_of_photo_maps_still_works():
    import deepinside
    import deepinside.images as images

    with pytest.warns(DeprecationWarning, match="deepinside.photomaps.photo_maps"):
        old = images.photo_maps
    assert old is photo_maps is deepinside.photo_maps
