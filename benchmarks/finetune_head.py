"""Example: your own 10-class head on efficientnet_lite0's ImageNet backbone, then every front
end with its class names (issue #19).

Takes the 10 classes of the dev photos (imagenet-val-300) that have the most photos, holds one
photo of each out, trains a new linear head (1280 -> 10) for about ``--seconds`` on pooled
backbone features of random crops and flips of the others, saves the whole network as a state
dict and its names as a text file, and then runs, with ``--model efficientnet_lite0 --weights
head10.safetensors --class-names names.txt``:

- ``deepinside classify`` on the held-out photos (their accuracy is printed: ten photos, so a
  coarse number);
- ``deepinside saliency --target <name>`` and ``deepinside localize``;
- the server's ``/v1/classes`` and ``/v1/explain`` (in-process), and with ``--page`` the page in
  Chromium (its class list and an explanation by name).

    python benchmarks/finetune_head.py [--seconds 60] [--out /tmp/head10] [--page]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "imagenet-val-300"


def _dataset(root: Path, n: int) -> tuple[list[int], list[dict], list[dict]]:
    """The ``n`` labels with the most photos (ties: by label) and train / held-out records."""
    records = json.loads((root / "annotations.json").read_text())
    counts = Counter(r["label"] for r in records)
    labels = sorted(counts, key=lambda c: (-counts[c], c))[:n]
    if len(labels) < n or counts[labels[-1]] < 2:
        raise SystemExit(f"need {n} classes with two photos or more in {root}")
    train, held = [], []
    for c in labels:
        mine = [r for r in records if r["label"] == c]
        held.append(mine[-1])
        train += mine[:-1]
    return labels, train, held


def _views(photo, k: int, rng: random.Random):
    """``k`` random crops (40-100% of the area) and flips of a PIL photo, as the model sees it."""
    from PIL import Image

    out = []
    for _ in range(k):
        w, h = photo.size
        s = rng.uniform(0.4, 1.0) ** 0.5
        cw, ch = max(8, int(w * s)), max(8, int(h * s))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        v = photo.crop((x0, y0, x0 + cw, y0 + ch))
        out.append(v.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else v)
    return out


def train_head(root: Path, out: Path, seconds: float, n: int = 10) -> tuple[Path, Path, list]:
    import timm
    import torch
    from safetensors.torch import save_file

    import deepinside
    from deepinside.images import open_photo, photos_to_batch

    labels, train, held = _dataset(root, n)
    lite0 = deepinside.load_model("efficientnet_lite0")
    names = [lite0.short_name(c) for c in labels]
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=n)
    state = {k: v for k, v in lite0.module.state_dict().items()
             if not k.startswith("classifier.")}
    net.load_state_dict(state, strict=False)  # the ImageNet backbone; the head is new
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    rng = random.Random(0)
    photos = [(open_photo(root / r["file"]), labels.index(r["label"])) for r in train]
    feats, ys = [], []
    t0 = time.perf_counter()
    with torch.no_grad():  # pooled features of random views, until half the time is spent
        while time.perf_counter() - t0 < seconds / 2 or not feats:
            for photo, y in photos:
                x = photos_to_batch(_views(photo, 4, rng), lite0.preprocessing, crop=True)
                feats.append(net.forward_head(net.forward_features(x), pre_logits=True))
                ys += [y] * len(x)
    x, y = torch.cat(feats), torch.tensor(ys)
    head = torch.nn.Linear(x.shape[1], n)
    opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-2)
    steps, t1 = 0, time.perf_counter()
    while time.perf_counter() - t1 < seconds / 2 or steps < 100:
        idx = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(steps))
        loss = torch.nn.functional.cross_entropy(head(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    net.classifier.load_state_dict(head.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    weights, names_file = out / "head10.safetensors", out / "names.txt"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    names_file.write_text("\n".join(names) + "\n")
    print(f"trained a {n}-class head on {len(x)} views of {len(photos)} photos: "
          f"{time.perf_counter() - t0:.0f} s ({steps} steps, last loss {float(loss.detach()):.3f})")
    return weights, names_file, [(root / r["file"], names[labels.index(r["label"])])
                                 for r in held]


def _cli(*args) -> tuple[int, str]:
    from deepinside.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main([str(a) for a in args])
    return rc, buf.getvalue()


def front_ends(weights: Path, names_file: Path, held: list, out: Path, page: bool) -> None:
    model = ["--model", "efficientnet_lite0", "--weights", weights, "--class-names", names_file]
    names = names_file.read_text().split("\n")[:-1]
    rc, text = _cli("classify", *[p for p, _ in held], *model, "--json")
    top = [r["top"][0]["name"] for r in json.loads(text)]
    right = sum(t == want for t, (_, want) in zip(top, held))
    assert rc == 0 and set(top) <= set(names), (rc, top)
    print(f"classify: {right}/{len(held)} held-out photos right (one per class); "
          f"answers: {', '.join(top)}")
    path, want = held[0]
    rc, _ = _cli("saliency", path, *model, "--target", want, "--out", out / "saliency",
                 "--overwrite")
    assert rc == 0 and (out / "saliency" / f"{path.stem}_overlay.png").is_file()
    print(f"saliency --target {want!r}: {out / 'saliency'}")
    rc, text = _cli("localize", path, *model, "--json", "--out", out / "localize", "--overwrite")
    loc = json.loads(text)[0]["localizations"][0]
    assert rc == 0 and loc["name"] in names
    print(f"localize: {loc['name']} box {[round(v) for v in loc['box']]}")

    from fastapi.testclient import TestClient

    import deepinside
    from deepinside.serve import create_app

    clf = deepinside.load_model("efficientnet_lite0", weights=weights, class_names=names_file)
    client = TestClient(create_app(clf))
    assert client.get("/v1/classes").json()["classes"] == names
    r = client.post("/v1/explain", files={"image": (path.name, path.read_bytes())},
                    data={"target": want})
    assert r.status_code == 200 and r.json()["target"]["name"] == want, r.text
    print(f"serve: /v1/classes lists the {len(names)} names; /v1/explain target "
          f"{want!r} -> {r.json()['target']}, top-1 {r.json()['top'][0]['name']!r}")
    if page:
        _page(clf, path, want, names)


def _page(clf, path: Path, want: str, names: list[str]) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from playwright.sync_api import sync_playwright
    from test_serve_page import _serving  # the tests' in-process server

    from deepinside.serve import create_app

    with _serving(create_app(clf)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(f"{url}/")
        page.wait_for_function(f"document.querySelectorAll('#class-list option').length"
                               f" === {len(names)}")
        shown = page.eval_on_selector_all("#class-list option", "els => els.map(e => e.value)")
        page.set_input_files("#photo-input", str(path))
        page.wait_for_function("document.querySelectorAll('#top5 button.bar').length === 5")
        bars = page.locator("#top5 .bar-name").all_inner_texts()
        page.fill("#class-input", want)
        page.click("#explain-btn")
        page.wait_for_function("(w) => document.querySelector('#result-meta').textContent"
                               ".includes(w)", arg=want)
        browser.close()
    assert shown == names and set(bars) <= set(names)
    print(f"page: class list = the {len(shown)} names, top-5 bars {bars}, explained {want!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("DEEPINSIDE_DATA", str(DATA)))
    ap.add_argument("--out", default="/tmp/deepinside-head10")
    ap.add_argument("--seconds", type=float, default=60.0, help="training time (default 60)")
    ap.add_argument("--page", action="store_true", help="also drive the page in Chromium")
    args = ap.parse_args()
    out = Path(args.out)
    weights, names_file, held = train_head(Path(args.data), out, args.seconds)
    front_ends(weights, names_file, held, out, args.page)


if __name__ == "__main__":
    main()
