"""The screenshots of ``deepinside paper``'s report in the README, from a report on disk.

A headless Chromium (Playwright, the system's ``/usr/bin/chromium``, never ``playwright
install``) opens the report's ``index.html`` from disk (it needs no server and no CDN) and
saves the top of the page at desktop width (1280 x 1000) and at phone width (390 x 844, the
viewport of a common phone).

    PYTHONPATH=src python benchmarks/screenshot_report.py docs/report
    # docs/img/report_desktop.png, docs/img/report_phone.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# name: (viewport width, height, device scale)
SHOTS = {"desktop": (1280, 1000, 1), "phone": (390, 844, 1)}


def shoot(report: Path, out_dir: Path) -> list[Path]:
    """Save ``report_<name>.png`` for each of :data:`SHOTS` into ``out_dir``."""
    from playwright.sync_api import sync_playwright

    index = (report / "index.html").resolve()
    if not index.is_file():
        raise SystemExit(f"no report at {report}: {index} is missing")
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                    "/usr/bin/chromium"),
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            for name, (width, height, scale) in SHOTS.items():
                page = browser.new_page(viewport={"width": width, "height": height},
                                        device_scale_factor=scale)
                page.goto(index.as_uri())
                page.wait_for_load_state("load")
                page.wait_for_function("[...document.images].every((i) => i.complete)")
                path = out_dir / f"report_{name}.png"
                page.screenshot(path=str(path))
                written.append(path)
                page.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", nargs="?", default=str(REPO / "docs" / "report"),
                    help="the report's folder (holding index.html)")
    ap.add_argument("--out", default=str(REPO / "docs" / "img"), help="where the PNGs go")
    args = ap.parse_args(argv)
    for path in shoot(Path(args.report), Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
