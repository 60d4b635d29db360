"""The screenshots of ``deepinside serve``'s page in the docs, from the page as it is now.

The server runs in this process on efficientnet_lite0 (its real ImageNet weights), started as
the browser tests start theirs (tests/test_serve_page.py); a headless Chromium (Playwright, the
system's ``/usr/bin/chromium``, never ``playwright install``) chooses a dev photo, explains it
and takes the whole page (in full colour: 256 colours would band the colour bar).

    PYTHONPATH=src python benchmarks/screenshot_serve.py        # docs/img/serve_page.png
    PYTHONPATH=src python benchmarks/screenshot_serve.py --shot signed_ig

``page``: the trimaran photo explained by the paper's gradient (README's picture);
``signed_ig``: a cat by Integrated Gradients in its sign, with the colour bar
(docs/img/serve_signed_ig.png, in docs/serve.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DEEPINSIDE_DATA", "/work/shared/data/imagenet-val-300"))
WAIT_MS = 120_000
# name: (photo, method, params to fill, the page's width)
SHOTS = {
    "page": ("ILSVRC2012_val_00002094.JPEG", "gradient", {}, 1280),
    "signed_ig": ("ILSVRC2012_val_00005362.JPEG", "integrated_gradients", {"steps": "32"}, 1200),
}


def shoot(url: str, shot: str, out: Path) -> None:
    """Drive the page at ``url`` as a person would, then save the whole page to ``out``."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    name, method, params, width = SHOTS[shot]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM",
                                                                    "/usr/bin/chromium"),
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{url}/")
            page.wait_for_function("document.querySelectorAll('#class-list option').length"
                                   " > 900")
            page.set_input_files("#photo-input", str(DATA / "images" / name))
            page.wait_for_function("document.querySelectorAll('#top5 button.bar').length"
                                   " === 5")
            page.select_option("#method-select", method)
            for key, value in params.items():
                page.fill(f"#param-{key}", value)
            page.click("#explain-btn")
            page.wait_for_function("(m) => !document.querySelector('#result-card').hidden && "
                                   "document.querySelector('#result-meta').textContent"
                                   ".startsWith(m) && !document.querySelector('#explain-btn')"
                                   ".disabled", arg=method)
            page.wait_for_function("[...document.querySelectorAll('#result-card img')]"
                                   ".every(i => !i.getAttribute('src') || i.complete)")
            page.mouse.move(0, 0)  # no hover state in the picture
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    Image.open(out).convert("RGB").save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shot", choices=sorted(SHOTS), default="page")
    ap.add_argument("--out", type=Path, help="the PNG (default docs/img/serve_<shot>.png)")
    args = ap.parse_args()
    import deepinside
    from deepinside.serve import create_app

    out = args.out or REPO / "docs" / "img" / ("serve_page.png" if args.shot == "page"
                                                 else f"serve_{args.shot}.png")
    sys.path.insert(0, str(REPO / "tests"))
    from test_serve_page import _serving  # the tests' in-process server

    clf = deepinside.load_model("efficientnet_lite0")
    with _serving(create_app(clf)) as url:
        shoot(url, args.shot, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
