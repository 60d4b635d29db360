"""Weights files: reading a state dict safely, loading it strictly, reading its head's size."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ModelLoadError

__all__ = ["choose_classes", "head_classes", "load_state_dict_file", "load_strict"]


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or ``.pt``/``.pth``/``.bin`` (``weights_only``).

    A checkpoint that wraps the state dict under ``"state_dict"`` or ``"model"`` is unwrapped,
    and a ``"module."`` prefix (from ``DataParallel``) is dropped.

    Raises:
        ModelLoadError: the file is missing, unreadable, or not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": we decide
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every reader error becomes one clear line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds pickled objects, not a plain state dict (refused for safety)"
        raise ModelLoadError(f"cannot read weights file {path}: {reason}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise ModelLoadError(f"weights file {path} is not a state dict (names -> tensors)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    meta = getattr(obj, "_metadata", None)  # module versions, which some loaders need
    if meta is not None:  # (torchvision's MNASNet refuses a state dict without them)
        state = OrderedDict(state)
        state._metadata = type(meta)(  # type: ignore[attr-defined]
            (k.removeprefix("module."), v) for k, v in meta.items())
    return state


def load_strict(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Load ``state`` into ``module``: every name present, every shape equal, or one line why.

    Raises:
        ModelLoadError: names missing or unexpected, or tensors of another shape (the first
            of each named).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} of another shape (e.g. {k}: "
                f"{tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise ModelLoadError(f"{source} does not match the architecture: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def head_classes(state: Mapping[str, Tensor], head: str | Sequence[str] | None) -> int | None:
    """The number of classes of the head ``head`` (a module name) in a state dict, if there.

    The rows of ``<head>.weight`` (a linear layer or a 1 x 1 convolution) are the classes.
    Several names (timm's distilled models: ``("head", "head_dist")``): the first one's.
    """
    if not head:
        return None
    if not isinstance(head, str):
        return head_classes(state, head[0])
    w = state.get(f"{head}.weight")
    return int(w.shape[0]) if isinstance(w, Tensor) and w.dim() in (2, 4) else None


def choose_classes(state: Mapping[str, Tensor], head: str | Sequence[str] | None,
                   num_classes: int | None, source: str) -> int | None:
    """The class count to build: ``num_classes`` if given (checked against the checkpoint's
    head), else the checkpoint's head's, else ``None`` (the architecture's default).

    Raises:
        ModelLoadError: ``num_classes`` and the checkpoint's head disagree.
    """
    found = head_classes(state, head)
    if num_classes is not None and found is not None and found != num_classes:
        name = head if isinstance(head, str) else head[0]
        raise ModelLoadError(f"--num-classes {num_classes} does not match {source}: its head "
                             f"{name}.weight has {found} classes")
    return num_classes if num_classes is not None else found
