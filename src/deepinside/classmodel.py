"""Class model visualisation: the image a classifier finds most typical of a class.

Simonyan, Vedaldi & Zisserman (2013), section 2 (https://arxiv.org/abs/1312.6034): with the
weights frozen, find by gradient ascent on the input the image ``I`` that maximises

    S_c(I) - lambda * ||I||_2^2

where ``S_c`` is the *unnormalised* score (logit) of class ``c``; the softmax would also be
raised by lowering the other classes' scores. ``I`` lives in the network's normalised input
space, so the zero image is the dataset mean, and the mean is added back for display.

Three modes, one batch of images for all classes at once:

- ``"paper"``: exactly the above. Start from zero, plain gradient ascent with a fixed step.
  The result is high-frequency noise that the generating model believes in.
- ``"pixel"``: the paper's method at its best (Yosinski et al. 2015,
  https://arxiv.org/abs/1506.06579): pixel-space ascent of the logit with random jitter, a
  normalised step, a Gaussian blur every few steps, a decay toward the mean (grey) and pixels
  kept in range. Faint objects on grey, the look of the paper's figures.
- ``"lucid"`` (default): a regularised render in the spirit of Lucid/Lucent (Olah et al.,
  "Feature Visualization", Distill 2017, https://distill.pub/2017/feature-visualization/):
  the image is parametrised by a decorrelated Fourier spectrum and a colour-decorrelated
  basis, squashed to [0, 1] by a sigmoid; optimised coarse to fine in octaves (as DeepDream,
  https://github.com/google/deepdream: first an image band-limited to half resolution that the
  network sees at half size, then three quarters, then the whole image), which makes images
  that other networks also recognise; every step sees several randomly transformed copies
  (shift, scale, rotation, colour jitter, blur, noise: transformation robustness); the
  objective is the class logit minus the mean of the other logits (or of its nearest rivals,
  :func:`rival_score`), with a mild total-variation penalty; Adam.

All randomness (initialisation and transforms) comes from generators seeded with ``seed``, so a
run is reproducible on a given device. The caller's model is never changed: it runs in eval mode
(flags restored), gradients are taken only with respect to the image parameters, and by default
a private batch-norm-folded copy is used (:mod:`deepinside.fastmodel`, through
:mod:`deepinside.engine`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .engine import module_of, network
from .filters import gaussian_blur
from .models import Classifier, Preprocessing
from .targets import class_indices, need_logits

__all__ = [
    "MODES",
    "ClassModelResult",
    "class_model",
    "fourier_image",
    "mode_defaults",
    "octave_plan",
    "random_transform",
    "rival_score",
    "stretch",
]

Mode = Literal["lucid", "paper", "pixel"]
MODES: tuple[str, ...] = ("lucid", "paper", "pixel")

# Lucid's colour decorrelation: the square root of the ImageNet colour covariance (its SVD),
# columns normalised by the largest column norm (lucid/optvis/param/color.py).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()

# Defaults per mode; how they were chosen is written in docs/classmodel.md.
_DEFAULTS: dict[str, dict] = {
    "paper": {"steps": 200, "lr": 1.0, "l2": 1e-3},
    "pixel": {
        "steps": 200, "lr": 0.02, "l2": 0.0, "decay": 0.01, "blur_every": 4, "blur_sigma": 1.0,
        "jitter": 8,
    },
    "lucid": {
        "steps": 160, "lr": 0.05, "l2": 0.0, "tv": 1e-3, "other": 1.0, "copies": 2,
        "decay_power": 1.2, "shift": 40 / 224, "scale": (0.45, 1.6), "rotate": 25.0,
        "color_jitter": 0.15, "noise": 0.02, "blur": 0.5, "rivals": "mean",
        "octaves": ((0.5, 0.35), (0.75, 0.3), (1.0, 0.35)), "octave_input": True,
    },
}


def mode_defaults(mode: str) -> dict:
    """The default options of a mode (a copy): steps, step size ``lr``, ``l2``, and so on."""
    if mode not in _DEFAULTS:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return dict(_DEFAULTS[mode])


@dataclass
class ClassModelResult:
    """What :func:`class_model` returns.

    Attributes:
        images: ``Tensor[N, 3, H, W]`` in [0, 1] (the mean added back, clipped), on the CPU.
        classes: ``Tensor[N]`` the class of each image.
        objective: ``Tensor[steps, N]`` the objective of each image at each step, before the
            update: ``"paper"``: S_c(I) - lambda * ||I||^2; ``"pixel"``: S_c of the jittered
            image; ``"lucid"``: S_c averaged over the transformed copies.
        snapshots: ``Tensor[K, N, 3, H, W]`` in [0, 1], the images after the steps in
            ``snapshot_steps`` (empty when none were asked for).
        snapshot_steps: after how many steps each snapshot was taken.
        raw: the final images in the network's normalised input space ``Tensor[N, 3, H, W]``
            (before clipping), on the CPU.
        options: every option the run used.
    """

    images: Tensor
    classes: Tensor
    objective: Tensor
    snapshots: Tensor
    snapshot_steps: list[int]
    raw: Tensor
    options: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- parametrisation


def _freq_scale(h: int, w: int, decay_power: float, device, dtype) -> Tensor:
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / freqs.clamp(min=1.0 / max(h, w)) ** decay_power


def fourier_image(spectrum: Tensor, scale: Tensor, size: tuple[int, int]) -> Tensor:
    """Decorrelated Fourier + colour parametrisation -> RGB in (0, 1).

    Args:
        spectrum: ``Tensor[N, 3, H, W // 2 + 1, 2]`` real and imaginary parts.
        scale: ``Tensor[H, W // 2 + 1]`` per-frequency scale (1 / f^decay_power).
        size: (H, W).

    Returns:
        ``Tensor[N, 3, H, W]`` with values in (0, 1).
    """
    spec = torch.view_as_complex(spectrum) * scale
    x = torch.fft.irfft2(spec, s=size, norm="ortho") / 4.0  # Lucid's "magic" 4
    color = _COLOR.to(device=x.device, dtype=x.dtype)
    x = torch.einsum("ij,njhw->nihw", color, x)
    return torch.sigmoid(x)


# ----------------------------------------------------------------------------- transforms


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def random_transform(
    x: Tensor,
    g: torch.Generator,
    noise_g: torch.Generator,
    *,
    shift: float = 32 / 224,
    scale: tuple[float, float] = (0.5, 1.5),
    rotate: float = 20.0,
    color_jitter: float = 0.1,
    noise: float = 0.02,
    blur: float = 0.5,
    out_size: tuple[int, int] | None = None,
) -> Tensor:
    """Random shift, scale, rotation, colour jitter, blur and noise, drawn per image.

    Everything happens in one ``grid_sample`` (bilinear; grey 0.5 outside the image), so the
    cost is small beside the network. Random numbers come from ``g`` (CPU generator, for the
    per-image parameters) and ``noise_g`` (a generator on ``x``'s device, for the noise).

    Args:
        x: ``Tensor[B, 3, H, W]`` in [0, 1].
        shift: largest shift, a fraction of the image's side (32 / 224: 32 px at 224 px).
        scale: range of the zoom factor.
        rotate: largest rotation in degrees.
        color_jitter: largest per-channel relative gain change and offset.
        noise: standard deviation of added Gaussian noise.
        blur: largest weight of a 3x3-ish Gaussian blur mixed into each image.
        out_size: (H', W') of the result (default: the input's); the same transform, sampled
            on a coarser or finer grid (an octave's network input).

    Returns:
        ``Tensor[B, 3, H', W']``, differentiable with respect to ``x``.
    """
    b, c, h, w = x.shape
    oh, ow = out_size if out_size is not None else (h, w)
    dev, dt = x.device, x.dtype
    s = torch.exp(_uniform(g, b, math.log(scale[0]), math.log(scale[1])))
    a = _uniform(g, b, -rotate, rotate) * (math.pi / 180)
    tx = _uniform(g, b, -shift, shift) * 2.0  # affine_grid's coordinates span [-1, 1]
    ty = _uniform(g, b, -shift, shift) * 2.0
    gain = 1 + _uniform(g, b * c, -color_jitter, color_jitter).view(b, c, 1, 1)
    offset = _uniform(g, b * c, -color_jitter, color_jitter).view(b, c, 1, 1)
    mix = _uniform(g, b, 0.0, blur).view(b, 1, 1, 1)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack(
        [torch.stack([cos, -sin * h / w, tx], 1), torch.stack([sin * w / h, cos, ty], 1)], 1
    ).to(device=dev, dtype=dt)
    grid = F.affine_grid(theta, [b, c, oh, ow], align_corners=False)
    y = F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = y + 0.5
    if blur > 0:
        mix = mix.to(device=dev, dtype=dt)
        y = torch.lerp(y, gaussian_blur(y, 1.0), mix)
    y = (y - 0.5) * gain.to(device=dev, dtype=dt) + 0.5 + offset.to(device=dev, dtype=dt)
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=noise_g, device=dev, dtype=dt)
    return y


def _tv(x: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, per image: ``Tensor[N]``."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


def stretch(images: Tensor, percentile: float = 0.5) -> Tensor:
    """Per-image contrast stretch to [0, 1] for display (the paper's "rescale").

    Args:
        images: ``Tensor[N, 3, H, W]``.
        percentile: the low/high percentiles mapped to 0 and 1.
    """
    flat = images.reshape(images.shape[0], -1).float()
    lo = torch.quantile(flat, percentile / 100, dim=1).view(-1, 1, 1, 1)
    hi = torch.quantile(flat, 1 - percentile / 100, dim=1).view(-1, 1, 1, 1)
    return ((images - lo) / (hi - lo).clamp(min=1e-8)).clamp(0, 1).to(images.dtype)


# ----------------------------------------------------------------------------- the ascent


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
    manner of Lucid (https://distill.pub/2017/feature-visualization/).

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
            ``other``, ``rivals`` (see :func:`rival_score`), ``octaves`` (``((scale, share),
            ...)``, see :func:`octave_plan`; ``((1.0, 1.0),)``: none), ``octave_input`` (the
            network sees each octave at its size, when it accepts that size), ``copies``,
            ``decay_power``, ``shift``, ``scale``, ``rotate``, ``color_jitter``, ``noise``,
            ``blur`` (lucid), ``decay``, ``blur_every``, ``blur_sigma``, ``jitter`` (pixel).

    Returns:
        A :class:`ClassModelResult`; ``images`` is ``Tensor[N, 3, H, W]`` in [0, 1].

    Example:
        >>> clf = deepinside.load_model()                                  # doctest: +SKIP
        >>> r = deepinside.class_model(clf, ["flamingo", 1], steps=128)      # doctest: +SKIP
        >>> r.images.shape                                                 # doctest: +SKIP
        torch.Size([2, 3, 224, 224])
    """
    opts = mode_defaults(mode)
    unknown = set(options) - set(opts)
    if unknown:
        raise TypeError(f"unknown options for mode {mode!r}: {', '.join(sorted(unknown))}")
    opts.update(options)
    if steps is not None:
        opts["steps"] = steps
    if lr is not None:
        opts["lr"] = lr
    if l2 is not None:
        opts["l2"] = l2
    if int(opts["steps"]) < 1:
        raise ValueError("steps must be at least 1")
    if snapshots < 0:
        raise ValueError("snapshots must be >= 0")
    targets = class_indices(classes, model if isinstance(model, Classifier) else None)
    hw = _size(model, size)
    pre = model.preprocessing if isinstance(model, Classifier) else Preprocessing()
    module = module_of(model)
    p = next(module.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    dt = p.dtype if p is not None and p.is_floating_point() else torch.float32
    opts.update(mode=mode, seed=seed, size=hw)

    g = torch.Generator().manual_seed(seed)
    noise_g = torch.Generator(device=dev).manual_seed(seed + 1)
    t = torch.tensor(targets, dtype=torch.long, device=dev)
    n = len(targets)
    mean = torch.tensor(pre.mean, device=dev, dtype=dt).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=dev, dtype=dt).view(1, 3, 1, 1)
    snap_at = set(_snapshot_steps(int(opts["steps"]), snapshots))
    snaps: list[Tensor] = []
    history: list[Tensor] = []

    example = torch.zeros((1, 3, *hw), device=dev, dtype=dt)
    with network(model, example, fast=fast) as net, torch.enable_grad():

        def logits_of(x: Tensor) -> Tensor:
            out = need_logits(net(x), "a class model")
            if max(targets) >= out.shape[1] or min(targets) < 0:
                raise ValueError(f"class out of range 0..{out.shape[1] - 1}: {targets}")
            return out

        if mode == "lucid":
            raw, pixels = _run_lucid(logits_of, t, hw, opts, g, noise_g, mean, std, dev, dt,
                                     snap_at, snaps, history, progress)
        else:
            raw, pixels = _run_pixels(logits_of, t, hw, opts, g, mean, std, dev, dt,
                                      snap_at, snaps, history, progress)
    return ClassModelResult(
        images=pixels.detach().float().cpu(),
        classes=t.cpu(),
        objective=torch.stack(history).float().cpu(),
        snapshots=(torch.stack(snaps) if snaps else torch.empty(0, n, 3, *hw)),
        snapshot_steps=sorted(snap_at),
        raw=raw.detach().float().cpu(),
        options=opts,
    )


def _select(logits: Tensor, t: Tensor) -> Tensor:
    return logits.gather(1, t[:, None])[:, 0]


def _run_pixels(logits_of, t, hw, o, g, mean, std, dev, dt, snap_at, snaps, history, progress):
    """Paper and pixel modes: ascent on I in the normalised input space, starting at zero."""
    n = t.numel()
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
        s = _select(logits_of(xin), t)
        obj = s - l2 * xi.pow(2).sum(dim=(1, 2, 3))
        (grad,) = torch.autograd.grad(obj.sum(), xi)
        history.append(obj.detach() if paper else s.detach())
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


class _Adam:
    """Adam (Kingma & Ba 2014, https://arxiv.org/abs/1412.6980) on one tensor, in place.

    The same update as ``torch.optim.Adam`` with its defaults; written out because building a
    ``torch.optim`` optimiser imports the compiler stack, seconds on first use.
    """

    def __init__(self, param: Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.param, self.lr, self.betas, self.eps, self.t = param, lr, betas, eps, 0
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / (1 - b1**self.t))


def rival_score(logits: Tensor, t: Tensor, rivals: str | int = "mean") -> Tensor:
    """The score of the other classes that the lucid objective subtracts: ``Tensor[B]``.

    Args:
        logits: ``Tensor[B, K]``.
        t: ``Tensor[B]`` the class of each row.
        rivals: ``"mean"``: the mean of the other K - 1 logits (every class pushed down a
            little); ``"logsumexp"``: their log-sum-exp, a soft maximum, so that the class minus
            it is the log-odds of the class against all others together (the gradient goes to
            the nearest rivals, in proportion to their probability); an int ``k``: the mean of
            the ``k`` highest other logits.
    """
    others = logits.scatter(1, t[:, None], float("-inf"))
    if rivals == "mean":
        return (logits.sum(1) - _select(logits, t)) / max(logits.shape[1] - 1, 1)
    if rivals == "logsumexp":
        return torch.logsumexp(others, 1)
    if isinstance(rivals, int) and not isinstance(rivals, bool) and rivals >= 1:
        k = min(rivals, logits.shape[1] - 1)
        return others.topk(k, 1).values.mean(1) if k else torch.zeros_like(logits[:, 0])
    raise ValueError(f"rivals must be 'mean', 'logsumexp' or a positive int; got {rivals!r}")


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


def _band_mask(h: int, w: int, scale: float, device, dtype) -> Tensor:
    """1 for the frequencies an image of ``scale`` times the size can hold, else 0."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
    lim = 0.5 * scale + 1e-6
    return ((fy <= lim) & (fx <= lim)).to(dtype)


def _accepts(logits_of, size: tuple[int, int], dev, dt) -> bool:
    """Whether the network takes inputs of ``size`` (a ViT with fixed patches does not)."""
    try:
        with torch.no_grad():
            logits_of(torch.zeros((1, 3, *size), device=dev, dtype=dt))
    except (RuntimeError, AssertionError, ValueError):
        return False
    return True


def _run_lucid(logits_of, t, hw, o, g, noise_g, mean, std, dev, dt, snap_at, snaps, history,
               progress):
    """Lucid-style mode: Fourier + decorrelated colour, random transforms, octaves, Adam."""
    n = t.numel()
    h, w = hw
    copies = int(o["copies"])
    scale = _freq_scale(h, w, float(o["decay_power"]), dev, dt)
    spectrum = (0.01 * torch.randn((n, 3, h, w // 2 + 1, 2), generator=g)).to(dev, dt)
    spectrum.requires_grad_(True)
    adam = _Adam(spectrum, float(o["lr"]))
    tt = t.repeat(copies)
    other, tv, l2, rivals = float(o["other"]), float(o["tv"]), float(o["l2"]), o["rivals"]
    plan = octave_plan(int(o["steps"]), o["octaves"])
    masks: dict[float, Tensor] = {}
    inputs: dict[float, tuple[int, int]] = {}
    tf = {key: o[key] for key in ("shift", "scale", "rotate", "color_jitter", "noise", "blur")}
    for step, octave in enumerate(plan):
        if octave not in masks:
            masks[octave] = scale * _band_mask(h, w, octave, dev, dt) if octave < 1 else scale
            small = (max(8, round(h * octave)), max(8, round(w * octave)))
            # the network sees the octave's size when it can (cheaper), else the full size
            use = o["octave_input"] and small != hw and _accepts(logits_of, small, dev, dt)
            inputs[octave] = small if use else hw
        img = fourier_image(spectrum, masks[octave], hw)
        batch = random_transform(img.repeat(copies, 1, 1, 1), g, noise_g, out_size=inputs[octave],
                                 **tf)
        logits = logits_of((batch - mean) / std)
        s = _select(logits, tt)
        obj = (s - other * rival_score(logits, tt, rivals)).view(copies, n).mean(0)
        loss = -(obj - tv * _tv(img) * h - l2 * (img - 0.5).pow(2).mean(dim=(1, 2, 3))).sum()
        (grad,) = torch.autograd.grad(loss, spectrum)
        adam.step(grad)
        history.append(s.detach().view(copies, n).mean(0))
        if step + 1 in snap_at:
            with torch.no_grad():
                snaps.append(fourier_image(spectrum, masks[octave], hw).float().cpu())
        if progress is not None:
            progress(1)
    with torch.no_grad():  # the image of the last octave (the whole band when it is 1)
        img = fourier_image(spectrum, masks[plan[-1]], hw)
    return (img - mean) / std, img
