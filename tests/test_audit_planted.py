"""A planted shortcut, end to end (the issue's check): a head on lite0's frozen trunk learns a
stamp that one group's training photos carry; the audit of photos it did not train on puts that
group first by suspicion and flags it, its main cluster peaks at the stamp, and erasing the
stamp costs its logit more than erasing the object. The same head trained without stamps gets
no such flag. Small data: 8 training and 8 audited photos a group (with 6 the head learns the
stamp only weakly: it flipped 22% of the other groups' photos); nothing is tuned to them, the
thresholds are the audit's defaults."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted(tmp_path_factory, dev_data, lite0):
    from deepinside.audit import planted as P

    root, _ = dev_data
    return P.plant(root, tmp_path_factory.mktemp("planted"), lite0, per_group=16)


def near_stamp(peak, slack: float = 1 / 16) -> bool:
    """The peak lies on the stamp, or within one grid cell of it."""
    from deepinside.audit.planted import stamp_box

    x0, y0, x1, y1 = (v / 227 for v in stamp_box(227, 227))  # the dev photos are 227 x 227
    return x0 - slack <= peak[0] <= x1 + slack and y0 - slack <= peak[1] <= y1 + slack


def test_planted_stamp_is_found(planted, tmp_path):
    import deepinside
    from deepinside.audit import planted as P
    from deepinside.evaluate import read_dataset
    from deepinside.images import open_photo

    stamped, clean, data = planted
    s = data.stamped
    others = [open_photo(r.path) for r in read_dataset(data.audit_all_stamped)[0]
              if r.label != s]
    # the model relies on the stamp: pasted on other groups' photos, it makes them group s
    assert P.flip_rate(stamped, others, s) >= 0.5
    assert P.flip_rate(clean, others, s) < 0.5

    audit = deepinside.audit(stamped, data.audit, tmp_path / "stamped", show_progress=False)
    by_class = {c["class"]: c for c in audit["classes"]}
    top = max(audit["classes"], key=lambda c: c["suspicion"])
    assert top["class"] == s and top["flagged"]
    main = by_class[s]["clusters"][0]
    assert near_stamp(main["peak"])
    assert main["erase_region_drop"] > main["erase_object_drop"]

    audit = deepinside.audit(clean, data.audit, tmp_path / "clean", show_progress=False)
    assert not any(c["flagged"] and any(near_stamp(k["peak"]) for k in c["clusters"])
                   for c in audit["classes"])
    assert not {c["class"]: c for c in audit["classes"]}[s]["flagged"]
