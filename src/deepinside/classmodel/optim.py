"""The optimiser of the render loop."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Adam"]


class Adam:
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
        """One update of ``param`` with ``grad`` (ascent is the caller's sign)."""
        b1, b2 = self.betas
        self.t += 1
        self.m.lerp_(grad, 1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (self.v / (1 - b2**self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / (1 - b1**self.t))
