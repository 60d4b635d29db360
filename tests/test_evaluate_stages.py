"""deepinside.evaluate.stages: what every backend runs; rows of batches scored elsewhere add up."""

from __future__ import annotations

import math

from deepinside.evaluate.stages import MethodScores


def test_merged_rows_equal_one_row_over_all_photos():
    whole, first, second = MethodScores("m"), MethodScores("m"), MethodScores("m")
    whole.add("pointing", [1, 0, 1, 1, 0])
    whole.images, whole.ms_per_image = 5, 14.0  # 70 ms in all
    first.add("pointing", [1, 0])
    first.images, first.ms_per_image = 2, 20.0  # 40 ms
    second.add("pointing", [1, 1, 0])
    second.images, second.ms_per_image = 3, 10.0  # 30 ms
    second.add("deletion_auc", [0.5, 0.25, 0.0])
    merged = MethodScores("m")
    merged.merge(first)
    merged.merge(second)
    assert merged.pointing == whole.pointing == 0.6
    assert merged.images == 5 and math.isclose(merged.ms_per_image, 14.0)
    assert merged.deletion_auc == 0.25  # a column only the second batch measured
    assert math.isnan(merged.insertion_auc)  # and one nobody measured
    assert merged.to_dict() == {**whole.to_dict(), "deletion_auc": 0.25}
