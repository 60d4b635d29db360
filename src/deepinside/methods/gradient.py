"""The paper's saliency map, registered as ``gradient`` (Simonyan et al. 2013, section 3.1).

The function itself lives in :mod:`deepinside.saliency`.
"""

from __future__ import annotations

from ..saliency import saliency
from ._registry import register_method

__all__ = ["saliency"]

register_method(
    "gradient",
    "the paper's saliency: max over colour channels of |dS_c/dI|",
    "Simonyan, Vedaldi & Zisserman 2013, https://arxiv.org/abs/1312.6034",
    order=0, report="quick",
)(saliency)
