"""``deepinside serve --model hf:DIR`` (issue #19): /v1/explain answers with the model's own
label names, and the page shows them (a real browser)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from browser import chromium
from hf_models import LABELS, save
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("transformers")
from fastapi.testclient import TestClient  # noqa: E402

from deepinside.cli import build_parser  # noqa: E402
from deepinside.cli.common import model_from_args  # noqa: E402
from deepinside.serve import create_app  # noqa: E402

NAMES = list(LABELS.values())


@pytest.fixture(scope="module")
def hf_clf(tmp_path_factory):
    """The classifier ``deepinside serve --model hf:DIR`` serves (the command's own options)."""
    folder = save("vit", tmp_path_factory.mktemp("hf") / "vit")
    args = build_parser().parse_args(["serve", "--model", f"hf:{folder}", "--device", "cpu"])
    return model_from_args(args)


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory) -> bytes:
    a = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def test_explain_answers_with_the_models_own_labels(hf_clf, photo_png):
    client = TestClient(create_app(hf_clf), base_url="http://localhost")
    assert client.get("/v1/classes").json()["classes"] == NAMES
    r = client.post("/v1/explain", files={"image": ("a.png", photo_png)},
                    data={"method": "gradient", "target": "dog"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"] == {"class": 1, "name": "dog"} and body["model"] == hf_clf.name
    assert {t["name"] for t in body["top"]} == set(NAMES)
    r = client.post("/v1/explain", files={"image": ("a.png", photo_png)},
                    data={"method": "gradcam", "target": "top2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [body["target"]["name"], body["more"][0]["name"]] == [
        t["name"] for t in body["top"][:2]]
    r = client.post("/v1/explain", files={"image": ("a.png", photo_png)},
                    data={"target": "cat, bird"})
    assert r.status_code == 200 and r.json()["target"]["classes"] == [0, 2]
    r = client.post("/v1/explain", files={"image": ("a.png", photo_png)},
                    data={"target": "tabby"})
    assert r.status_code == 422 and "unknown class 'tabby'" in r.json()["detail"]


@pytest.mark.slow
def test_the_page_shows_the_models_own_names(hf_clf, tmp_path, photo_png):
    from test_serve_page import WAIT_MS, _serving, _watch

    path = tmp_path / "photo.png"
    path.write_bytes(photo_png)
    errors: list[str] = []
    with _serving(create_app(hf_clf)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _watch(page, errors)
        page.goto(f"{url}/", timeout=WAIT_MS)
        page.wait_for_function("document.querySelectorAll('#class-list option').length === 3",
                               timeout=WAIT_MS)
        options = page.eval_on_selector_all("#class-list option", "els => els.map(e => e.value)")
        assert options == NAMES
        page.set_input_files("#photo-input", str(path), timeout=WAIT_MS)
        page.wait_for_function("document.querySelectorAll('#top5 button.bar').length === 3",
                               timeout=WAIT_MS)
        bars = page.locator("#top5 .bar-name").all_inner_texts()
        assert sorted(bars) == sorted(NAMES)
        page.fill("#class-input", "bird")
        page.click("#explain-btn", timeout=WAIT_MS)
        page.wait_for_function(
            "() => { const c = document.querySelector('#result-card'); return c && !c.hidden &&"
            " document.querySelector('#result-meta').textContent.includes('bird'); }",
            timeout=WAIT_MS)
    assert not errors, errors
