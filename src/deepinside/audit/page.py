"""An audit's results as ``audit.json`` and as a page, ``index.html`` with its figures.

The page is built with the paper report's machinery (:mod:`deepinside.report.page`: inline
CSS, no CDN) and every figure is a PNG in ``figures/`` drawn by :mod:`deepinside.render`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from .suspicion import FIXED_RADIUS, HOT, ClassAudit, ClusterAudit

__all__ = ["THUMB", "audit_json", "cluster_figure", "render_audit_page"]

THUMB = 160  # pixels a side of a thumbnail on the page


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None or v != v else round(float(v), digits)


def _cluster_json(c: ClusterAudit) -> dict:
    return {"share": _r(c.share), "peak": [_r(c.peak[0]), _r(c.peak[1])],
            "erase_region_drop": _r(c.erase_region_drop),
            "erase_object_drop": _r(c.erase_object_drop), "examples": list(c.examples)}


def audit_json(classes: Sequence[ClassAudit], meta: dict) -> dict:
    """The content of ``audit.json``: ``meta`` (model, method, dataset, counts) and, per class
    sorted by suspicion (highest first), ``class``, ``name``, ``n``, ``accuracy``,
    ``energy_in_box``, ``pointing``, ``suspicion``, ``flagged`` and its ``clusters`` (largest
    first) with ``share``, ``peak`` (``[x, y]``, fractions of the photo's width and height),
    ``erase_region_drop``, ``erase_object_drop`` and ``examples`` (photo keys)."""
    rows = [{"class": a.label, "name": a.name, "n": a.n, "accuracy": _r(a.accuracy),
             "energy_in_box": _r(a.energy_in_box), "pointing": _r(a.pointing),
             "suspicion": _r(a.suspicion), "flagged": a.flagged,
             "clusters": [_cluster_json(c) for c in a.clusters]}
            for a in sort_classes(classes)]
    return {**meta, "classes": rows}


def sort_classes(classes: Sequence[ClassAudit]) -> list[ClassAudit]:
    """Flagged classes first, then by suspicion (highest first), then by class index."""
    return sorted(classes, key=lambda a: (not a.flagged, -round(a.suspicion, 9), a.label))


def _thumb(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((THUMB, THUMB), Image.BILINEAR))


def _upsampled(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    im = Image.fromarray(np.asarray(grid, dtype=np.float32), mode="F")
    return np.asarray(im.resize(size, Image.BILINEAR), dtype=np.float32)


def cluster_figure(c: ClusterAudit, photos: Sequence[tuple[str, Image.Image, np.ndarray]],
                   path: Path) -> Path:
    """One strategy as a PNG: its mean map, then each example photo with its own map over it.

    Args:
        c: the cluster.
        photos: ``(label, photo, pooled map)`` of its examples.
        path: the PNG to write.
    """
    from .. import render

    mean = render.heatmap(_upsampled(c.mean_map, (THUMB, THUMB)))
    cells = [mean] + [_thumb(render.overlay(p, _upsampled(m, p.size))) for _, p, m in photos]
    labels = [f"mean map, peak ({c.peak[0]:.2f}, {c.peak[1]:.2f})"] + [t for t, _, _ in photos]
    return render.save_png(render.grid_image(cells, labels, columns=len(cells)), path)


def _erase_cell(c: ClusterAudit) -> str:
    if c.erase_photos == 0:
        return "n/a (no photo with boxes)"
    flag = ' <b class="flag">flagged</b>' if c.flagged else ""
    return (f"region {c.erase_region_drop:+.2f}, object {c.erase_object_drop:+.2f} "
            f"({c.erase_photos} photos){flag}")


CSS = """
.flag{color:#fff;background:#c0392b;padding:0 .35rem;border-radius:3px}
.cls{border-top:1px solid #ddd;margin-top:1.6rem}.cls h3{margin-bottom:.2rem}
"""


def _class_html(a: ClassAudit, figures: dict[tuple[int, int], str]) -> str:
    from ..report.page import img, num, pct

    flag = ' <span class="flag">flagged</span>' if a.flagged else ""
    parts = [f'<div class="cls" id="class-{a.label}"><h3>{escape(a.name)} (class {a.label})'
             f"{flag}</h3>",
             f"<p>{a.n} photos; accuracy {pct(a.accuracy)}; energy in box "
             f"{pct(a.energy_in_box)}; pointing {pct(a.pointing)}; suspicion "
             f"<b>{num(a.suspicion, 3)}</b>; {a.k} strateg{'y' if a.k == 1 else 'ies'} "
             "(SpRAy).</p>"]
    for j, c in enumerate(a.clusters):
        parts.append(f"<p>Cluster {j + 1}: {pct(c.share)} of the photos, peak at "
                     f"({c.peak[0]:.2f}, {c.peak[1]:.2f}) of the width and height; "
                     f"same place {pct(c.fixed)}, energy off the object {pct(c.off_object)}, "
                     f"suspicion {num(c.suspicion, 3)}; erase check: {_erase_cell(c)}.</p>")
        if (a.label, j) in figures:
            parts.append(img(figures[(a.label, j)], f"{a.name}, cluster {j + 1}"))
    parts.append("</div>")
    return "\n".join(parts)


def render_audit_page(classes: Sequence[ClassAudit], meta: dict,
                      figures: dict[tuple[int, int], str]) -> str:
    """The audit as one HTML page.

    Args:
        classes: the audited classes.
        meta: ``audit.json``'s header (``model``, ``method``, ``dataset``, ``n_photos``, ...).
        figures: ``(class, cluster index) -> figure path`` (relative to the page); clusters
            without a figure are described in words only.
    """
    from ..report.page import page_html, pct, table

    order = sort_classes(classes)
    flagged = [a for a in order if a.flagged]
    rows = [[f'<a href="#class-{a.label}">{escape(a.name)}</a>', str(a.n), pct(a.accuracy),
             pct(a.energy_in_box), pct(a.pointing), f"{a.suspicion:.3f}",
             "yes" if a.flagged else ""] for a in order]
    intro = f"""<h1>Audit: what {escape(str(meta["model"]))} relies on, class by class</h1>
<p>{meta["n_photos"]} photos of {escape(str(meta["dataset"]))}, maps by
<code>{escape(str(meta["method"]))}</code> for each photo's labelled class
({meta.get("n_failed", 0)} photos could not be audited). {len(flagged)} of {len(order)} classes
flagged{": " + ", ".join(escape(a.name) for a in flagged) if flagged else ""}.</p>
<p class="claim"><b>How to read it.</b> Each class's maps are clustered into strategies by SpRAy
(Lapuschkin et al. 2019, spectral clustering, the number of clusters from the eigengap). A
cluster's <b>suspicion</b> = share &times; same place &times; energy off the object: the share
of the class's photos in it, the share of its other photos whose map peaks within
{FIXED_RADIUS:g} of the width and height of the cluster's peak, and the mean share of their
maps' energy outside the object's boxes. The <b>erase check</b> blurs the cluster's hot region
(its mean map &ge; {HOT:g} &times; its maximum), less the boxes, and separately the boxes, on
its most typical photos, and reports the class logit's mean drop; a cluster is <b>flagged</b>
when erasing the region hurts more than erasing the object. Classes: flagged first, then by
suspicion.</p>"""
    summary = table(["class", "photos", "accuracy", "energy in box", "pointing", "suspicion",
                     "flagged"], rows)
    body = "\n".join([intro, summary] + [_class_html(a, figures) for a in order])
    footer = (f"Generated by deepinside {escape(str(meta.get('deepinside', '')))}; every number "
              'on this page is in <a href="audit.json">audit.json</a>, every photo\'s line in '
              "per_image.jsonl.")
    return page_html(f"Audit: {meta['model']}", body, footer, CSS)


def write_figures(classes: Sequence[ClassAudit], out: Path,
                  photo: Callable[[str], tuple[Image.Image, np.ndarray] | None],
                  limit: int) -> dict[tuple[int, int], str]:
    """The figures of the first ``limit`` classes in the page's order (and of every flagged
    class): ``figures/class<c>_cluster<j>.png``. ``photo(key)`` gives a photo and its pooled
    map, or ``None`` if it cannot be read."""
    folder = out / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[int, int], str] = {}
    for rank, a in enumerate(sort_classes(classes)):
        if rank >= limit and not a.flagged:
            continue
        for j, c in enumerate(a.clusters):
            shown = []
            for key in c.examples:
                got = photo(key)
                if got is not None:
                    shown.append((Path(key).stem[-12:], *got))
            name = f"figures/class{a.label}_cluster{j + 1}.png"
            cluster_figure(c, shown, out / name)
            done[(a.label, j)] = name
    return done
