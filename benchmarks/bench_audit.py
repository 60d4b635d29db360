"""``deepinside audit`` on the dev photos: a planted shortcut found end to end, and the scale.

Part 1 (``--part planted``): the planted shortcut of :mod:`deepinside.audit.planted` on all 300
dev photos: a head on lite0's frozen trunk, trained on half of them where every photo of one
group ("bird, fish or reptile") carries a stamp; does the stamp flip the other groups' photos,
and does the audit of the other half find it (that class first by suspicion, flagged, its main
cluster's peak at the stamp, erasing the stamp hurts more than erasing the object), while the
same head trained without stamps is not flagged? Writes both audits' pages.

Part 2 (``--part scale``): lite0 (ImageNet) audited with Grad-CAM on N of the 300 photos, each
N in a fresh process: wall and CPU time, the maps' share of it, and peak memory (ru_maxrss,
after loading the model and at the end) against N; then an audit killed (SIGKILL) half-way and
resumed: how many photos the resumed run computed, and whether the lines written before the kill
are kept as they were.

    PYTHONPATH=src python benchmarks/bench_audit.py --part planted --out bench-audit \
        [--screenshot docs/img/audit_page.png]
    PYTHONPATH=src python benchmarks/bench_audit.py --part scale --out bench-audit
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("DEEPINSIDE_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data" / "imagenet-val-300"))
if not (DATA / "annotations.json").exists():
    DATA = Path("/work/shared/data/imagenet-val-300")


def planted(out: Path, per_group: int | None) -> dict:
    import torch

    import deepinside
    from deepinside.audit import planted as P
    from deepinside.evaluate import read_dataset
    from deepinside.images import open_photo

    torch.manual_seed(0)
    t0 = time.perf_counter()
    lite = deepinside.load_model("efficientnet_lite0")
    stamped, clean, data = P.plant(DATA, out / "data", lite, per_group=per_group)
    t_plant = time.perf_counter() - t0
    recs, _ = read_dataset(data.audit_all_stamped)
    others = [open_photo(r.path) for r in recs if r.label != data.stamped]
    result = {"photos_audited": len(read_dataset(data.audit)[0]), "plant_seconds": t_plant,
              "flip_stamped_model": P.flip_rate(stamped, others, data.stamped),
              "flip_clean_model": P.flip_rate(clean, others, data.stamped)}
    x0, y0, x1, y1 = P.stamp_box(227, 227)
    result["stamp_box"] = [x0 / 227, y0 / 227, x1 / 227, y1 / 227]
    for name, model in (("stamped", stamped), ("clean", clean)):
        t = time.perf_counter()
        audit = deepinside.audit(model, data.audit, out / f"audit-{name}", show_progress=False)
        result[name] = {"seconds": time.perf_counter() - t, "classes": audit["classes"]}
    return result


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1100, 1500)) -> None:
    """The top of an audit page as a small PNG (Playwright and the system's Chromium; 256
    colours), for the README."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                    "/usr/bin/chromium"))
        try:
            tab = browser.new_page(viewport={"width": size[0], "height": size[1]})
            tab.goto(page.resolve().as_uri())
            tab.screenshot(path=str(png))
        finally:
            browser.close()
    Image.open(png).convert("RGB").quantize(256).save(png, optimize=True)


def report_planted(r: dict) -> None:
    s = r["stamped"]["classes"]
    top = max(s, key=lambda c: c["suspicion"])
    print(f"{r['photos_audited']} photos audited (the held-out half); planting took "
          f"{r['plant_seconds']:.0f} s")
    print(f"a stamp on another group's photo makes it group 0: {r['flip_stamped_model']:.0%} "
          f"with the stamped model, {r['flip_clean_model']:.0%} with the clean one")
    for name in ("stamped", "clean"):
        print(f"\n{name} model ({r[name]['seconds']:.0f} s):")
        print(f"  {'class':24s} {'n':>3s} {'acc':>5s} {'susp':>6s} flag  main cluster: share, "
              "peak, erase region / object drop")
        for c in sorted(r[name]["classes"], key=lambda c: -c["suspicion"]):
            m = c["clusters"][0]
            print(f"  {c['name']:24s} {c['n']:3d} {c['accuracy']:5.2f} {c['suspicion']:6.3f} "
                  f"{'yes ' if c['flagged'] else 'no  '} {m['share']:.2f}, ({m['peak'][0]:.2f}, "
                  f"{m['peak'][1]:.2f}), {m['erase_region_drop']:+.2f} / "
                  f"{m['erase_object_drop']:+.2f}")
    print(f"\nstamped model: most suspicious class {top['name']!r}, flagged {top['flagged']}")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lines(path: Path) -> list[str]:
    """The complete lines of a ``per_image.jsonl`` (a torn last line left out)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.splitlines()[:text.count("\n")]


def one_run(out: Path, limit: int) -> None:
    """A child: audit the first ``limit`` dev photos with lite0 and Grad-CAM; print JSON: wall
    and CPU seconds, the maps' seconds (the per-photo stage, summed over the lines this run
    wrote), the peak RSS after loading the model and at the end."""
    import torch

    import deepinside

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = deepinside.load_model("efficientnet_lite0")
    rss_model = _rss_mb()
    lines = out / "per_image.jsonl"
    before = len(_lines(lines))
    t, cpu = time.perf_counter(), time.process_time()
    audit = deepinside.audit(model, DATA / "annotations.json", out, limit=limit,
                             show_progress=False)
    seconds = time.perf_counter() - t
    new = [json.loads(x) for x in _lines(lines)[before:]]
    print(json.dumps({"limit": limit, "seconds": round(seconds, 1),
                      "cpu_seconds": round(time.process_time() - cpu, 1),
                      "per_photo_seconds": round(seconds / limit, 3),
                      "computed": len(new),
                      "map_seconds": round(sum(r.get("seconds", 0.0) for r in new), 1),
                      "maxrss_mb_model_loaded": round(rss_model), "maxrss_mb": round(_rss_mb()),
                      "classes": len(audit["classes"]),
                      "flagged": sum(c["flagged"] for c in audit["classes"])}))


def child(out: Path, limit: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", str(limit), "--out", str(out)],
                            stdout=subprocess.PIPE, text=True)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def scale(out: Path, sizes: list[int], resume_size: int) -> None:
    for n in sizes:
        p = child(out / f"scale-{n}", n)
        got = json.loads(p.communicate()[0].strip().splitlines()[-1])
        print(json.dumps({**got, "load_after": load()}), flush=True)
    # kill (SIGKILL) half-way, then resume
    run = out / "resume"
    lines = run / "per_image.jsonl"
    p = child(run, resume_size)
    while len(_lines(lines)) < resume_size // 2 and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    kept = _lines(lines)
    p = child(run, resume_size)
    got = json.loads(p.communicate()[0].strip().splitlines()[-1])
    after = _lines(lines)
    print(json.dumps({"killed_after_lines": len(kept), "lines_after_resume": len(after),
                      "written_lines_unchanged": after[:len(kept)] == kept,
                      "distinct_photos": len({json.loads(x)["key"] for x in after}),
                      **got, "load_after": load()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("planted", "scale"), default="planted")
    ap.add_argument("--out", type=Path, default=Path("bench-audit"))
    ap.add_argument("--per-group", type=int, default=None,
                    help="planted: at most this many photos of each group (default all)")
    ap.add_argument("--sizes", default="50,100,200,300", help="scale: audit sizes")
    ap.add_argument("--resume-size", type=int, default=300,
                    help="scale: photos of the audit killed half-way and resumed")
    ap.add_argument("--screenshot", type=Path, default=None,
                    help="planted: save the top of the stamped audit's page to this PNG")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        one_run(a.out, a.child)
    elif a.part == "planted":
        r = planted(a.out, a.per_group)
        (a.out / "planted.json").write_text(json.dumps(r, indent=1))
        report_planted(r)
        if a.screenshot is not None:
            screenshot(a.out / "audit-stamped" / "index.html", a.screenshot)
    else:
        scale(a.out, [int(s) for s in a.sizes.split(",")], a.resume_size)


if __name__ == "__main__":
    main()
