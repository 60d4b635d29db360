"""What the network has learned: class models and feature visualisation of any unit.

Simonyan, Vedaldi & Zisserman (2013), section 2 (https://arxiv.org/abs/1312.6034): the image a
classifier finds most typical of a class; Olah et al. (2017, "Feature Visualization",
https://distill.pub/2017/feature-visualization/): the same ascent aimed at a channel, a
neuron, a layer or a direction, and the photos that excite the unit most. One idea a module:

- :mod:`.objectives`: what to maximise, as values with arithmetic (``class_logit``,
  ``channel``, ``neuron``, ``layer``, ``direction``, ``diversity``);
- :mod:`.param`: the decorrelated Fourier image; :mod:`.transforms`: transformation
  robustness; :mod:`.optim`: Adam;
- :mod:`.ascent`: the render loop, :func:`visualize` and its class case :func:`class_model`;
- :mod:`.photos`: the photos of a data set that excite a unit most (:func:`top_photos`).
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "MODES": "ascent",
    "ClassModelResult": "ascent",
    "Visualization": "ascent",
    "class_model": "ascent",
    "mode_defaults": "ascent",
    "octave_plan": "ascent",
    "visualize": "ascent",
    "Activations": "objectives",
    "Objective": "objectives",
    "channel": "objectives",
    "class_logit": "objectives",
    "direction": "objectives",
    "diversity": "objectives",
    "layer": "objectives",
    "neuron": "objectives",
    "parse_unit": "objectives",
    "rival_logits": "objectives",
    "rival_score": "objectives",
    "fourier_image": "param",
    "random_transform": "transforms",
    "stretch": "transforms",
    "TopPhoto": "photos",
    "top_photos": "photos",
    "unit_gradient": "photos",
    "unit_values": "photos",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
