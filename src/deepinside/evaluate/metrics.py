"""Box arithmetic and the localisation study's metrics: :mod:`deepinside.boxes` (moved there so
that :mod:`deepinside.metrics` can use them; NumPy only, no torch at import)."""

from ..boxes import *  # noqa: F403
from ..boxes import __all__, boxes_mask, check_box, map_peak  # noqa: F401
