"""Tiny random Hugging Face image classifiers of every family users bring (no download).

Each is built from a config of a few thousand parameters with its image processor, both saved
with ``save_pretrained`` to a folder, as a user's fine-tuned model would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

LABELS = {0: "cat", 1: "dog", 2: "bird"}


@dataclass(frozen=True)
class HFFamily:
    build: Callable[[], object]  # -> (model, processor)
    size: int  # input side
    default: str  # the layer default_layer must choose
    narrow: str  # a layer with few channels, for the one-pass-per-channel methods


def _common(**kw) -> dict:
    return dict(num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
                initializer_range=0.2, **kw)


SIZE = 32  # transformers and shallow networks; 64 for those of stride 32


def _vit_like(config_cls, model_cls, proc_cls, prefix: str, **extra):
    def build():
        cfg = config_cls(**_common(image_size=SIZE, patch_size=8, hidden_size=16,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, **extra))
        return model_cls(cfg), proc_cls(size={"height": SIZE, "width": SIZE})

    return HFFamily(build, SIZE, f"{prefix}.layers.1.layernorm_before",
                    f"{prefix}.layers.0.layernorm_before")


def _families() -> dict[str, HFFamily]:
    import transformers as tf

    def deit():
        cfg = tf.DeiTConfig(**_common(image_size=SIZE, patch_size=8, hidden_size=16,
                                      num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=32))
        proc = tf.DeiTImageProcessor(size={"height": SIZE + 4, "width": SIZE + 4},
                                     crop_size={"height": SIZE, "width": SIZE})
        return tf.DeiTForImageClassificationWithTeacher(cfg), proc

    def swin():
        cfg = tf.SwinConfig(**_common(image_size=SIZE, patch_size=4, embed_dim=8, depths=[1, 1],
                                      num_heads=[1, 2], window_size=4))
        return tf.SwinForImageClassification(cfg), tf.ViTImageProcessor(
            size={"height": SIZE, "width": SIZE})

    def convnext():
        cfg = tf.ConvNextConfig(**_common(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1]))
        return tf.ConvNextForImageClassification(cfg), tf.ConvNextImageProcessor(
            size={"shortest_edge": SIZE})

    def resnet():
        cfg = tf.ResNetConfig(**_common(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                        layer_type="basic"))
        return tf.ResNetForImageClassification(cfg), tf.ConvNextImageProcessor(
            size={"shortest_edge": SIZE})

    def efficientnet():
        cfg = tf.EfficientNetConfig(**_common(image_size=64, width_coefficient=0.1,
                                              depth_coefficient=0.1, hidden_dim=128))
        return tf.EfficientNetForImageClassification(cfg), tf.EfficientNetImageProcessor(
            size={"height": 64, "width": 64})

    def mobilenet_v2():
        cfg = tf.MobileNetV2Config(**_common(image_size=64, depth_multiplier=0.25))
        return tf.MobileNetV2ForImageClassification(cfg), tf.MobileNetV2ImageProcessor(
            size={"shortest_edge": 72}, crop_size={"height": 64, "width": 64})

    def pvt():  # a class token in the last stage only; spatial reduction convolutions
        cfg = tf.PvtConfig(**_common(image_size=64, hidden_sizes=[8, 16, 24, 32],
                                     depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2]))
        return tf.PvtForImageClassification(cfg), tf.PvtImageProcessor(
            size={"height": 64, "width": 64})

    return {
        "vit": _vit_like(tf.ViTConfig, tf.ViTForImageClassification, tf.ViTImageProcessor,
                         "vit"),
        "deit": HFFamily(deit, SIZE, "deit.layers.1.layernorm_before",
                         "deit.layers.0.layernorm_before"),
        "beit": _vit_like(tf.BeitConfig, tf.BeitForImageClassification, tf.BeitImageProcessor,
                          "beit", use_mean_pooling=True),
        "swin": HFFamily(swin, SIZE, "swin.encoder.layers.1.blocks.0.layernorm_before",
                         "swin.encoder.layers.0.blocks.0.layernorm_before"),
        "convnext": HFFamily(convnext, SIZE, "convnext.encoder.stages.1",
                             "convnext.encoder.stages.0"),
        "resnet": HFFamily(resnet, SIZE, "resnet.encoder.stages.1", "resnet.embedder"),
        "efficientnet": HFFamily(efficientnet, 64, "efficientnet.encoder.top_activation",
                                 "efficientnet.embeddings"),
        "mobilenet_v2": HFFamily(mobilenet_v2, 64, "mobilenet_v2.conv_1x1",
                                 "mobilenet_v2.conv_stem"),
        "pvt": HFFamily(pvt, 64, "pvt.encoder.block.3.0.layer_norm_1",
                        "pvt.encoder.block.0.0.layer_norm_1"),
    }


FAMILIES = ["vit", "deit", "beit", "swin", "convnext", "resnet",
              "efficientnet", "mobilenet_v2", "pvt"]


def build(name: str):
    """``(model, processor)`` of a family, seeded, batch-norm statistics of random images."""
    torch.manual_seed(0)
    fam = _families()[name]
    model, proc = fam.build()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if bns:  # statistics with the scale of a trained network, not 0 / 1
        for b in bns:
            b.momentum = None
        model.train()
        with torch.no_grad():
            model(torch.randn((8, 3, fam.size, fam.size),
                              generator=torch.Generator().manual_seed(1)))
    return model.eval(), proc


def family(name: str) -> HFFamily:
    return _families()[name]


def save(name: str, folder: Path) -> Path:
    """The family's model and processor written with ``save_pretrained`` to ``folder``."""
    model, proc = build(name)
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder
