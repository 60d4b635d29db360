"""``report.json`` -> one self-contained HTML page (inline CSS, figures beside it, no CDN).

The page machinery (:data:`CSS`, :func:`table`, :func:`img`, :func:`pct`, :func:`num`,
:func:`page_html`) is shared with the audit's page (:mod:`deepinside.audit.page`).
"""

from __future__ import annotations

from html import escape

__all__ = ["CSS", "img", "num", "page_html", "pct", "render_page", "table"]

CSS = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
main{max-width:980px;margin:0 auto;padding:1.2rem}
h1{font-size:1.7rem;margin:.4rem 0}h2{font-size:1.3rem;margin-top:2.2rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
img{max-width:100%;height:auto;border:1px solid #e3e3e3;background:#fff}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f0f0}
.claim{background:#eef4ff;border-left:4px solid #4a7bd0;padding:.5rem .8rem}
.measured{background:#f1f9ef;border-left:4px solid #4a9d3b;padding:.5rem .8rem}
.note{color:#666;font-size:.9rem}.quick{background:#fff4d6;padding:.5rem .8rem;
border:1px solid #e8c55a}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem}dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
"""


def _pct(v: float) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}%"


def _num(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _img(src: str, alt: str) -> str:
    return f"<p><img src=\"{escape(src)}\" alt=\"{escape(alt)}\"></p>"


def _header(r: dict) -> str:
    v, m = r["versions"], r["machine"]
    acc = r.get("accuracy")
    accuracy = (f"top-1 {_pct(acc['top1'])}, top-5 {_pct(acc['top5'])} (whole photo resized "
                "to the input size)" if acc else "not measured (no labelled dataset)")
    quick = ('<p class="quick"><b>Quick report</b> (<code>--quick</code>): 4 classes, fewer '
             "ascent steps, at most 50 photos for the tables and 3 methods on 4 photos; the "
             "numbers are indicative. Run without <code>--quick</code> for the full report.</p>"
             if r["quick"] else "")
    return f"""<h1>{escape(r["title"])}</h1>
<p>{escape(r["paper"].split(", http")[0])}, <a href="https://arxiv.org/abs/1312.6034">
arXiv 1312.6034</a>, each figure and table recomputed by <code>deepinside paper</code>.</p>
{quick}<dl><dt>Model</dt><dd>{escape(r["model"])}</dd>
<dt>Dataset</dt><dd>{escape(str(r["dataset"]))} ({r["n_photos"]} photos)</dd>
<dt>Accuracy</dt><dd>{accuracy}</dd>
<dt>Versions</dt><dd>{escape(", ".join(f"{k} {x}" for k, x in v.items()))}</dd>
<dt>Machine</dt><dd>{escape(m["system"])}, {m["cpus"]} CPUs ({escape(str(m["cpu"]))}),
{escape(m["cuda"] or "no GPU")}</dd>
<dt>Run time</dt><dd>{r["seconds"]:.0f} s (sections reused from an earlier run count
their original time below)</dd></dl>"""


def _class_models(s: dict) -> str:
    names = [c["name"] for c in s["classes"]]
    parts = ["<h2>1. Class models (paper figure 1)</h2>",
             '<p class="claim"><b>The paper</b>: gradient ascent on the input from the zero '
             "(mean) image, maximising the class score S<sub>c</sub>(I) &minus; &lambda;"
             "||I||<sup>2</sup> with the weights fixed, shows the notion of the class the "
             "network has learnt.</p>"]
    for mode, label in (("paper", "The paper's method (zero image, L2, the logit, plain "
                                  "ascent)"),
                        ("lucid", "Recognisable mode (decorrelated Fourier parametrisation, "
                                  "random transforms, Adam)")):
        e = s["modes"][mode]
        parts.append(f"<h3>{escape(label)}: {e['steps']} steps, {e['seconds']:.0f} s</h3>")
        parts.append(_img(e["figure"], f"class models, {mode} mode"))
        models = list(e["probability"])
        rows = [[escape(n)] + [_num(e["probability"][m][i], 2) for m in models]
                for i, n in enumerate(names)]
        parts.append(_table(["class"] + [f"p under {m}" for m in models], rows))
        if "evolution" in e:
            ev = e["evolution"]
            parts.append(f"<p>The evolution of <b>{escape(ev['class'])}</b> after steps "
                         f"{', '.join(map(str, ev['steps']))}:</p>")
            parts.append(_img(ev["figure"], "evolution of one class model"))
    p = s["modes"]["paper"]["probability"]
    lu = s["modes"]["lucid"]["probability"]
    own = next(iter(p))
    judges = [m for m in p if m != own]

    def mean(d: dict, m: str) -> float:
        return sum(d[m]) / len(d[m])

    judged = "; ".join(f"under {m}: {_num(mean(p, m), 2)} and {_num(mean(lu, m), 2)}"
                       for m in judges) or "no other model installed to judge them"
    parts.append(
        f'<p class="measured"><b>Measured here</b>: the generating model gives its paper-mode '
        f"images a mean probability of {_num(mean(p, own), 2)} and the recognisable ones "
        f"{_num(mean(lu, own), 2)}; other models ({judged}, paper and recognisable mode). "
        "<b>Why they differ</b>: the paper's images are high-frequency patterns that exploit "
        "one network; they rarely transfer, while the regularised images carry object-like "
        "structure that other networks recognise too.</p>")
    return "\n".join(parts)


def _saliency(s: dict) -> str:
    return "\n".join([
        "<h2>2. Image-specific class saliency (paper figure 2)</h2>",
        '<p class="claim"><b>The paper</b>: the magnitude of the derivative of the class score '
        "with respect to the image, max over colour channels, computed by one back-propagation "
        "pass, highlights the pixels of the object.</p>",
        _img(s["figure"], "photos and their saliency maps"),
        _table(["photo", "top-1 class", "probability"],
               [[escape(i["photo"]), escape(i["name"]), _num(i["prob"], 2)]
                for i in s["photos"]]),
        '<p class="measured"><b>Measured here</b>: the maps of this model, computed on the whole '
        "photo resized to its input, with the class it finds most likely; how well they point "
        "at the objects is measured in sections 4 and 5. The paper's network was an 8-layer "
        "ConvNet at 227 pixels, so its maps were coarser.</p>"])


def _deconvnet(s: dict) -> str:
    m = s["model"]
    ex = s["conv_maxpool_network"]
    rows = [[escape(k.replace("_", " ")), _num(v["mean"]), _num(v["min"]), _num(v["max"])]
            for k, v in m.items()]
    return "\n".join([
        "<h2>3. Deconvnet and the gradient (paper section 4)</h2>",
        '<p class="claim"><b>The paper</b>: the deconvnet reconstruction equals the gradient '
        "of the class score through convolutions and max pooling (with the forward pass's "
        "switches); the two differ only at rectifiers, where the deconvnet passes the signal "
        "where the signal is positive and the gradient where the forward input was.</p>",
        f"<p>Spearman rank correlation of the maps on {s['n_photos']} photos (this model):</p>",
        _table(["pair", "mean", "min", "max"], rows),
        f'<p class="measured"><b>Measured here</b>: on a network of convolutions and max '
        f"pooling without rectifiers, the largest difference between the deconvnet map and "
        f"the gradient is {ex['without_relu']['max_abs_difference']:.3g} (exactly equal, as "
        f"derived); with ReLUs after the convolutions it is "
        f"{_pct(ex['with_relu']['relative'])} of the gradient's maximum. On this model, whose "
        "rectifiers make the two differ, the deconvnet map correlates "
        f"{_num(m['deconvnet_vs_gradient']['mean'], 2)} with the gradient and "
        f"{_num(m['deconvnet_vs_guided_backprop']['mean'], 2)} with guided backpropagation, "
        "which applies both rectifier masks.</p>"])


def _localization(s: dict) -> str:
    parts = ["<h2>4. Weakly supervised localisation (paper figure 3, section 6)</h2>",
             '<p class="claim"><b>The paper</b>: GrabCut seeded by the saliency map (foreground '
             "above its 95% quantile, background below its 30% quantile), the largest "
             "connected component's box: 46.4% top-5 localisation error on ILSVRC-2013.</p>",
             _img(s["figure"], "photo, map, GrabCut foreground and box")]
    if "table" not in s:
        parts.append(f'<p class="note">{escape(s["skipped"])}.</p>')
        return "\n".join(parts)
    t = s["table"]
    rows = [["the paper (ILSVRC-2013, top-5 classes)", "", "", _pct(s["paper_top5_loc_err"]),
             ""]]
    labels = {"paper": "the paper's recipe, here", "default": "deepinside's default recipe"}
    for key in ("paper", "default"):
        r = t[key]
        rows.append([labels[key], _pct(r["gt_known_loc_acc"]), _pct(r["top1_loc_acc"]),
                     _pct(r["top5_loc_err"]), _pct(r["pointing_game"])])
    b = t["paper"]["baselines"]
    for key, label in (("whole_image", "whole-image box"), ("centred_box", "centred box of "
                                                                          "the mean true size")):
        rows.append([label, _pct(b[key]["gt_known_loc_acc"]), _pct(b[key]["top1_loc_acc"]),
                     _pct(b[key]["top5_loc_err"]), ""])
    parts.append(_table(["", "GT-known loc", "top-1 loc", "top-5 loc error", "pointing game"],
                        rows))
    parts.append(
        f'<p class="measured"><b>Measured here</b> ({t["paper"]["n_images"]} photos, the box '
        "of the true class; the same numbers as <code>deepinside evaluate localization</code>):"
        f" the paper's recipe reaches a top-5 error of {_pct(t['paper']['top5_loc_err'])}, "
        f"the default {_pct(t['default']['top5_loc_err'])}. <b>Why they differ</b>: the paper "
        "localised each of the top-5 classes on ILSVRC-2013 test photos with its own network; "
        "here one box per photo is scored for the true class, on a different network and "
        "photos, and a whole-photo box already scores "
        f"{_pct(b['whole_image']['top5_loc_err'])} on these photos, whose objects are often "
        "large.</p>")
    return "\n".join(parts)


MEANING = {
    "pointing": "the map's peak lies within 15 px of a true box (higher is better)",
    "gt_known_loc": "the thresholded map's box has IoU >= 0.5 with a true box",
    "deletion_auc": "class probability as the most salient pixels are removed (lower is "
                    "better)",
    "insertion_auc": "class probability as they are revealed on a blurred photo (higher is "
                     "better)",
    "randomization_corr": "rank correlation with the map of the randomised model: a map that "
                          "explains the model should change (lower is better)",
}


def _methods(s: dict) -> str:
    parts = ["<h2>5. Beyond the paper: which maps are faithful</h2>"]
    if "rows" not in s:
        parts.append(f'<p class="note">{escape(s["skipped"])}.</p>')
        return "\n".join(parts)
    rows = [[escape(r["method"]), _pct(r["pointing"]), _pct(r["gt_known_loc"]),
             _num(r["deletion_auc"]), _num(r["insertion_auc"]), _num(r["randomization_corr"]),
             f"{r['ms_per_image']:.0f}"] for r in s["rows"]]
    parts.append(f"<p>{s['n_photos']} photos, every map for the true class "
                 "(<code>deepinside evaluate compare</code>):</p>")
    parts.append(_table(["method", "pointing game", "GT-known loc", "deletion AUC",
                         "insertion AUC", "randomisation corr", "ms / image"], rows))
    parts.append("<ul>" + "".join(f"<li><b>{escape(k.replace('_', ' '))}</b>: {escape(v)}</li>"
                                  for k, v in MEANING.items()) + "</ul>")
    return "\n".join(parts)


def _metrics(s: dict) -> str:
    parts = ["<h2>6. Beyond the paper: methods scored by metrics, with intervals</h2>"]
    if "rows" not in s:
        parts.append(f'<p class="note">{escape(s["skipped"])}.</p>')
        return "\n".join(parts)
    methods = s["methods"]
    parts.append(
        f"<p>{s['n_photos']} photos, every map for the true class; each cell is the mean over "
        "the photos &plusmn; the half-width of its 95% interval (Student's t); in bold, a "
        "method significantly better than every other on that metric (paired t-tests, Holm's "
        "correction over the pairs of a metric, 5%). The run: <code>deepinside evaluate "
        f"compare --metrics</code>, its lines in <code>{escape(s['run'])}</code>.</p>")
    rows, pairs = [], []
    for row in s["rows"]:
        name = row["metric"]
        wins = {m: sum(p["better"] == m for p in row["significant"]) for m in methods}
        cells = []
        for m in methods:
            c = row["methods"][m]
            text = "n/a" if c["mean"] is None else _num(c["mean"]) + (
                f" &plusmn; {_num(c['ci95'])}" if c["ci95"] is not None else "")
            best = len(methods) > 1 and wins[m] == len(methods) - 1
            cells.append(f"<b>{text}</b>" if best else text)
        arrow = "higher is better" if row["higher_is_better"] else "lower is better"
        rows.append([f"{escape(name)} <small>({arrow})</small>", *cells])
        pairs += [f"{escape(name)}: {escape(p['better'])} better than {escape(p['worse'])} "
                  f"(p = {p['p']:.2g})" for p in row["significant"]]
    ms = s.get("map_ms", {})
    rows.append(["map, ms / photo", *[_num(ms.get(m), 0) for m in methods]])
    parts.append(_table(["metric", *methods], rows))
    parts.append("<p>Significant differences: " + ("; ".join(pairs) if pairs else
                 f"none on these {s['n_photos']} photos") + ".</p>")
    parts.append('<p class="note">What each metric measures, its formula and its paper: '
                 "docs/metrics.md.</p>")
    return "\n".join(parts)


def page_html(title: str, body: str, footer: str, css: str = "") -> str:
    """A whole page: ``title`` (text), ``body`` and ``footer`` (HTML), the shared :data:`CSS`
    and ``css`` inline (nothing fetched from elsewhere)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}{css}</style>
</head>
<body>
<main>
{body}
<p class="note">{footer}</p>
</main>
</body>
</html>
"""


pct, num, table, img = _pct, _num, _table, _img


def render_page(report: dict) -> str:
    """The report as one HTML page."""
    s = report["sections"]
    body = "\n".join([_header(report), _class_models(s["class_models"]),
                      _saliency(s["saliency"]), _deconvnet(s["deconvnet"]),
                      _localization(s["localization"]), _methods(s["methods"]),
                      _metrics(s["metrics"])])
    return page_html(f"{report['title']}: {report['model']}", body,
                     f"Generated by deepinside {escape(report['versions']['deepinside'])}; every"
                     '\nnumber on this page is in <a href="report.json">report.json</a>.')
