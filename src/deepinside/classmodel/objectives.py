"""What to visualise: objectives as values, with arithmetic.

Lucid / Lucent (Olah et al. 2017, "Feature Visualization", https://distill.pub/2017/feature-
visualization/; ``lucent/optvis/objectives.py``): an objective maps what the network computed
on a batch to one number per image, and objectives add, subtract and scale::

    channel("blocks.5", 17) - 0.5 * class_logit(1)
    channel("blocks.5", 17) + diversity("blocks.5", 100)     # a batch of different images

Units live in named layers (``named_modules()`` names or glob patterns, as everywhere in
deepinside). A layer's output is read as a grid ``Tensor[B, C, h, w]`` whatever the model
family (:func:`deepinside.layers.to_grid`): convolutional maps as they are, channels-last maps
(Swin) permuted, a transformer's patch tokens (ViT) laid on the patch grid without the class
token. The grid is what the engine hands over; objectives never call the network.

Per-image arguments: a class, channel, position or vector may be one value for every image, or
a sequence with one value per image (``class_logit([130, 980])``: two images, one per class).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "Activations",
    "Objective",
    "channel",
    "class_logit",
    "direction",
    "diversity",
    "layer",
    "neuron",
    "parse_unit",
    "rival_logits",
    "rival_score",
]


@dataclass
class Activations:
    """What the network computed on a batch of ``B`` rows, as objectives read it.

    Attributes:
        logits: ``Tensor[B, K]``, or ``None`` when no objective needs them (the forward pass
            then stops at the last layer that is needed).
        layers: layer (as the objective names it) -> ``Tensor[B, C, h, w]``.
        index: ``Tensor[B]``: which image (0 .. images - 1) each row shows; a render step
            scores several transformed copies of each image (row ``copy * images + i``).
        images: the number of distinct images.
    """

    logits: Tensor | None
    layers: dict[str, Tensor]
    index: Tensor
    images: int

    def layer(self, name: str) -> Tensor:
        """The grid ``Tensor[B, C, h, w]`` of a layer."""
        return self.layers[name]


def _per_image(value, acts: Activations, dtype=None) -> Tensor:
    """A per-image argument ``Tensor[m, ...]`` (m == 1 or images) as one row per batch row."""
    if value.shape[0] == 1:
        return value.expand(acts.index.shape[0], *value.shape[1:])
    return value.to(acts.index.device)[acts.index]


def _as_rows(value, what: str, dtype=torch.long) -> Tensor:
    """An int / float / sequence / tensor as ``Tensor[m]`` (or ``Tensor[m, ...]``)."""
    t = torch.as_tensor(value, dtype=dtype)
    if t.dim() == 0:
        t = t[None]
    if t.numel() == 0:
        raise ValueError(f"{what} is empty")
    return t


class Objective:
    """One number per image to maximise: ``Activations -> Tensor[B]``.

    Build one with :func:`class_logit`, :func:`channel`, :func:`neuron`, :func:`layer`,
    :func:`direction` or :func:`diversity`, and combine with ``+``, ``-``, ``*`` and ``/`` (by
    numbers or by other objectives).

    Attributes:
        layers: the layers it reads (names or patterns, as given).
        logits: whether it reads the logits.
        images: how many images its per-image arguments define (``None``: any number).
        name: a readable description (``str(objective)``).
    """

    def __init__(self, fn: Callable[[Activations], Tensor], name: str, *,
                 layers: Sequence[str] = (), logits: bool = False, images: int | None = None,
                 where: Callable[[Activations], Tensor] | None = None) -> None:
        self.fn, self.name, self.layers, self.logits, self.images = (
            fn, name, tuple(dict.fromkeys(layers)), logits, images)
        self.where = where

    def __call__(self, acts: Activations) -> Tensor:
        """The objective of each row: ``Tensor[B]``."""
        return self.fn(acts)

    def __repr__(self) -> str:
        return self.name

    def check(self, model) -> None:
        """Check that every layer the objective reads exists in ``model`` (a Classifier or an
        ``nn.Module``), before any work.

        Raises:
            ValueError: a layer matches nothing; the message offers the close names.
        """
        from ..engine import module_of
        from ..layers import find_layer

        module = module_of(model)
        for name in self.layers:
            find_layer(module, name)

    def spatial(self, acts: Activations) -> Tensor | None:
        """Where on its layer's grid the objective lives: ``Tensor[B, h, w]``, or ``None``.

        Defined for a single unit (channel, neuron, layer, direction): its contribution per
        position (a neuron: 1 at its position). Top photos cut their patch around its peak.
        """
        return None if self.where is None else self.where(acts)

    def _combine(self, other, op: Callable, symbol: str, reverse: bool = False) -> Objective:
        if isinstance(other, Objective):
            sizes = (self.images, other.images)
            if None not in sizes and 1 not in sizes and self.images != other.images:
                raise ValueError(f"{self} is for {self.images} images, {other} for "
                                 f"{other.images}")
            sizes = [s for s in (self.images, other.images) if s not in (None, 1)]
            images = sizes[0] if sizes else (1 if 1 in (self.images, other.images) else None)
            a, b = (other, self) if reverse else (self, other)
            return Objective(lambda acts: op(a(acts), b(acts)), f"({a} {symbol} {b})",
                             layers=(*a.layers, *b.layers), logits=a.logits or b.logits,
                             images=images)
        if not isinstance(other, numbers.Real):
            return NotImplemented
        k = float(other)
        fn = (lambda acts: op(k, self(acts))) if reverse else (lambda acts: op(self(acts), k))
        name = f"{k:g} {symbol} {self}" if reverse else f"{self} {symbol} {k:g}"
        return Objective(fn, name, layers=self.layers, logits=self.logits, images=self.images,
                         where=self.where if symbol in "*/" and k > 0 else None)

    def __add__(self, other):
        return self._combine(other, lambda a, b: a + b, "+")

    def __radd__(self, other):
        return self._combine(other, lambda a, b: a + b, "+", reverse=True)

    def __sub__(self, other):
        return self._combine(other, lambda a, b: a - b, "-")

    def __rsub__(self, other):
        return self._combine(other, lambda a, b: a - b, "-", reverse=True)

    def __mul__(self, other):
        return self._combine(other, lambda a, b: a * b, "*")

    def __rmul__(self, other):
        return self._combine(other, lambda a, b: a * b, "*", reverse=True)

    def __truediv__(self, other):
        return self._combine(other, lambda a, b: a / b, "/")

    def __neg__(self):
        return -1.0 * self


def _rows_or_one(t: Tensor) -> int | None:
    return None if t.shape[0] == 1 else t.shape[0]


def _text(t: Tensor) -> str:
    v = t.tolist()
    return str(v[0]) if len(v) == 1 else str(v)


def class_logit(c: int | Sequence[int] | Tensor) -> Objective:
    """The class score (logit) ``S_c`` of Simonyan et al. 2013 (https://arxiv.org/abs/1312.6034).

    Args:
        c: a class index, or one per image.
    """
    t = _as_rows(c, "class")
    return Objective(lambda a: a.logits.gather(1, _per_image(t, a)[:, None].to(
        a.logits.device))[:, 0], f"class_logit({_text(t)})", logits=True,
        images=_rows_or_one(t))


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
    own = logits.gather(1, t[:, None])[:, 0]
    others = logits.scatter(1, t[:, None], float("-inf"))
    if rivals == "mean":
        return (logits.sum(1) - own) / max(logits.shape[1] - 1, 1)
    if rivals == "logsumexp":
        return torch.logsumexp(others, 1)
    if isinstance(rivals, int) and not isinstance(rivals, bool) and rivals >= 1:
        k = min(rivals, logits.shape[1] - 1)
        return others.topk(k, 1).values.mean(1) if k else torch.zeros_like(logits[:, 0])
    raise ValueError(f"rivals must be 'mean', 'logsumexp' or a positive int; got {rivals!r}")


def rival_logits(c: int | Sequence[int] | Tensor, rivals: str | int = "mean") -> Objective:
    """The other classes' score (:func:`rival_score`), to subtract: ``class_logit(c) -
    rival_logits(c)`` raises the class against the others rather than every logit at once."""
    t = _as_rows(c, "class")
    rival_score(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), rivals)  # checks rivals
    return Objective(lambda a: rival_score(a.logits, _per_image(t, a).to(a.logits.device),
                                           rivals),
                     f"rival_logits({_text(t)}, {rivals!r})", logits=True,
                     images=_rows_or_one(t))


def _channel_rows(acts: Activations, name: str, k: Tensor) -> Tensor:
    """``Tensor[B, h, w]``: channel ``k[row]`` of the layer for each row."""
    act = acts.layer(name)
    if int(k.max()) >= act.shape[1] or int(k.min()) < 0:
        raise ValueError(f"channel out of range: layer {name!r} has {act.shape[1]} channels, "
                         f"got {_text(k)}")
    idx = _per_image(k, acts).to(act.device)
    return act.gather(1, idx.view(-1, 1, 1, 1).expand(-1, 1, *act.shape[2:]))[:, 0]


def channel(layer_name: str, k: int | Sequence[int] | Tensor) -> Objective:
    """The mean over positions of channel ``k`` of a layer (Lucent's ``channel``).

    Args:
        layer_name: the layer (a ``named_modules()`` name or a glob pattern).
        k: the channel, or one per image.
    """
    t = _as_rows(k, "channel")
    return Objective(lambda a: _channel_rows(a, layer_name, t).mean(dim=(1, 2)),
                     f"channel({layer_name!r}, {_text(t)})", layers=[layer_name],
                     images=_rows_or_one(t), where=lambda a: _channel_rows(a, layer_name, t))


def neuron(layer_name: str, k: int | Sequence[int] | Tensor, x: int | None = None,
           y: int | None = None) -> Objective:
    """One unit of a layer: channel ``k`` at grid position (``x``, ``y``), default the centre.

    Lucent's ``neuron``: the position is on the layer's grid (a ViT's patch grid), not in
    pixels; ``x`` is the column, ``y`` the row.
    """
    t = _as_rows(k, "channel")

    def pos(act_map: Tensor) -> tuple[int, int]:
        h, w = act_map.shape[-2:]
        yy, xx = (h // 2 if y is None else y), (w // 2 if x is None else x)
        if not (0 <= yy < h and 0 <= xx < w):
            raise ValueError(f"neuron position (x={xx}, y={yy}) is outside layer "
                             f"{layer_name!r}'s {h} x {w} grid")
        return yy, xx

    def fn(a: Activations) -> Tensor:
        m = _channel_rows(a, layer_name, t)
        yy, xx = pos(m)
        return m[:, yy, xx]

    def where(a: Activations) -> Tensor:
        m = _channel_rows(a, layer_name, t)
        yy, xx = pos(m)
        out = torch.zeros_like(m)
        out[:, yy, xx] = 1
        return out

    at = "centre" if x is None and y is None else f"x={x}, y={y}"
    return Objective(fn, f"neuron({layer_name!r}, {_text(t)}, {at})", layers=[layer_name],
                     images=_rows_or_one(t), where=where)


def _whole(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise ValueError(f"{what} must be a whole number >= 0, got {text[:20]!r}")
    return int(text)


def parse_unit(text: str, position: bool = False) -> tuple[str, int, int | None, int | None]:
    """A unit as the command line and the server name it: ``"LAYER:CHANNEL"``, and with
    ``position`` also ``"LAYER:CHANNEL:X:Y"`` (a neuron at a position of the layer's grid).

    A layer name may itself hold ``:``; the numbers are taken from the right.

    Returns:
        ``(layer name, channel, x, y)``; ``x`` and ``y`` are ``None`` without a position.

    Raises:
        ValueError: one line: the form expected, or the number that is not a whole number.
    """
    parts = text.split(":")
    xy = position and len(parts) >= 4
    name = ":".join(parts[:-3] if xy else parts[:-1])
    if len(parts) < 2 or not name:
        form = ("LAYER:CHANNEL or LAYER:CHANNEL:X:Y, e.g. blocks.5:17:3:3" if position else
                "LAYER:CHANNEL, e.g. blocks.5:17")
        raise ValueError(f"must be {form}, got {text[:40]!r}")
    k = _whole(parts[-3] if xy else parts[-1], "the channel")
    if not xy:
        return name, k, None, None
    return name, k, _whole(parts[-2], "x"), _whole(parts[-1], "y")


def layer(layer_name: str) -> Objective:
    """The mean square of a layer's whole output: DeepDream's objective
    (https://github.com/google/deepdream)."""
    return Objective(lambda a: a.layer(layer_name).pow(2).mean(dim=(1, 2, 3)),
                     f"layer({layer_name!r})", layers=[layer_name],
                     where=lambda a: a.layer(layer_name).pow(2).mean(dim=1))


def direction(layer_name: str, vector: Sequence[float] | Tensor) -> Objective:
    """The activation along a direction of a layer's channels, averaged over positions.

    Lucid's ``direction``: ``sum_c v_c A_c(x, y)``, averaged over the positions (so
    ``direction(layer, e_k) == channel(layer, k)``).

    Args:
        layer_name: the layer.
        vector: ``Tensor[C]``, or ``Tensor[N, C]`` one per image.
    """
    v = torch.as_tensor(vector, dtype=torch.float32)
    if v.dim() == 1:
        v = v[None]
    if v.dim() != 2 or v.numel() == 0:
        raise ValueError(f"direction must be Tensor[C] or Tensor[N, C], got {tuple(v.shape)}")

    def where(a: Activations) -> Tensor:
        act = a.layer(layer_name)
        if act.shape[1] != v.shape[1]:
            raise ValueError(f"direction has {v.shape[1]} values, layer {layer_name!r} has "
                             f"{act.shape[1]} channels")
        rows = _per_image(v, a).to(act.device, act.dtype)
        return torch.einsum("bc,bchw->bhw", rows, act)

    return Objective(lambda a: where(a).mean(dim=(1, 2)),
                     f"direction({layer_name!r}, {v.shape[1]} values)", layers=[layer_name],
                     images=_rows_or_one(v), where=where)


def gram_similarity(act: Tensor, images: int) -> Tensor:
    """Mean cosine similarity of each image's Gram matrix to those of the others: ``Tensor[B]``.

    ``act`` is ``Tensor[B, C, h, w]`` with ``B = copies * images`` (row ``copy * images + i``);
    images are compared within their copy. 1 for identical images (and for a lone image).
    """
    b, c = act.shape[:2]
    if images < 2:
        return act.new_ones(b)
    flat = act.reshape(b, c, -1)
    gram = flat @ flat.transpose(1, 2)  # Tensor[B, C, C]
    gram = gram.reshape(b, -1)
    gram = gram / gram.norm(dim=1, keepdim=True).clamp(min=1e-10)
    g = gram.reshape(b // images, images, -1)
    sim = g @ g.transpose(1, 2)  # Tensor[copies, images, images]
    others = (sim.sum(2) - sim.diagonal(dim1=1, dim2=2)) / (images - 1)
    return others.reshape(b)


def diversity(layer_name: str, weight: float = 1.0) -> Objective:
    """Lucid's diversity term: how different each image's style is from the others in the batch.

    ``weight * (1 - s)`` where ``s`` is the mean cosine similarity of the image's Gram matrix of
    the layer (the channel co-activations, Gatys et al. 2015) to the other images' (Lucid's
    ``diversity`` penalises ``s``). 0 for identical images; grows as they differ. Add it to
    an objective and render a batch of several images (``visualize(..., batch=N)``).
    """
    w = float(weight)
    return Objective(lambda a: w * (1 - gram_similarity(a.layer(layer_name), a.images)),
                     f"{w:g} * diversity({layer_name!r})", layers=[layer_name])
