"""Is a saliency map faithful to the model? Deletion / insertion, and the randomisation test
(perturbing the input or the model; ``evaluate.faithfulness`` re-exports them).

- Deletion and insertion (Petsiuk, Das & Saenko 2018, RISE, https://arxiv.org/abs/1806.07421):
  pixels are removed from the image (replaced by a baseline), or revealed on the baseline, in
  the order of the map, most salient first; the class probability traces a curve whose area
  is small for deletion and large for insertion when the map ranks the evidence well.
- The model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency
  Maps", https://arxiv.org/abs/1810.03292): the weights are re-initialised layer by layer from
  the top (a cascade), on a deep copy; a map that explains the model should change, i.e. have
  a low Spearman rank correlation with the original map.

All forward passes are batched: the perturbed copies of all images go through the network
``batch_size`` at a time.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .._lazy import deprecated_positional
from ..engine import check_images, forward_logits, module_of
from ..methods import get_method
from ..methods._common import baseline_images, chunks, targets_and_logits
from ..models import Classifier
from ..ops import resize_maps
from ..targets import ScoreFn, Target, need_logits, take, target_scores

__all__ = [
    "PerturbationCurves",
    "RandomizationResult",
    "cascade_layers",
    "deletion_insertion",
    "randomization_test",
    "spearman",
]

Baseline = Literal["blur", "mean", "zero"] | float | Tensor
Score = Literal["probability", "logit"]


@dataclass
class PerturbationCurves:
    """Deletion and/or insertion curves for a batch.

    Attributes:
        fractions: ``Tensor[S + 1]``, the fraction of pixels removed / revealed, 0 to 1.
        deletion: ``Tensor[B, S + 1]`` class scores as pixels are removed (or None).
        insertion: ``Tensor[B, S + 1]`` class scores as pixels are revealed (or None).
        targets: ``Tensor[B]``.
    """

    fractions: Tensor
    deletion: Tensor | None
    insertion: Tensor | None
    targets: Tensor

    @property
    def deletion_auc(self) -> Tensor | None:
        """``Tensor[B]``: area under the deletion curve (lower is better)."""
        return None if self.deletion is None else _auc(self.deletion, self.fractions)

    @property
    def insertion_auc(self) -> Tensor | None:
        """``Tensor[B]``: area under the insertion curve (higher is better)."""
        return None if self.insertion is None else _auc(self.insertion, self.fractions)


def _auc(curve: Tensor, fractions: Tensor) -> Tensor:
    return torch.trapezoid(curve, fractions.to(curve), dim=-1)


def _pixel_ranks(maps: Tensor) -> Tensor:
    """``Tensor[B, H*W]``: each pixel's position when sorted by decreasing map value."""
    flat = maps.flatten(1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ar = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks.scatter_(1, order, ar)
    return ranks


def _score(logits: Tensor, t: Tensor | ScoreFn, score: Score) -> Tensor:
    if score == "probability":
        s = need_logits(logits, "score='probability' (a softmax; score='logit' reads any "
                        "output)")
        return target_scores(t, s.float().softmax(dim=1))
    return target_scores(t, logits.float() if isinstance(logits, Tensor) else logits)


def deletion_insertion(
    model: Classifier | nn.Module,
    images: Tensor,
    maps: Tensor,
    target: Target = None,
    *,
    steps: int = 32,
    modes: Sequence[str] = ("deletion", "insertion"),
    baseline: Baseline | None = None,
    score: Score = "probability",
    batch_size: int | None = 64,
    fast: bool = True,
) -> PerturbationCurves:
    """Deletion and insertion curves (RISE) for a batch, all perturbed copies batched.

    At step ``k`` of ``steps``, the ``round(k / steps * H * W)`` most salient pixels (all
    channels) are replaced by the baseline (deletion) or shown on the baseline (insertion).
    Ties in the map keep raster order.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]`` in the model's input space.
        maps: ``Tensor[B, h, w]`` saliency, larger = more important (resized to ``H, W``).
        target: the class whose score is traced (``None``: top-1 of the image).
        steps: number of steps between 0 and all pixels.
        modes: ``"deletion"`` and/or ``"insertion"``.
        baseline: what replaces removed pixels: ``"blur"`` (a strong Gaussian blur),
            ``"mean"`` (each image's mean colour), ``"zero"``, a number or a tensor. Default:
            ``"mean"`` for deletion and ``"blur"`` for insertion (as RISE: a blank image to
            delete to, a blurred one to insert into).
        score: ``"probability"`` (softmax, RISE) or ``"logit"`` (``"prob"``: deprecated
            since 0.2.0, as RISE's ``score`` spells it now).
        batch_size: images per forward pass (None: all at once).
        fast: use the batch-norm-folded private copy for the forward passes.

    Returns:
        :class:`PerturbationCurves` (``.deletion_auc`` and ``.insertion_auc`` are ``Tensor[B]``).
    """
    if score == "prob":
        warnings.warn('score="prob" is deprecated since 0.2.0; use score="probability"',
                      DeprecationWarning, stacklevel=2)
        score = "probability"
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}")
    check_images(images)
    if steps < 1:
        raise ValueError("steps must be at least 1")
    bad = set(modes) - {"deletion", "insertion"}
    if bad or not modes:
        raise ValueError(f"modes must be 'deletion' and/or 'insertion', got {list(modes)}")
    x = images.detach()
    b, _, h, w = x.shape
    if maps.dim() != 3 or maps.shape[0] != b:
        raise ValueError(f"maps must be Tensor[{b}, h, w], got {tuple(maps.shape)}")
    maps = maps.detach().to(device=x.device, dtype=torch.float32)
    if tuple(maps.shape[-2:]) != (h, w):
        maps = resize_maps(maps, (h, w))
    t, _ = targets_and_logits(model, x, target, fast)
    ranks = _pixel_ranks(maps).view(b, 1, h, w)
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) / steps * h * w).long()
    counts = counts.to(x.device)
    curves: dict[str, Tensor] = {}
    for mode in modes:
        which = baseline if baseline is not None else ("mean" if mode == "deletion" else "blur")
        ref = baseline_images(model, x, which)
        out = torch.empty((b, steps + 1), dtype=torch.float32, device=x.device)
        n = b * (steps + 1)  # flat index i -> image i // (steps + 1), step i % (steps + 1)
        for sl in chunks(n, batch_size):
            idx = torch.arange(sl.start, sl.stop, device=x.device)
            bi, ki = idx // (steps + 1), idx % (steps + 1)
            chosen = ranks[bi] < counts[ki].view(-1, 1, 1, 1)  # Tensor[n, 1, H, W]
            if mode == "deletion":
                batch = torch.where(chosen, ref[bi], x[bi])
            else:
                batch = torch.where(chosen, x[bi], ref[bi])
            out[bi, ki] = _score(forward_logits(model, batch, fast=fast), take(t, bi), score)
        curves[mode] = out
    fractions = counts.double().cpu() / (h * w)
    return PerturbationCurves(fractions.float(), curves.get("deletion"),
                              curves.get("insertion"), t)


# ----------------------------------------------------------------------------- randomisation


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation of each pair of maps, ties given their average rank.

    Args:
        a, b: ``Tensor[B, ...]``.

    Returns:
        ``Tensor[B]`` in [-1, 1]; 0 where a map is constant (it ranks nothing).
    """
    ra, rb = _average_ranks(a.flatten(1)), _average_ranks(b.flatten(1))
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    den = ra.norm(dim=1) * rb.norm(dim=1)
    num = (ra * rb).sum(dim=1)
    return torch.where(den > 0, num / den.clamp(min=1e-30), torch.zeros_like(num)).float()


def _average_ranks(x: Tensor) -> Tensor:
    out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    for i, row in enumerate(x.double()):
        values, order = row.sort()
        new = torch.ones_like(values, dtype=torch.bool)
        new[1:] = values[1:] != values[:-1]
        group = new.cumsum(0) - 1
        sizes = torch.bincount(group).double()
        first = sizes.cumsum(0) - sizes
        out[i, order] = (first + (sizes - 1) / 2)[group]
    return out


def cascade_layers(module: nn.Module) -> list[str]:
    """Names of the modules that own parameters, from the top (output) layer down.

    The order is ``named_modules()`` reversed, which is the reverse of the forward order for
    sequential designs (timm, torchvision).
    """
    names = [n for n, m in module.named_modules()
             if any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


@dataclass
class RandomizationResult:
    """The cascading randomisation test.

    Attributes:
        layers: after how many layers (counted from the top) each row was measured, by the
            name of the lowest layer randomised so far.
        correlation: ``Tensor[P, B]``: Spearman correlation of each image's map with its
            original map after randomising down to ``layers[p]``.
        original: ``Tensor[B, H, W]`` the original maps.
        targets: ``Tensor[B]``.
    """

    layers: list[str]
    correlation: Tensor
    original: Tensor
    targets: Tensor

    @property
    def final(self) -> Tensor:
        """``Tensor[B]``: correlation once every layer is randomised."""
        return self.correlation[-1]


def _reinit(m: nn.Module, gen_seed: int) -> None:
    """Re-initialise one module's own parameters (its ``reset_parameters`` if it has one)."""
    devices = sorted({p.device.index or 0 for p in m.parameters(recurse=False)
                      if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(gen_seed)
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            for p in m.parameters(recurse=False):
                p.normal_(0.0, 0.02) if p.dim() > 1 else p.zero_()


@deprecated_positional(2, ("method", "target"),
                       note="in the next release target becomes the third positional argument")
def randomization_test(
    model: Classifier | nn.Module,
    images: Tensor,
    *,
    target: Target = None,
    method: str | Callable = "gradient",
    points: int = 8,
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    seed: int = 0,
    fast: bool = True,
    original: Tensor | None = None,
    **method_options,
) -> RandomizationResult:
    """Cascading model-parameter randomisation (Adebayo et al. 2018), on a deep copy.

    Starting from the top (output) layer, each layer's parameters are re-initialised in turn
    (its ``reset_parameters``: PyTorch's default initialisation; batch norms become the
    identity), cumulatively; at ``points`` evenly spaced places in the cascade, the last being
    the fully randomised network, the maps of the same target classes are recomputed and
    compared with the originals by Spearman rank correlation. The caller's model is never
    touched.

    Args:
        model: a :class:`Classifier` or an ``nn.Module`` returning logits ``Tensor[B, K]``.
        images: ``Tensor[B, C, H, W]``.
        target: ``None`` (top-1 of the original model), an ``int``, or a sequence / Tensor.
        method: a registered method name or ``fn(model, images, target, **options)``.
        points: how many places in the cascade are measured (1: only fully randomised).
        layers: the cascade, top first (default: :func:`cascade_layers`).
        absolute: compare absolute values of the maps (as the paper's main figures).
        seed: seed of the re-initialisation (the global generators are left as they were).
        fast: passed to the method and to target resolution.
        original: the maps of the unchanged model for these targets, if already computed.
        **method_options: options of the method.

    0.1's positional ``method, target`` after the images still work, with a
    ``DeprecationWarning`` (since 0.2.0; a value also given by keyword is a ``TypeError``). In
    the next release ``target`` becomes the third positional argument, as in
    :func:`deepinside.saliency`.

    Returns:
        :class:`RandomizationResult`; ``.final`` is ``Tensor[B]`` for the fully random model.
    """
    fn = get_method(method) if isinstance(method, str) else method
    if points < 1:
        raise ValueError("points must be at least 1")
    t, _ = targets_and_logits(model, images, target, fast)
    opts = dict(method_options)
    opts["fast"] = fast
    if original is None:
        original = fn(model, images, t, **opts)
    original = original.detach()
    rand = copy.deepcopy(module_of(model))
    clone = dataclasses.replace(model, module=rand) if isinstance(model, Classifier) else rand
    cascade = list(layers) if layers is not None else cascade_layers(rand)
    if not cascade:
        raise ValueError("the model has no parameters to randomise")
    n = len(cascade)
    stops = sorted({max(1, round(n * (p + 1) / points)) for p in range(points)})
    names, rows = [], []
    done = 0
    for stop in stops:
        for i in range(done, stop):
            _reinit(rand.get_submodule(cascade[i]), seed + i)
        done = stop
        m = fn(clone, images, t, **opts).detach()
        a, o = (m.abs(), original.abs()) if absolute else (m, original)
        rows.append(spearman(o, a))
        names.append(cascade[stop - 1])
    return RandomizationResult(names, torch.stack(rows), original, t)
