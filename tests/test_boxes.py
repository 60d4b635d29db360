"""deepinside.boxes: the box geometry and the localisation scores, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from deepinside.boxes import (
    box_iou,
    boxes_mask,
    check_box,
    energy_in_boxes,
    fit_boxes,
    gt_known_hit,
    map_peak,
    pointing_hit,
    top1_loc_hit,
    top5_loc_error,
)


def test_iou_by_hand_and_bad_boxes():
    assert box_iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(2 / 6)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # empty union
    for bad in [(0, 0, 1), (2, 0, 1, 1), (0, 0, float("nan"), 1)]:
        with pytest.raises(ValueError):
            check_box(bad)


def test_fit_boxes_clips_and_drops_with_a_note_each():
    kept, notes = fit_boxes([(-5, 0, 10, 10), (20, 20, 30, 30), (1, 1, 2, 2)], 12, 12)
    assert kept == [(0.0, 0.0, 10.0, 10.0), (1.0, 1.0, 2.0, 2.0)]
    assert len(notes) == 2 and "clipped" in notes[0] and "ignored" in notes[1]


def test_gt_known_top1_and_top5_by_hand():
    gt = [(0, 0, 10, 10)]
    good, bad = (0, 0, 10, 8), (0, 0, 10, 4)  # IoU 0.8 and 0.4
    assert gt_known_hit(good, gt) and not gt_known_hit(bad, gt) and not gt_known_hit(None, gt)
    assert top1_loc_hit([(3, good)], 3, gt) and not top1_loc_hit([(2, good), (3, good)], 3, gt)
    assert top5_loc_error([(1, good), (2, good), (3, good)], 3, gt) == 0
    assert top5_loc_error([(3, bad), (4, good)], 3, gt) == 1
    assert top5_loc_error([(c, good) for c in range(6)], 5, gt) == 1  # sixth guess: too late


def test_pointing_energy_and_peak_by_hand():
    assert pointing_hit((12, 5), [(0, 0, 10, 10)], tolerance=2)
    assert not pointing_hit((13, 5), [(0, 0, 10, 10)], tolerance=2)
    m = np.zeros((4, 6))
    m[1, 4] = 3.0
    m[3, 0] = 1.0
    m[0, 0] = -5.0  # negative values do not count
    assert map_peak(m) == (4.5, 1.5)
    assert energy_in_boxes(m, [(4, 1, 5, 2)]) == pytest.approx(0.75)
    assert energy_in_boxes(np.zeros((3, 3)), [(0, 0, 3, 3)]) == 0.0
    mask = boxes_mask([(0, 0, 2, 1)], (3, 3))  # pixel centres inside the box
    assert mask.sum() == 2 and mask[0, 0] and mask[0, 1]
