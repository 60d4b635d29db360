"""``deepinside audit``: what a model relies on, class by class, over a whole data set.

- :mod:`.spray`: SpRAy, the strategies of a class as spectral clusters of its maps (NumPy).
- :mod:`.records`: one photo -> one line of ``per_image.jsonl`` (its maps pooled; NumPy).
- :mod:`.suspicion`: a class's clusters, their suspicion score and the flag (NumPy).
- :mod:`.erase`: the erase check, through the engine.
- :mod:`.analysis`: a batch of photos -> lines; all lines -> the classes.
- :mod:`.page`: ``audit.json``, ``index.html`` and its figures.
- :mod:`.run`: :func:`audit`, streaming, resumable, on the evaluation runner's machinery.
- :mod:`.planted`: a planted shortcut, the audit's own end-to-end check.

Names are imported on first use, so ``import deepinside.audit.spray`` loads no torch.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AuditRecord": "records",
    "ClassAudit": "suspicion",
    "ClusterAudit": "suspicion",
    "audit": "run",
    "class_audit": "suspicion",
    "spectral_clusters": "spray",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
