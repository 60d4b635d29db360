"""Image parametrisations: a decorrelated Fourier spectrum with decorrelated colours.

Lucid / Lucent (Olah et al. 2017, "Feature Visualization", https://distill.pub/2017/feature-
visualization/; ``lucid/optvis/param/spatial.py`` and ``color.py``): the image is the inverse
FFT of a spectrum scaled by ``1 / f^decay``, mixed by the square root of ImageNet's colour
covariance and squashed to (0, 1) by a sigmoid. Gradient steps on the spectrum change the
image's coarse structure as easily as its fine detail, which plain pixels do not.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["band_mask", "fourier_image", "fourier_logits", "freq_scale", "init_spectrum",
           "phase_logits", "saturation_penalty"]

# Lucid's colour decorrelation: the square root of the ImageNet colour covariance (its SVD),
# columns normalised by the largest column norm (lucid/optvis/param/color.py).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def freq_scale(h: int, w: int, decay_power: float, device, dtype,
               coarse_cycles: float = 1.0) -> Tensor:
    """``Tensor[H, W // 2 + 1]``: the scale ``1 / f^decay_power`` of each frequency.

    ``f`` is floored at ``coarse_cycles`` cycles per image (Lucid: 1, which only keeps the
    constant term finite). Under Adam, which normalises each coefficient's step, the scale is
    the coefficient's learning rate in image space; a floor of ``k`` cycles caps the coarsest
    frequencies' rate at that of ``k`` cycles (the constant term moves ``k^decay_power`` times
    slower than with a floor of 1) and leaves every finer frequency as it was.
    """
    if coarse_cycles < 1:
        raise ValueError(f"coarse_cycles must be >= 1, got {coarse_cycles}")
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / freqs.clamp(min=coarse_cycles / max(h, w)) ** decay_power


def band_mask(h: int, w: int, scale: float, device, dtype) -> Tensor:
    """``Tensor[H, W // 2 + 1]``: 1 for the frequencies an image ``scale`` times the size holds."""
    fy = torch.fft.fftfreq(h, device=device, dtype=dtype).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=device, dtype=dtype)[None, :]
    lim = 0.5 * scale + 1e-6
    return ((fy <= lim) & (fx <= lim)).to(dtype)


def init_spectrum(n: int, size: tuple[int, int], g: torch.Generator, device, dtype,
                  sd: float = 0.01) -> Tensor:
    """A random spectrum ``Tensor[N, 3, H, W // 2 + 1, 2]`` (Lucid's ``sd=0.01``), from ``g``."""
    h, w = size
    return (sd * torch.randn((n, 3, h, w // 2 + 1, 2), generator=g)).to(device, dtype)


def fourier_logits(spectrum: Tensor, scale: Tensor, size: tuple[int, int]) -> Tensor:
    """The decorrelated Fourier + colour image before the sigmoid: ``Tensor[N, 3, H, W]``.

    Args:
        spectrum: ``Tensor[N, 3, H, W // 2 + 1, 2]`` real and imaginary parts.
        scale: ``Tensor[H, W // 2 + 1]`` per-frequency scale (1 / f^decay_power).
        size: (H, W).
    """
    spec = torch.view_as_complex(spectrum) * scale
    x = torch.fft.irfft2(spec, s=size, norm="ortho") / 4.0  # Lucid's "magic" 4
    color = COLOR.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,njhw->nihw", color, x)


def _standardize(x: Tensor) -> Tensor:
    """Each image (dim 0) to mean 0 and standard deviation 1 over all its other dims."""
    dims = tuple(range(1, x.dim()))
    x = x - x.mean(dim=dims, keepdim=True)
    return x / (x.std(dim=dims, keepdim=True) + 1e-4)


def phase_logits(phase: Tensor, magnitude: Tensor, size: tuple[int, int],
                 contrast: float = 1.0) -> Tensor:
    """The magnitude-constrained image before the sigmoid: ``Tensor[N, 3, H, W]``.

    MACO (Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude
    Constrained Optimization", https://arxiv.org/abs/2306.06805): only the phase of the
    spectrum is optimised; its magnitude is fixed to a natural image's (here ``1 / f^decay``),
    and the image is standardised, so the ascent can move structure but not pile energy into
    any frequency or blow the colours out. Each image's phase and its decorrelated image are
    standardised, mixed by the colour matrix and scaled by ``contrast``.

    Args:
        phase: ``Tensor[N, 3, H, W // 2 + 1]``.
        magnitude: ``Tensor[H, W // 2 + 1]`` (0 outside an octave's band).
        size: (H, W).
        contrast: the standard deviation of the decorrelated image before the colour matrix.
    """
    spec = torch.polar(magnitude.expand_as(phase), _standardize(phase))
    x = _standardize(torch.fft.irfft2(spec, s=size, norm="ortho"))
    color = COLOR.to(device=x.device, dtype=x.dtype)
    return contrast * torch.einsum("ij,njhw->nihw", color, x)


def fourier_image(spectrum: Tensor, scale: Tensor, size: tuple[int, int]) -> Tensor:
    """Decorrelated Fourier + colour parametrisation -> RGB in (0, 1).

    ``sigmoid(fourier_logits(spectrum, scale, size))``: ``Tensor[N, 3, H, W]`` in (0, 1).
    """
    return torch.sigmoid(fourier_logits(spectrum, scale, size))


def saturation_penalty(z: Tensor, knee: float = 3.0) -> Tensor:
    """Per image, the mean of ``relu(|z| - knee)^2`` over the pre-sigmoid values: ``Tensor[N]``.

    A colour prior against the sigmoid's flat tails: beyond ``|z| = knee`` (sigmoid 0.047 or
    0.953) a value's colour hardly changes and the objective's gradient through the sigmoid
    vanishes, so nothing but this term pulls a blown-out area back; inside it the term is zero
    and leaves the image alone. ``z``: ``Tensor[N, C, H, W]``.
    """
    return (z.abs() - knee).clamp(min=0).pow(2).mean(dim=(1, 2, 3))
