"""What to explain: every target form resolved in one place (deepinside.targets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import make_tiny

from deepinside.models import Classifier, Preprocessing
from deepinside.targets import (
    class_indices,
    class_score,
    is_top_k,
    resolve_targets,
    take,
    target_scores,
)

NAMES = ["red fox, Vulpes vulpes", "goldfish", "great white shark", "tiger shark", "hen"]
LOGITS = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0], [5.0, 0.0, 4.0, 1.0, 3.0]])


def clf() -> Classifier:
    return Classifier(make_tiny(), Preprocessing(input_size=(8, 8), resize_size=9), NAMES, "t")


def test_none_is_each_rows_top1():
    assert resolve_targets(None, LOGITS).tolist() == [1, 0]


@pytest.mark.parametrize("target, expect", [
    (3, [3, 3]), (np.int64(2), [2, 2]), ([4, 0], [4, 0]), (torch.tensor([1, 2]), [1, 2]),
    ((np.int32(0), 1), [0, 1]),
])
def test_indices(target, expect):
    t = resolve_targets(target, LOGITS)
    assert t.dtype == torch.long and t.tolist() == expect


def test_names_need_a_classifier_and_resolve_through_it():
    assert resolve_targets("goldfish", LOGITS, clf()).tolist() == [1, 1]
    assert resolve_targets(["Vulpes vulpes", 3], LOGITS, clf()).tolist() == [0, 3]
    with pytest.raises(TypeError, match="needs a deepinside Classifier"):
        resolve_targets("goldfish", LOGITS)
    with pytest.raises(ValueError, match="did you mean 'goldfish'"):
        resolve_targets("goldfsh", LOGITS, clf())


def test_top_k_keeps_the_order_of_the_scores():
    assert is_top_k("top5") == 5 and is_top_k("top-2") == 2 and is_top_k("goldfish") is None
    t = resolve_targets("top3", LOGITS)
    assert t.shape == (2, 3) and t.tolist() == [[1, 3, 2], [0, 2, 4]]
    assert target_scores(t, LOGITS).tolist() == [[3.0, 2.0, 1.0], [5.0, 4.0, 3.0]]
    assert resolve_targets("top9", LOGITS).shape == (2, 5)  # at most every class


def test_callable_targets_pass_through_and_score_each_row():
    both = class_score([1, 3])
    assert resolve_targets(both, LOGITS) is both
    assert target_scores(both, LOGITS).tolist() == [5.0, 1.0]
    weighted = class_score([0, 2], weights=[1.0, -1.0])
    assert target_scores(weighted, LOGITS).tolist() == [-1.0, 1.0]
    assert take(both, torch.tensor([1])) is both
    assert take(torch.tensor([7, 8, 9]), torch.tensor([2, 0])).tolist() == [9, 7]
    with pytest.raises(ValueError, match="one score per example"):
        target_scores(lambda z: z, LOGITS)


@pytest.mark.parametrize("bad, error", [
    (True, TypeError), ([1, True], TypeError), (torch.tensor([0.5, 1.0]), TypeError),
    (5, ValueError), (-1, ValueError), ([1, 2, 3], ValueError), (1.5, TypeError),
])
def test_bad_targets_are_clear_errors(bad, error):
    with pytest.raises(error):
        resolve_targets(bad, LOGITS)


def test_class_indices_for_class_models():
    assert class_indices(2) == [2]
    assert class_indices(["hen", 1], clf()) == [4, 1]
    assert class_indices(torch.tensor([3, 0])) == [3, 0]
    with pytest.raises(ValueError, match="out of range"):
        class_indices(7, clf())
    with pytest.raises(ValueError, match="no classes"):
        class_indices([])
