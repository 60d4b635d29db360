"""Random logit (Sixt, Granz & Landgraf 2020): is the map of another class different?"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..models import Classifier
from ..targets import Target
from ._common import Boxes, MethodArg, class_targets, explainer, flat, normalise_by_max, prepare
from ._registry import register_metric

__all__ = ["random_logit", "ssim_1d"]


def ssim_1d(a: Tensor, b: Tensor, win_size: int = 7) -> Tensor:
    """Mean structural similarity of each pair of rows ``Tensor[B, N]``, ``Tensor[B]``.

    scikit-image's ``structural_similarity`` on one-dimensional arrays (what Quantus's
    ``ssim`` gets from flattened maps): uniform windows of ``win_size``, sample covariances,
    ``K1 = 0.01``, ``K2 = 0.03``, the data range of the two rows together, the mean over the
    windows that lie wholly inside the row.
    """
    a, b = a.double(), b.double()
    both = torch.cat([a, b], dim=1)
    r = (both.amax(dim=1) - both.amin(dim=1))[:, None]

    def f(z: Tensor) -> Tensor:
        return z.unfold(1, win_size, 1).mean(dim=-1)

    ux, uy = f(a), f(b)
    norm = win_size / (win_size - 1)
    vx, vy = norm * (f(a * a) - ux * ux), norm * (f(b * b) - uy * uy)
    vxy = norm * (f(a * b) - ux * uy)
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=1)


@register_metric(
    "random_logit", "randomisation",
    "structural similarity of the map with the map of a random other class",
    "Sixt, Granz & Landgraf 2020, https://arxiv.org/abs/1912.09818",
    higher_is_better=False, needs=("method",), cost="moderate",
)
def random_logit(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                 target: Target = None, *, boxes: Boxes = None, method: MethodArg = None,
                 method_options: dict | None = None, num_classes: int | None = None,
                 seed: int = 42, abs: bool = False, normalise: bool = True,
                 fast: bool = True) -> Tensor:
    """SSIM per photo, ``Tensor[B]`` (Quantus ``RandomLogit``; lower: the map depends on the
    class).

    The other class of each photo is drawn uniformly among the ``num_classes - 1`` classes
    that are not its target, from ``numpy.random.RandomState(seed)`` (Quantus reseeds NumPy's
    global generator with its ``seed``, 42, and draws the same way). Differs from Quantus's
    default in ``num_classes``: the model's number of logits rather than 1000.

    Args:
        model, images, maps, target, abs, normalise: as Quantus (``boxes`` unused).
        method: the method that made ``maps`` (a name or a function).
        method_options: its options.
        num_classes: classes to draw from (``None``: the model's).
        seed: the draw.
        fast: the engine's batch-norm-folded copy.
    """
    explain = explainer(method, "random_logit", method_options, fast)
    t = class_targets(model, images, target, fast)
    from ..methods._common import targets_and_logits

    _, logits = targets_and_logits(model, images, t, fast)
    k = int(num_classes or logits.shape[1])
    b = images.shape[0]
    rs = np.random.RandomState(seed)
    pick = torch.as_tensor(rs.randint(0, k - 1, b), device=t.device)
    others = pick + (pick >= t).long()  # the pick-th class that is not the target
    a = flat(prepare(images, maps, abs=abs, normalise=normalise))
    ap = explain(model, images, others)
    if normalise:
        ap = normalise_by_max(ap)
    if abs:
        ap = ap.abs()
    return ssim_1d(a, flat(ap))
