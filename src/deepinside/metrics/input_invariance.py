"""Input invariance (Kindermans et al. 2019): a constant shift the model undoes must not move
the map."""

from __future__ import annotations

from torch import Tensor, nn

from ..engine import shift_undone
from ..models import Classifier
from ..targets import Target
from ._common import Boxes, MethodArg, class_targets, explainer, prepare
from ._registry import register_metric

__all__ = ["input_invariance"]


@register_metric(
    "input_invariance", "axiomatic",
    "1 if the map of x + shift on a network that undoes the shift equals the map of x",
    "Kindermans et al. 2019, https://arxiv.org/abs/1711.00867",
    higher_is_better=True, needs=("method",), cost="moderate",
)
def input_invariance(model: Classifier | nn.Module, images: Tensor, maps: Tensor,
                     target: Target = None, *, boxes: Boxes = None, method: MethodArg = None,
                     method_options: dict | None = None, input_shift: float = -1.0,
                     atol: float = 1e-4, rtol: float = 1e-5, fast: bool = True) -> Tensor:
    """1 / 0 per photo, ``Tensor[B]`` (Quantus ``InputInvariance``: ``np.isclose`` with
    ``atol=1e-4`` on every pixel, maps neither normalised nor made absolute).

    Kindermans et al. fold the shift into the first layer's bias, as Quantus does (its bias
    is corrected by the first layer's smallest response to the shift, which is exact only
    for a first layer without padding); here the network is wrapped as ``net(x - shift)``,
    which is what the folding computes when it is exact, for any first layer.

    Args:
        model, images, maps, target: as Quantus (``boxes`` unused).
        method: the method that made ``maps`` (a name or a function).
        method_options: its options.
        input_shift: the constant added to every input value.
        atol, rtol: the closeness test.
        fast: the engine's batch-norm-folded copy.
    """
    explain = explainer(method, "input_invariance", method_options, fast)
    t = class_targets(model, images, target, fast)
    a = prepare(images, maps)
    shifted = shift_undone(model, input_shift)
    ap = explain(shifted, images.detach() + input_shift, t)
    close = (a - ap).abs() <= atol + rtol * ap.abs()
    return close.flatten(1).all(dim=1).double()
