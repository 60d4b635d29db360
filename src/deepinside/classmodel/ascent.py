"""The render loop: gradient ascent on an image for an objective, in three modes.

Simonyan, Vedaldi & Zisserman (2013), section 2 (https://arxiv.org/abs/1312.6034): with the
weights frozen, find by gradient ascent on the input the image ``I`` that maximises
``S_c(I) - lambda * ||I||_2^2``; :func:`visualize` does the same for any
:class:`~deepinside.classmodel.objectives.Objective` (a channel, a neuron, a layer, a
direction, sums of them), :func:`class_model` is its class case. Three modes:

- ``"paper"``: exactly the above. Start from zero (the dataset mean) in the network's
  normalised input space, plain gradient ascent with a fixed step.
- ``"pixel"``: the paper's method at its best (Yosinski et al. 2015,
  https://arxiv.org/abs/1506.06579): ascent with random jitter, a normalised step, a Gaussian
  blur every few steps, a decay toward the mean (grey) and pixels kept in range.
- ``"lucid"`` (default): Lucid / Lucent (Olah et al. 2017,
  https://distill.pub/2017/feature-visualization/): a decorrelated Fourier image
  (:mod:`.param`), octaves coarse to fine (DeepDream, https://github.com/google/deepdream),
  several randomly transformed copies scored at every step (:mod:`.transforms`; for class
  models low-passed before a zoom out, with a lower-frequency spectrum, a centre prior and a
  colour prior: docs/classmodel.md), a mild total-variation penalty, Adam (:mod:`.optim`).

All randomness comes from generators seeded with ``seed``. The caller's model is never
changed: the network is called only through :mod:`deepinside.engine` (eval mode, flags
restored, a private batch-norm-folded copy by default, hooks for the call only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from ..engine import layer_network, module_of
from ..filters import gaussian_blur
from ..models import Classifier, Preprocessing
from ..targets import class_indices, need_logits
from .objectives import Activations, Objective, class_logit, rival_logits
from .optim import Adam
from .param import (
    band_mask,
    fourier_logits,
    freq_scale,
    init_spectrum,
    phase_logits,
    saturation_penalty,
)
from .transforms import random_transform, total_variation

__all__ = [
    "MODES",
    "ClassModelResult",
    "Visualization",
    "class_model",
    "mode_defaults",
    "octave_plan",
    "visualize",
]

Mode = Literal["lucid", "paper", "pixel"]
MODES: tuple[str, ...] = ("lucid", "paper", "pixel")

# Defaults per mode; how they were chosen is written in docs/classmodel.md.
_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 200, "lr": 1.0, "l2": 1e-3},
    "pixel": {
        "steps": 200, "lr": 0.02, "l2": 0.0, "decay": 0.01, "blur_every": 4, "blur_sigma": 1.0,
        "jitter": 8,
    },
    "lucid": {
        "steps": 160, "lr": 0.05, "l2": 0.0, "tv": 1e-3, "other": 1.0, "copies": 2,
        "decay_power": 1.5, "shift": 40 / 224, "scale": (0.45, 1.6), "rotate": 25.0,
        "color_jitter": 0.15, "noise": 0.02, "blur": 0.5, "rivals": "mean",
        "octaves": ((0.5, 0.35), (0.75, 0.3), (1.0, 0.35)), "octave_input": True,
        "seeds": 1, "antialias": True, "coarse_cycles": 1.0, "saturation": 10.0,
        "saturation_knee": 4.0, "magnitude": "free", "contrast": 1.0, "center": 0.8,
    },
}
_TRANSFORM_KEYS = ("shift", "scale", "rotate", "color_jitter", "noise", "blur", "antialias")
_CLASS_ONLY = ("other", "rivals")  # options of class_model's objective, not of the loop

# visualize's lucid mode: Lucent's milder transformation robustness at full resolution
# (``standard_transforms``: pad 12, jitter 8 and 4, scale 0.9-1.1, rotation 10 degrees), one
# copy a step, Lucid's spectrum (1 / f^1.2 here) and no low-pass. The class model's strong
# anti-aliased transforms, octaves and lower-frequency prior (1 / f^1.5) make class images that
# other networks recognise, as do the centre prior and the colour prior (docs/classmodel.md); a
# unit is judged by its activation (benchmarks/bench_lucent.py), without them.
_UNIT_LUCID = {"octaves": ((1.0, 1.0),), "copies": 1, "shift": 12 / 224, "scale": (0.9, 1.1),
               "rotate": 10.0, "color_jitter": 0.0, "noise": 0.0, "blur": 0.0,
               "decay_power": 1.2, "antialias": False, "center": 0.0, "saturation": 0.0,
               "saturation_knee": 3.0}


def mode_defaults(mode: str, units: bool = False) -> dict:
    """The default options of a mode (a copy): steps, step size ``lr``, ``l2``, and so on.

    Args:
        mode: ``"lucid"``, ``"paper"`` or ``"pixel"``.
        units: the defaults of :func:`visualize` (lucid: milder transforms, no octaves, one
            copy a step) instead of those of :func:`class_model`.
    """
    if mode not in _DEFAULTS:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if units and mode == "lucid":
        return {k: v for k, v in {**_DEFAULTS[mode], **_UNIT_LUCID}.items()
                if k not in _CLASS_ONLY}
    return dict(_DEFAULTS[mode])


@dataclass
class Visualization:
    """What :func:`visualize` returns.

    Attributes:
        images: ``Tensor[N, 3, H, W]`` in [0, 1] (clipped for display), on the CPU.
        objective: ``Tensor[steps, N]`` the objective of each image at each step, before the
            update (lucid: averaged over the transformed copies).
        values: ``Tensor[N]`` the objective of each final image as returned (no transform).
        snapshots: ``Tensor[K, N, 3, H, W]`` in [0, 1], the images after the steps in
            ``snapshot_steps`` (empty when none were asked for).
        snapshot_steps: after how many steps each snapshot was taken.
        raw: the final images in the network's normalised input space ``Tensor[N, 3, H, W]``
            (before clipping), on the CPU.
        options: every option the run used (``objective``: its description).
    """

    images: Tensor
    objective: Tensor
    values: Tensor
    snapshots: Tensor
    snapshot_steps: list[int]
    raw: Tensor
    options: dict = field(default_factory=dict)


@dataclass
class ClassModelResult(Visualization):
    """What :func:`class_model` returns: a :class:`Visualization` and ``classes``
    (``Tensor[N]``, the class of each image). ``objective`` and ``values`` are the class
    logit ``S_c`` (paper mode: ``S_c(I) - lambda * ||I||^2``)."""

    classes: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))


def octave_plan(steps: int, octaves) -> list[float]:
    """The octave (scale of the image's band and of the network's input) of each step.

    Args:
        steps: the number of steps.
        octaves: ``((scale, share), ...)``: the steps are split in proportion to the shares, in
            order; scales in (0, 1] (1: the whole image). DeepDream's octaves
            (https://github.com/google/deepdream), coarse to fine.

    Returns:
        ``steps`` scales; the last step always belongs to the last octave.
    """
    octaves = [(float(sc), float(sh)) for sc, sh in octaves]
    if not octaves or any(not 0 < sc <= 1 or sh < 0 for sc, sh in octaves):
        raise ValueError(f"octaves must be (scale in (0, 1], share >= 0) pairs; got {octaves}")
    total = sum(sh for _, sh in octaves) or 1.0
    plan: list[float] = []
    edge = 0.0
    for sc, sh in octaves:
        edge += sh / total
        plan += [sc] * (round(edge * steps) - len(plan))
    return plan + [octaves[-1][0]] * (steps - len(plan))


def _size(model: Classifier | nn.Module, size) -> tuple[int, int]:
    if size is None:
        if isinstance(model, Classifier):
            return tuple(model.preprocessing.input_size)
        return (224, 224)
    if isinstance(size, int):
        size = (size, size)
    h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8 pixels, got {(h, w)}")
    return (h, w)


def _snapshot_steps(steps: int, k: int) -> list[int]:
    if k <= 0:
        return []
    k = min(k, steps)
    return sorted({max(1, round(steps * (i + 1) / k)) for i in range(k)})


def _options(mode: str, options: dict, steps, lr, l2, snapshots: int, units: bool) -> dict:
    opts = mode_defaults(mode, units)
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown options for mode {mode!r}: {', '.join(sorted(unknown))}")
    opts.update(options)
    for key, value in (("steps", steps), ("lr", lr), ("l2", l2)):
        if value is not None:
            opts[key] = value
    if int(opts["steps"]) < 1:
        raise ValueError("steps must be at least 1")
    if snapshots < 0:
        raise ValueError("snapshots must be >= 0")
    return opts


def visualize(
    model: Classifier | nn.Module,
    objective: Objective,
    *,
    batch: int | None = None,
    mode: Mode = "lucid",
    steps: int | None = None,
    size: int | tuple[int, int] | None = None,
    seed: int = 0,
    snapshots: int = 0,
    lr: float | None = None,
    l2: float | None = None,
    fast: bool = True,
    progress: Callable[[int], None] | None = None,
    **options,
) -> Visualization:
    """Feature visualisation: the images that maximise an objective, by gradient ascent.

    Olah et al. 2017 (https://distill.pub/2017/feature-visualization/); the class case is the
    class model of Simonyan et al. 2013 (:func:`class_model`).

    Args:
        model: a :class:`Classifier` (its preprocessing gives the mean, std and default size)
            or an ``nn.Module`` (ImageNet mean/std assumed).
        objective: what to maximise (:mod:`deepinside.classmodel.objectives`), e.g.
            ``channel("blocks.5", 17) + diversity("blocks.5", 10)``.
        batch: how many images (default: as many as the objective's per-image arguments, else
            1); several images of one objective differ only with a diversity term.
        mode, steps, size, seed, snapshots, lr, l2, fast, progress, **options: as
            :func:`class_model`; the defaults are ``mode_defaults(mode, units=True)`` (lucid:
            Lucent's milder transforms at full resolution, one copy a step; ``other`` and
            ``rivals`` belong to the class objective).

    Returns:
        A :class:`Visualization`; ``images`` is ``Tensor[N, 3, H, W]`` in [0, 1].

    Example:
        >>> from deepinside.classmodel import channel, visualize
        >>> v = visualize(deepinside.load_model(), channel("blocks.5", 17))  # doctest: +SKIP
        >>> v.images.shape                                                 # doctest: +SKIP
        torch.Size([1, 3, 224, 224])
    """
    bad = set(options) & set(_CLASS_ONLY)
    if bad:
        raise TypeError(f"{', '.join(sorted(bad))}: options of class_model, not of visualize")
    return _render(model, objective, objective, batch, mode, steps, size, seed, snapshots, lr,
                   l2, fast, progress, options, units=True)


def class_model(
    model: Classifier | nn.Module,
    classes: int | str | Sequence[int | str] | Tensor,
    *,
    mode: Mode = "lucid",
    steps: int | None = None,
    size: int | tuple[int, int] | None = None,
    seed: int = 0,
    snapshots: int = 0,
    lr: float | None = None,
    l2: float | None = None,
    fast: bool = True,
    progress: Callable[[int], None] | None = None,
    **options,
) -> ClassModelResult:
    """Class model visualisation for many classes at once (one batch).

    Simonyan et al. 2013, section 2 (https://arxiv.org/abs/1312.6034); regularised in the
    manner of Lucid (https://distill.pub/2017/feature-visualization/). :func:`visualize` with
    the objective ``class_logit(c)`` (lucid mode: ``class_logit(c) - other *
    rival_logits(c, rivals)``).

    Args:
        model: a :class:`Classifier` (its preprocessing gives the mean, std and default size)
            or an ``nn.Module`` returning logits ``Tensor[B, K]`` (ImageNet mean/std assumed).
        classes: class indices or names (names need a Classifier; case-insensitive).
        mode: ``"lucid"`` (default, recognisable), ``"paper"`` (exact) or ``"pixel"`` (the
            paper's method with jitter, blur and decay).
        steps: number of ascent steps (default per mode, see :func:`mode_defaults`).
        size: image size, an int or (H, W) (default: the model's input size).
        seed: seeds the initialisation and every random transform.
        snapshots: how many intermediate images to keep (evenly spaced; the last one is the
            final image).
        lr: step size (paper: the fixed step of gradient ascent; pixel: the step in units of
            the mean absolute gradient; lucid: Adam's learning rate).
        l2: weight ``lambda`` of the ``||I||_2^2`` penalty (I in normalised input space for
            paper and pixel modes, in [0, 1] pixels minus 0.5 for lucid).
        fast: run a private batch-norm-folded ``channels_last`` copy of the model.
        progress: called with 1 after each step (e.g. a tqdm bar's ``update``).
        **options: further options of the mode (see :func:`mode_defaults`), e.g. ``tv``,
            ``other``, ``rivals`` (see :func:`~.objectives.rival_score`), ``octaves``
            (``((scale, share), ...)``, see :func:`octave_plan`; ``((1.0, 1.0),)``: none),
            ``octave_input`` (the network sees each octave at its size, when it accepts that
            size), ``copies``, ``decay_power``, ``shift``, ``scale``, ``rotate``,
            ``color_jitter``, ``noise``, ``blur``, ``antialias`` (low-pass each copy before a
            zoom out samples it: :func:`~.transforms.random_transform`), ``coarse_cycles``
            (lucid: the spectrum's scale stops growing below that many cycles per image, so
            the coarsest frequencies move no faster than those: :func:`~.param.freq_scale`),
            ``saturation`` (lucid: weight of a colour prior that keeps the pre-sigmoid values
            out of the sigmoid's flat tails beyond ``|z| = saturation_knee``:
            :func:`~.param.saturation_penalty`), ``center`` (lucid: the share of the steps
            during which the image is drawn inside a disc about the centre that grows to the
            whole frame, Nguyen et al. 2016; 0: off), ``magnitude`` (lucid: ``"free"``, Lucid's
            spectrum, or ``"fixed"``, MACO's: only the phase is optimised, Fel et al. 2023,
            :func:`~.param.phase_logits`, with ``contrast`` the image's standard deviation
            before the colour matrix), ``seeds`` (lucid:
            render each image from
            that many random starts, in one batch, and keep the one whose objective is highest
            on average over fresh random transforms; costs ``seeds`` times the steps),
            ``decay``, ``blur_every``, ``blur_sigma``, ``jitter`` (pixel).

    Returns:
        A :class:`ClassModelResult`; ``images`` is ``Tensor[N, 3, H, W]`` in [0, 1].

    Example:
        >>> clf = deepinside.load_model()                                  # doctest: +SKIP
        >>> r = deepinside.class_model(clf, ["flamingo", 1], steps=128)      # doctest: +SKIP
        >>> r.images.shape                                                 # doctest: +SKIP
        torch.Size([2, 3, 224, 224])
    """
    mode_defaults(mode)  # checks the mode first
    targets = class_indices(classes, model if isinstance(model, Classifier) else None)
    t = torch.tensor(targets, dtype=torch.long)
    report = class_logit(t)
    objective = report
    if mode == "lucid":
        o = {**mode_defaults("lucid"), **options}
        objective = report - float(o["other"]) * rival_logits(t, o["rivals"])
    r = _render(model, objective, report, None, mode, steps, size, seed, snapshots, lr, l2,
                fast, progress, options, check_classes=targets)
    return ClassModelResult(**vars(r), classes=t)


def _render(model, objective: Objective, report: Objective, batch, mode, steps, size, seed,
            snapshots, lr, l2, fast, progress, options, check_classes=None,
            units: bool = False) -> Visualization:
    """The loop shared by :func:`visualize` and :func:`class_model`."""
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be a deepinside Objective (channel(...), "
                        f"class_logit(...), ...), got {type(objective).__name__}")
    opts = _options(mode, options, steps, lr, l2, snapshots, units)
    n = batch if batch is not None else (objective.images or 1)
    if n < 1:
        raise ValueError(f"batch must be at least 1, got {n}")
    if objective.images not in (None, 1, n):
        raise ValueError(f"the objective is for {objective.images} images, batch is {n}")
    hw = _size(model, size)
    pre = model.preprocessing if isinstance(model, Classifier) else Preprocessing()
    module = module_of(model)
    p = next(module.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    dt = p.dtype if p is not None and p.is_floating_point() else torch.float32
    opts.update(mode=mode, seed=seed, size=hw, objective=str(objective))

    g = torch.Generator().manual_seed(seed)
    noise_g = torch.Generator(device=dev).manual_seed(seed + 1)
    mean = torch.tensor(pre.mean, device=dev, dtype=dt).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=dev, dtype=dt).view(1, 3, 1, 1)
    snap_at = set(_snapshot_steps(int(opts["steps"]), snapshots))
    snaps: list[Tensor] = []
    history: list[Tensor] = []
    layers = tuple(dict.fromkeys((*objective.layers, *report.layers)))
    seeds = int(opts.get("seeds", 1))
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    rendered = n * seeds
    need_logits_ = objective.logits or report.logits

    example = torch.zeros((1, 3, *hw), device=dev, dtype=dt)
    with layer_network(model, example, layers, fast=fast, logits=need_logits_) as net, \
            torch.enable_grad():

        def score(x: Tensor) -> tuple[Tensor, Tensor]:
            """(objective, reported objective), each ``Tensor[B]``, of a batch of copies."""
            logits, grids = net(x)
            if need_logits_:
                logits = need_logits(logits, "a class model" if check_classes is not None
                                     else f"the objective {objective}")
            if check_classes is not None and (max(check_classes) >= logits.shape[1]
                                              or min(check_classes) < 0):
                raise ValueError(f"class out of range 0..{logits.shape[1] - 1}: "
                                 f"{check_classes}")
            index = torch.arange(x.shape[0], device=x.device) % n
            acts = Activations(logits, grids, index, rendered)
            obj = objective(acts)
            return obj, (obj if report is objective else report(acts))

        run = _run_lucid if mode == "lucid" else _run_pixels
        raw, pixels = run(score, net, rendered, hw, opts, g, noise_g, mean, std, dev, dt,
                          snap_at, snaps, history, progress)
        if seeds > 1:  # image i of seed s is row s * n + i; keep each image's best seed
            best = _best_seeds(score, pixels, n, seeds, opts, seed, mean, std)
            raw, pixels = raw[best], pixels[best]
            history[:] = [h[best] for h in history]
            snaps[:] = [sn[best.cpu()] for sn in snaps]
        with torch.no_grad():  # the objective of each final image, as returned
            values = score((pixels - mean) / std)[1]
    return Visualization(
        images=pixels.detach().float().cpu(),
        objective=torch.stack(history).float().cpu(),
        values=values.detach().float().cpu(),
        snapshots=(torch.stack(snaps) if snaps else torch.empty(0, n, 3, *hw)),
        snapshot_steps=sorted(snap_at),
        raw=raw.detach().float().cpu(),
        options=opts,
    )


def _best_seeds(score, pixels: Tensor, n: int, seeds: int, o: dict, seed: int, mean: Tensor,
                std: Tensor, probes: int = 8) -> Tensor:
    """Rows of the best seed of each image: ``Tensor[n]``.

    The rule does not look at which class or unit it is: each rendered image is scored by
    the reported objective averaged over ``probes`` fresh random transforms (drawn as in the
    ascent, from a generator seeded apart from it), and the seed with the highest mean wins:
    the image that stays best under transformation, not the one that fits the last steps'
    draws.
    """
    g = torch.Generator().manual_seed(seed + 7919)
    noise_g = torch.Generator(device=pixels.device).manual_seed(seed + 7920)
    tf = {key: o[key] for key in _TRANSFORM_KEYS}
    with torch.no_grad():
        batch = random_transform(pixels.repeat(probes, 1, 1, 1), g, noise_g, **tf)
        robust = score((batch - mean) / std)[1].view(probes, seeds, n).mean(0)
    return robust.argmax(0) * n + torch.arange(n, device=robust.device)


def _run_pixels(score, net, n, hw, o, g, noise_g, mean, std, dev, dt, snap_at, snaps, history,
                progress):
    """Paper and pixel modes: ascent on I in the normalised input space, starting at zero."""
    x = torch.zeros((n, 3, *hw), device=dev, dtype=dt)
    lo, hi = (0 - mean) / std, (1 - mean) / std
    paper = o["mode"] == "paper"
    steps, lr, l2 = int(o["steps"]), float(o["lr"]), float(o["l2"])
    for step in range(steps):
        xi = x.detach().requires_grad_(True)
        dy = dx = 0
        if not paper and o["jitter"] > 0:
            j = int(o["jitter"])
            dy, dx = (int(v) for v in torch.randint(-j, j + 1, (2,), generator=g))
        xin = torch.roll(xi, (dy, dx), (2, 3)) if (dy or dx) else xi
        s, shown = score(xin)
        obj = s - l2 * xi.pow(2).sum(dim=(1, 2, 3))
        (grad,) = torch.autograd.grad(obj.sum(), xi)
        history.append((shown - l2 * xi.pow(2).sum(dim=(1, 2, 3))).detach() if paper
                       else shown.detach())
        with torch.no_grad():
            if paper:
                x = x + lr * grad
            else:
                scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12)
                x = (x + lr * grad / scale) * (1 - float(o["decay"]))
                if o["blur_every"] and (step + 1) % int(o["blur_every"]) == 0:
                    x = gaussian_blur(x, float(o["blur_sigma"]))
                x = torch.maximum(torch.minimum(x, hi), lo)
            if step + 1 in snap_at:
                snaps.append((x * std + mean).clamp(0, 1).float().cpu())
        if progress is not None:
            progress(1)
    return x, (x * std + mean).clamp(0, 1)


def _accepts(net, size: tuple[int, int], dev, dt) -> bool:
    """Whether the network takes inputs of ``size`` (a ViT with fixed patches does not)."""
    try:
        with torch.no_grad():
            net(torch.zeros((1, 3, *size), device=dev, dtype=dt))
    except (RuntimeError, AssertionError, ValueError):
        return False
    return True


def _center_window(hw: tuple[int, int], t: float, dev, dt) -> Tensor:
    """``Tensor[1, 1, H, W]``: a soft disc about the centre whose radius grows with ``t``.

    Nguyen et al. 2016 ("Multifaceted Feature Visualization", https://arxiv.org/abs/1602.03616,
    centre-biased regularisation): the ascent first draws in the middle of the image, then the
    region widens, so the image holds one central object rather than fragments everywhere.
    ``t`` in [0, 1): the radius grows from 0.4 to 1.5 half sides (soft over 0.08; the corners,
    at 1.41, reach 0.75); after the ``center`` share of the steps the window is gone.
    """
    h, w = hw
    y = torch.linspace(-1, 1, h, device=dev, dtype=dt)[:, None]
    x = torch.linspace(-1, 1, w, device=dev, dtype=dt)[None, :]
    r = 0.4 + 1.1 * t
    return torch.sigmoid((r - torch.sqrt(x * x + y * y)) / 0.08)[None, None]


def _windowed(img: Tensor, window: Tensor | None) -> Tensor:
    """``img`` (in [0, 1]) faded to grey outside ``window`` (:func:`_center_window`; ``None``:
    unchanged)."""
    return img if window is None else 0.5 + window * (img - 0.5)


def _run_lucid(score, net, n, hw, o, g, noise_g, mean, std, dev, dt, snap_at, snaps, history,
               progress):
    """Lucid-style mode: Fourier + decorrelated colour, random transforms, octaves, Adam."""
    h, w = hw
    copies = int(o["copies"])
    scale = freq_scale(h, w, float(o["decay_power"]), dev, dt, float(o["coarse_cycles"]))
    if o["magnitude"] not in ("free", "fixed"):
        raise ValueError(f"magnitude must be 'free' or 'fixed', got {o['magnitude']!r}")
    if o["magnitude"] == "fixed":  # MACO: optimise the phase only
        spectrum = torch.randn((n, 3, h, w // 2 + 1), generator=g).to(dev, dt)
        contrast = float(o["contrast"])

        def logits(mask: Tensor) -> Tensor:
            return phase_logits(spectrum, mask, hw, contrast)
    else:
        spectrum = init_spectrum(n, hw, g, dev, dt)

        def logits(mask: Tensor) -> Tensor:
            return fourier_logits(spectrum, mask, hw)
    spectrum.requires_grad_(True)
    adam = Adam(spectrum, float(o["lr"]))
    tv, l2, sat = float(o["tv"]), float(o["l2"]), float(o["saturation"])
    plan = octave_plan(int(o["steps"]), o["octaves"])
    masks: dict[float, Tensor] = {}
    inputs: dict[float, tuple[int, int]] = {}
    tf = {key: o[key] for key in _TRANSFORM_KEYS}
    center_share = float(o["center"])
    if not 0 <= center_share <= 1:
        raise ValueError(f"center must be a share of the steps in [0, 1], got {center_share}")
    center_steps = max(1, round(center_share * len(plan)))
    for step, octave in enumerate(plan):
        if octave not in masks:
            masks[octave] = scale * band_mask(h, w, octave, dev, dt) if octave < 1 else scale
            small = (max(8, round(h * octave)), max(8, round(w * octave)))
            # the network sees the octave's size when it can (cheaper), else the full size
            use = o["octave_input"] and small != hw and _accepts(net, small, dev, dt)
            inputs[octave] = small if use else hw
        z = logits(masks[octave])
        window = (_center_window(hw, step / center_steps, dev, dt)
                  if center_share > 0 and step < center_steps else None)
        img = _windowed(torch.sigmoid(z), window)
        batch = random_transform(img.repeat(copies, 1, 1, 1), g, noise_g, out_size=inputs[octave],
                                 **tf)
        s, shown = score((batch - mean) / std)
        obj = s.view(copies, n).mean(0)
        penalty = tv * total_variation(img) * h + l2 * (img - 0.5).pow(2).mean(dim=(1, 2, 3))
        if sat:
            penalty = penalty + sat * saturation_penalty(z, float(o["saturation_knee"]))
        (grad,) = torch.autograd.grad(-(obj - penalty).sum(), spectrum)
        adam.step(grad)
        history.append(shown.detach().view(copies, n).mean(0))
        if step + 1 in snap_at:
            with torch.no_grad():
                shot = _windowed(torch.sigmoid(logits(masks[octave])), window)
                snaps.append(shot.float().cpu())
        if progress is not None:
            progress(1)
    with torch.no_grad():  # the image of the last octave (the whole band when it is 1)
        img = torch.sigmoid(logits(masks[plan[-1]]))
    return (img - mean) / std, img
