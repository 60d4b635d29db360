"""The paper's image-specific class saliency, registered as ``gradient``.

Simonyan, Vedaldi & Zisserman (2013), section 3 (https://arxiv.org/abs/1312.6034).
The class score S_c is the *unnormalised* logit of class c. Its gradient with respect to the
input, w = dS_c/dI, computed by one backward pass (:func:`deepinside.engine.input_gradient`),
ranks the pixels by how much a small change would change the score. The map is
M_ij = max_k |w_{k,ij}| over the colour channels k. ``deepinside.saliency`` is this function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..engine import input_gradient
from ..models import Classifier
from ..ops import Reduce, reduce_channels
from ..targets import Target
from ._registry import register_method

__all__ = ["saliency"]


def saliency(
    model: Classifier | nn.Module,
    images: Tensor,
    target: Target = None,
    *,
    reduce: Reduce = "max_abs",
    fast: bool = True,
    amp: torch.dtype | None = None,
    compiled: bool | None = None,
) -> Tensor:
    """The paper's image-specific class saliency map, for a whole batch at once.

    M_ij = max over colour channels of |dS_c/dI| at the image, with S_c the class logit
    (Simonyan et al. 2013, https://arxiv.org/abs/1312.6034, section 3.1). One forward and one
    backward pass for the batch.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, 3, H, W]`` in the model's normalised input space.
        target: ``None`` (each image's top-1 class), an ``int`` or a class name, a sequence /
            ``Tensor[B]`` of them, ``"top5"`` (five maps per image, one forward pass), or a
            callable on the logits (see :mod:`deepinside.targets`).
        reduce: channel reduction; the paper's is ``"max_abs"``.
        fast: use the exact batch-norm-folded ``channels_last`` copy (see
            :func:`deepinside.engine.input_gradient`).
        amp: ``torch.float16`` / ``torch.bfloat16``: autocast (for GPUs; the map moves by
            more than float rounding, see :mod:`deepinside.engine`); ``None``: off.
        compiled: run the fast copy through ``torch.compile``, eager if that fails (``None``
            follows ``DEEPINSIDE_COMPILE``; on the CPU it did not pay off).

    Returns:
        ``Tensor[B, H, W]`` (``Tensor[B, k, H, W]`` for ``"top<k>"``; the channels kept with
        ``reduce="none"``), non-negative, on the device and in the dtype of ``images``.

    Example:
        >>> clf = deepinside.load_model()                     # doctest: +SKIP
        >>> x = clf.preprocessing.to_tensor(photo)[None]       # doctest: +SKIP
        >>> m = deepinside.saliency(clf, x)                    # Tensor[1, 224, 224]
    """
    grad, _, _ = input_gradient(model, images, target, fast=fast, amp=amp, compiled=compiled)
    return reduce_channels(grad, reduce)


register_method(
    "gradient",
    "the paper's saliency: max over colour channels of |dS_c/dI|",
    "Simonyan, Vedaldi & Zisserman 2013, https://arxiv.org/abs/1312.6034",
    order=0, report="quick",
)(saliency)
