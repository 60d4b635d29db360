"""The tables the evaluations print: localisation (``evaluate localization``) and methods
(``evaluate compare``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stages import MethodScores

__all__ = ["localization_table", "methods_table"]


def localization_table(summary: dict, name: str = "recipe") -> str:
    """A plain-text table of a localisation summary (``summary.json``) and its baselines.

    Columns: GT-known localisation accuracy, then the ILSVRC localisation errors at IoU >= 0.5,
    top-1 (Grad-CAM reports 56.51% on VGG-16, https://arxiv.org/abs/1610.02391) and top-5
    (Simonyan et al. 2013 report 46.4%, https://arxiv.org/abs/1312.6034; Grad-CAM 46.41%),
    the pointing game and the map's energy in the true boxes.
    """
    b = summary["baselines"]

    def top1_err(s: dict) -> float:
        return s.get("top1_loc_err", 1.0 - s["top1_loc_acc"])  # summaries of older versions

    w = max(28, len(name))
    lines = [
        f"{'':{w}s} {'GT-known loc':>12s} {'top-1 loc err':>14s} {'top-5 loc err':>14s} "
        f"{'pointing':>9s} {'energy':>7s}",
        f"{name:{w}s} {summary['gt_known_loc_acc']:12.3f} {top1_err(summary):14.3f} "
        f"{summary['top5_loc_err']:14.3f} {summary['pointing_game']:9.3f} "
        f"{summary['energy_in_box']:7.3f}",
    ]
    for key, label in (("whole_image", "whole-image box"),
                       ("centred_box", "centred mean-size box")):
        s = b[key]
        lines.append(f"{label:{w}s} {s['gt_known_loc_acc']:12.3f} {top1_err(s):14.3f} "
                     f"{s['top5_loc_err']:14.3f} {'':>9s} {'':>7s}")
    lines.append(f"{'centre point':{w}s} {'':>12s} {'':>14s} {'':>14s} "
                 f"{b['centre_point']['pointing_game']:9.3f} {'':>7s}")
    lines.append(f"n_images={summary['n_images']}  classification top-1 "
                 f"{summary['top1_cls_acc']:.3f}, top-5 {summary['top5_cls_acc']:.3f}")
    return "\n".join(lines)


def methods_table(rows: Sequence[MethodScores]) -> str:
    """A Markdown table of ``evaluate compare`` (percentages for the two localisation columns)."""
    head = ("| method | images | pointing game % | GT-known loc % | deletion AUC (lower) "
            "| insertion AUC (higher) | randomisation corr (lower) | ms / image |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.images} | {100 * r.pointing:.1f} | {100 * r.gt_known_loc:.1f} "
            f"| {r.deletion_auc:.3f} | {r.insertion_auc:.3f} | {r.randomization_corr:.3f} "
            f"| {r.ms_per_image:.0f} |"
        )
    return "\n".join(lines)
