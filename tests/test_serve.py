"""``deepinside serve``'s HTTP API (deepinside.serve): every endpoint and every bad request."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models import tiny_classifier
from PIL import Image
from procs import ctrl_c_stops

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

import deepinside  # noqa: E402
from deepinside.serve import Limits, create_app  # noqa: E402


def png_bytes(seed: int = 0, size=(40, 50), fmt: str = "PNG") -> bytes:
    a = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt)
    return buf.getvalue()


def decode_map(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64)))).astype(np.float64) / 65535


@pytest.fixture(scope="module")
def clf():
    return tiny_classifier()


@pytest.fixture(scope="module")
def client(clf):
    return TestClient(create_app(clf), base_url="http://localhost")


def problem(r, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and words in body["detail"]


def test_health_models_classes_methods(client, clf):
    assert client.get("/healthz").json() == {"status": "ok", "model": "tiny"}
    assert client.get("/v1/models").json()["models"] == [
        {"name": "tiny", "classes": 6, "input_size": [32, 32]}]
    assert client.get("/v1/classes").json()["classes"][:2] == ["class0", "class1"]
    ms = {m["name"]: m for m in client.get("/v1/methods").json()["methods"]}
    assert set(ms) == set(deepinside.list_methods())
    assert ms["smoothgrad"]["params"]["samples"] == {"type": "int", "default": 16, "min": 1,
                                                     "max": 64}
    assert "fast" not in ms["gradient"]["params"]
    for m in ms.values():  # no callback offered; every count that sets the work is bounded
        assert "progress" not in m["params"], m["name"]
        for name in ("masks", "iterations", "steps", "samples", "batch_size"):
            if name in m["params"]:
                assert m["params"][name]["max"] <= 8000, (m["name"], name)
    problem(client.post("/v1/explain", files={"image": ("a.png", png_bytes())},
                        data={"method": "rise", "params": '{"masks": 100000}'}), 422, "masks")
    schema = client.get("/openapi.json").json()
    assert {"/v1/explain", "/v1/classify", "/v1/models/{name}:explain", "/v1/classmodel",
            "/v1/jobs/{job_id}/events"} <= set(schema["paths"])


def test_classify_is_the_command_line_s_answer(client, clf, tmp_path, capsys):
    data = png_bytes(1)
    (tmp_path / "a.png").write_bytes(data)
    r = client.post("/v1/classify", files={"image": ("a.png", data)}, data={"top_k": "3"})
    assert r.status_code == 200
    x = deepinside.photos_to_batch([Image.open(tmp_path / "a.png").convert("RGB")],
                                   clf.preprocessing, crop=True)
    want = clf.top_classes(deepinside.forward_logits(clf, x), 3)[0]
    got = r.json()["top"]
    assert [t["class"] for t in got] == [t["class"] for t in want]
    assert np.allclose([t["prob"] for t in got], [t["prob"] for t in want], atol=1e-6)


def test_explain_returns_the_library_s_map_at_the_photo_s_size(client, clf):
    data = png_bytes(2, size=(37, 61))
    r = client.post("/v1/explain", files={"image": ("a.png", data)},
                    data={"method": "gradcam", "target": "class3", "localize": "true",
                          "values": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"] == {"class": 3, "name": "class3"} and body["method"] == "gradcam"
    assert (body["map"]["width"], body["map"]["height"]) == (61, 37)
    got = decode_map(body["map"]["png"])
    photo = Image.open(io.BytesIO(data)).convert("RGB")
    [want], _, _ = deepinside.photo_maps(clf, [photo], [3], method="gradcam")
    assert got.shape == want.shape == (37, 61)
    np.testing.assert_allclose(got, want / want.max(), atol=2 / 65535)
    values = np.frombuffer(base64.b64decode(body["map"]["f32"]), "<f4").reshape(37, 61)
    np.testing.assert_allclose(values, want, rtol=1e-6, atol=1e-6 * float(want.max()))
    x0, y0, x1, y1 = body["box"]
    assert 0 <= x0 < x1 <= 61 and 0 <= y0 < y1 <= 37
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert overlay.mode == "RGB" and overlay.size == (61, 37)
    assert set(body["timing_ms"]) == {"map", "render"}


def test_explain_draws_a_signed_map_in_the_sign_asked_with_its_scale(client, clf):
    from deepinside.render import signed_overlay

    data = png_bytes(4, size=(33, 41))
    photo = Image.open(io.BytesIO(data)).convert("RGB")
    [want], _, _ = deepinside.photo_maps(clf, [photo], [2], method="integrated_gradients",
                                         steps=8, reduce="sum")
    assert want.min() < 0 < want.max()  # a map with both signs
    for sign in ("all", "positive", "negative", "absolute", None):
        form = {"method": "integrated_gradients", "target": "2", "values": "true",
                "params": json.dumps({"steps": 8})}
        if sign is not None:
            form["sign"] = sign
        r = client.post("/v1/explain", files={"image": ("a.png", data)}, data=form)
        assert r.status_code == 200, r.text
        body, sign = r.json(), sign or "all"  # a signed method's default: all
        scale = body["scale"]
        values = np.frombuffer(base64.b64decode(body["map"]["f32"]), "<f4").reshape(33, 41)
        # the sign is kept (reduce=sum, as the CLI's --sign) unless drawn as magnitudes
        assert body["params"] == ({"steps": 8} if sign == "absolute" else
                                  {"steps": 8, "reduce": "sum"})
        if sign != "absolute":
            np.testing.assert_allclose(values, want, atol=1e-5 * np.abs(want).max())
        part = {"all": values, "positive": np.clip(values, 0, None),
                "negative": np.clip(-values, 0, None), "absolute": np.abs(values)}[sign]
        limit = np.percentile(np.abs(part), 99.5)
        assert scale["sign"] == sign and scale["high"] == pytest.approx(limit, rel=1e-5)
        assert scale["low"] == (-scale["high"] if sign == "all" else 0.0)
        assert scale["max_abs"] == pytest.approx(np.abs(part).max(), rel=1e-5)
        assert scale["cmap"] == {"all": "RdBu_r", "absolute": "jet"}.get(sign, "inferno")
        bar = np.asarray(Image.open(io.BytesIO(base64.b64decode(scale["bar_png"]))))
        assert bar.shape == (256, 1, 3)
        if sign == "all":  # red at the top (for the class), blue at the bottom, white between
            top, bottom, mid = bar[0, 0].astype(int), bar[-1, 0].astype(int), bar[128, 0]
            assert top[0] > top[2] + 60 and bottom[2] > bottom[0] + 60 and mid.min() > 200
            overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["overlay_png"]))))
            np.testing.assert_array_equal(overlay, signed_overlay(photo, values, "all",
                                                                   scale["high"]))
        shown = decode_map(body["map"]["png"])  # a part's magnitude, scaled to its maximum
        shown_part = np.clip(values, 0, None) if sign == "all" else part
        np.testing.assert_allclose(shown, shown_part / shown_part.max(), atol=2 / 65535)
    problem(client.post("/v1/explain", files={"image": ("a.png", data)},
                        data={"sign": "both"}), 422, "sign: must be one of absolute")
    methods = {m["name"]: m for m in client.get("/v1/methods").json()["methods"]}
    assert methods["integrated_gradients"]["signed"] and not methods["gradcam"]["signed"]


def test_every_method_drawn_in_one_sign_where_it_has_one(client):
    """The page's "Compare all methods" in the Sign selector's sign: each method is sent that
    sign where ``/v1/methods`` lists it in ``signs``, else ``auto``. A signed map is drawn in
    the sign (its reduce keeps the sign); an unsigned one keeps its absolute map, never the
    empty negative part of a map of magnitudes."""
    infos = deepinside.list_methods()
    ms = {m["name"]: m for m in client.get("/v1/methods").json()["methods"]}
    for name, m in ms.items():
        assert m["default_sign"] == infos[name].default_sign in m["signs"], name
        assert (len(m["signs"]) > 1) == m["signed"], name
    assert ms["integrated_gradients"]["signs"] == ["absolute", "positive", "negative", "all"]
    assert ms["gradcam"]["signs"] == ["absolute"]
    data = png_bytes(5, size=(30, 34))
    for name in ("gradient_x_input", "deeplift", "gradient", "gradcam"):
        sign = "negative" if "negative" in ms[name]["signs"] else "auto"
        r = client.post("/v1/explain", files={"image": ("a.png", data)},
                        data={"method": name, "target": "1", "sign": sign, "values": "true"})
        assert r.status_code == 200, r.text
        body = r.json()
        values = np.frombuffer(base64.b64decode(body["map"]["f32"]), "<f4")
        if infos[name].signed:
            assert body["scale"]["sign"] == "negative" and body["params"] == {"reduce": "sum"}
            assert body["scale"]["max_abs"] == pytest.approx(float(-values.min()), rel=1e-5)
        else:
            assert body["scale"]["sign"] == "absolute" and body["params"] == {}
            assert values.min() >= 0
            assert body["scale"]["max_abs"] == pytest.approx(float(values.max()), rel=1e-5)
        assert body["scale"]["max_abs"] > 0  # something to see


@pytest.mark.parametrize("case", ["no file", "text", "empty", "bomb", "11 MB", "class",
                                  "method", "bounds", "params", "corrupt"])
def test_every_bad_request_gets_its_status_and_a_sentence(client, case):
    files = {"image": ("a.png", png_bytes())}
    data: dict = {}
    expect = {"no file": (422, "image"), "text": (415, "not a JPEG, PNG, WebP or GIF"),
              "empty": (422, "empty"), "bomb": (413, "pixels"), "11 MB": (413, "bytes"),
              "class": (422, "unknown class"), "method": (422, "unknown method"),
              "bounds": (422, "between 1 and 256"),
              "params": (422, "params.colour: gradient has no such"),
              "corrupt": (422, "cannot be decoded")}[case]
    if case == "no file":
        files = {}
    elif case == "text":
        files = {"image": ("a.txt", b"just some text, not a photo")}
    elif case == "empty":
        files = {"image": ("a.png", b"")}
    elif case == "bomb":
        buf = io.BytesIO()
        Image.new("L", (9000, 5000)).save(buf, "PNG")  # 45 MP in a few kB
        files = {"image": ("bomb.png", buf.getvalue())}
    elif case == "11 MB":
        files = {"image": ("noise.png", b"\x89PNG\r\n\x1a\n" + np.random.default_rng(0).bytes(
            11 * 2**20))}
    elif case == "class":
        data = {"target": "no such class"}
    elif case == "method":
        data = {"method": "gradcan"}
    elif case == "bounds":
        data = {"method": "integrated_gradients", "params": json.dumps({"steps": 100000})}
    elif case == "params":
        data = {"params": json.dumps({"colour": "red"})}
    elif case == "corrupt":
        files = {"image": ("a.png", png_bytes()[:60])}
    problem(client.post("/v1/explain", files=files, data=data), *expect)
    assert client.get("/healthz").status_code == 200  # and the next request is fine
    assert client.post("/v1/classify", files={"image": ("a.png", png_bytes())}).status_code == 200


def test_token(clf):
    c = TestClient(create_app(clf, token="s3cret"), base_url="http://localhost")
    problem(c.get("/v1/models"), 401, "Authorization: Bearer")
    problem(c.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401, "Bearer")
    assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


def test_sixteen_concurrent_explains_each_get_their_own_photo_s_map(client, clf):
    photos = [png_bytes(s, size=(30 + s, 40)) for s in range(16)]

    def ask(data):
        return client.post("/v1/explain", files={"image": ("p.png", data)},
                           data={"method": "gradient"}).json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, photos))
    for data, body in zip(photos, answers):
        photo = Image.open(io.BytesIO(data)).convert("RGB")
        [want], _, _ = deepinside.photo_maps(clf, [photo], [body["target"]["class"]])
        np.testing.assert_allclose(decode_map(body["map"]["png"]), want / want.max(),
                                   atol=2 / 65535)


def test_kserve_explain_shape(client):
    b64 = base64.b64encode(png_bytes(3)).decode()
    r = client.post("/v1/models/tiny:explain", json={
        "instances": [{"image_b64": b64}, {"image_b64": b64}],
        "parameters": {"method": "gradcam", "target": 2}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == len(body["explanations"]) == 2
    assert body["explanations"][0]["target"]["class"] == 2
    assert {"top"} == set(body["predictions"][0])
    # a signed method: the same map, params and scale as /v1/explain's, in the sign asked
    for sign in ("all", "negative"):
        r = client.post("/v1/models/tiny:explain", json={"instances": [{"image_b64": b64}],
                        "parameters": {"method": "integrated_gradients", "target": 1,
                                       "params": {"steps": 4}, "sign": sign}})
        assert r.status_code == 200, r.text
        [got] = r.json()["explanations"]
        want = client.post("/v1/explain", files={"image": ("a.png", png_bytes(3))}, data={
            "method": "integrated_gradients", "target": "1", "params": '{"steps": 4}',
            "sign": sign}).json()
        assert got["params"] == want["params"] == {"steps": 4, "reduce": "sum"}
        assert got["map"] == want["map"] and got["scale"] == want["scale"]
        assert got["scale"]["sign"] == sign
    problem(client.post("/v1/models/tiny:explain", json={"instances": [{"image_b64": b64}],
                                                         "parameters": {"sign": 1}}),
            422, "parameters.sign: must be one of")
    problem(client.post("/v1/models/other:explain", json={"instances": []}), 404, "serves")
    problem(client.post("/v1/models/tiny:explain", json={"nope": 1}), 422, "instances")


def test_class_model_job_with_progress_events(client):
    r = client.post("/v1/classmodel", json={"classes": ["class1", 4], "mode": "paper",
                                            "steps": 5})
    assert r.status_code == 202
    job = r.json()["job"]
    with client.stream("GET", f"/v1/jobs/{job}/events") as s:
        events = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: ")]
    assert events[-1] == {"state": "done", "step": 5, "total": 5}
    status = client.get(f"/v1/jobs/{job}").json()
    assert [i["name"] for i in status["images"]] == ["class1", "class4"]
    assert [e["step"] for e in status["evolution"]][-1] == 5
    assert all(len(e["png"]) == 2 for e in status["evolution"])
    problem(client.get("/v1/jobs/nope"), 404, "no job")
    problem(client.post("/v1/classmodel", json={"classes": ["class1"], "steps": 10**6}), 422,
            "steps")


def test_unit_job_and_the_librarys_default_steps(client):
    from deepinside.classmodel import mode_defaults

    r = client.post("/v1/classmodel", json={"unit": "features.2:3", "steps": 4})
    assert r.status_code == 202
    job = r.json()["job"]
    with client.stream("GET", f"/v1/jobs/{job}/events") as s:
        events = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: ")]
    assert events[-1]["state"] == "done"
    status = client.get(f"/v1/jobs/{job}").json()
    assert [i["name"] for i in status["images"]] == ["features.2:3"]
    assert status["seconds_per_step"] > 0
    problem(client.post("/v1/classmodel", json={"unit": "featurez.2:3"}), 422, "features")
    problem(client.post("/v1/classmodel", json={"unit": "features.2"}), 422, "LAYER:CHANNEL")
    r = client.post("/v1/classmodel", json={"classes": [1], "mode": "paper"})  # no steps
    with client.stream("GET", f"/v1/jobs/{r.json()['job']}/events") as s:
        last = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: ")][-1]
    assert last == {"state": "done", "step": 200, "total": mode_defaults("paper")["steps"]}


def test_the_events_end_with_the_job_s_end_even_if_it_ends_while_one_is_sent():
    """The last event is the job's end, also when the job ends while the event before is
    being sent (the stream is suspended at that event's yield; under load, for long)."""
    import asyncio

    from deepinside.serve.jobs import Job, _events

    job = Job([1], "paper", 4, state="running", step=3)

    async def read() -> list[dict]:
        events = _events(job)
        seen = [await anext(events)]  # sent; the stream waits until it is through
        job.step, job.state = 4, "done"  # meanwhile the job's last step ends it
        seen += [x async for x in events]
        return [json.loads(x[6:]) for x in seen]

    seen = asyncio.run(read())
    assert seen == [{"state": "running", "step": 3, "total": 4},
                    {"state": "done", "step": 4, "total": 4}]


def _finished(client, body: dict) -> dict:
    r = client.post("/v1/classmodel", json=body)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    with client.stream("GET", f"/v1/jobs/{job}/events") as s:
        for _ in s.iter_lines():
            pass
    return client.get(f"/v1/jobs/{job}").json()


def test_neuron_layer_and_direction_jobs_are_the_library_s_objectives(client, clf):
    from deepinside.classmodel import direction, layer, neuron, visualize
    from deepinside.render import uint8_images

    weights = [1.0, -0.5, 0, 0, 2, 0, 0, 0.25]  # features.5 has 8 channels
    for body, objective, name in [
            ({"neuron": "features.5:3:2:5"}, neuron("features.5", 3, 2, 5), "features.5:3:2:5"),
            ({"neuron": "features.5:3"}, neuron("features.5", 3), "features.5:3"),
            ({"layer": "features.5"}, layer("features.5"), "features.5"),
            ({"layer": "features.5", "direction": weights}, direction("features.5", weights),
             "features.5 (direction)")]:
        status = _finished(client, {**body, "steps": 3})
        assert status["state"] == "done", status["error"]
        [image] = status["images"]
        assert image["name"] == name
        want = visualize(clf, objective, mode="lucid", steps=3, snapshots=3)
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(image["png"]))))
        np.testing.assert_array_equal(got, uint8_images(want.images)[0])


@pytest.mark.parametrize("body, words", [
    ({"layer": "features.55"}, "layer: no layer of the model matches 'features.55'"),
    ({"layer": "featurez.5"}, "features.5"),  # the close names
    ({"neuron": "features.5:99"}, "neuron: channel out of range: layer 'features.5' has 8"),
    ({"neuron": "features.5:1:16:0"}, "neuron: neuron position (x=16, y=0) is outside"),
    ({"neuron": "features.5:one"}, "neuron: the channel must be a whole number"),
    ({"neuron": "features.5"}, "neuron: must be LAYER:CHANNEL or LAYER:CHANNEL:X:Y"),
    ({"unit": "features.5:8"}, "unit: channel out of range"),
    ({"layer": "head"}, "layer: layer 'head' outputs Tensor[1, 6]: it is a vector"),
    ({"direction": [1.0]}, "direction: needs layer"),
    ({"layer": "features.5", "direction": [1.0, 2.0]}, "direction has 2 values"),
    ({"layer": "features.5", "direction": "up"}, "direction: must be a list"),
    ({"layer": "features.5", "direction": [True]}, "direction: must be a list"),
    ({"layer": "features.5", "unit": "features.5:1"}, "give one of classes, unit, neuron"),
    ({"neuron": "features.5:1", "classes": [1]}, "give one of classes"),
    ({"layer": 5}, "layer: must be a layer name"),
])
def test_a_bad_unit_is_422_naming_the_field_before_any_job(client, body, words):
    problem(client.post("/v1/classmodel", json={**body, "steps": 2}), 422, words)


def test_a_full_queue_is_503_with_retry_after_and_slow_is_504(clf):
    from deepinside.serve import ModelWorker

    limits = Limits(queue=1, timeout=2)
    idle = ModelWorker(limits, thread=False)  # never served: the first request waits
    c = TestClient(create_app(clf, limits=limits, worker=idle), base_url="http://localhost")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(c.post, "/v1/classify", files={"image": ("a.png", png_bytes())})
        while idle.busy_requests == 0:
            pass
        r = c.post("/v1/explain", files={"image": ("a.png", png_bytes())})
        problem(r, 503, "waiting")
        assert r.headers["retry-after"] == "1"
        problem(first.result(), 504, "more than 2 s")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.one_of(st.sampled_from(list(deepinside.list_methods())), st.text(max_size=8)),
       target=st.one_of(st.none(), st.text(max_size=6), st.integers(-5, 10).map(str)),
       params=st.one_of(st.none(), st.text(max_size=12), st.dictionaries(
           st.sampled_from(["steps", "samples", "reduce", "window", "noise", "x"]),
           st.one_of(st.integers(-3, 300), st.floats(allow_nan=True), st.text(max_size=4),
                     st.booleans()), max_size=2).map(json.dumps)),
       localize=st.sampled_from(["true", "false", "maybe"]))
def test_no_request_gets_a_5xx(client, method, target, params, localize):
    data = {"method": method, "localize": localize}
    if target is not None:
        data["target"] = target
    if params is not None:
        data["params"] = params
    r = client.post("/v1/explain", files={"image": ("a.png", png_bytes(size=(16, 20)))},
                    data=data)
    assert r.status_code < 500 or r.status_code == 504, r.text  # 504: a loaded machine


def test_the_page_is_served(client):
    import re

    r = client.get("/")
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert '<script type="module" src="/static/main.js">' in r.text
    # every module the page imports, and theirs, is served as JavaScript (module scripts load
    # only with a JavaScript type), with no build step and nothing from elsewhere
    todo, seen = ["main.js"], set()
    while todo:
        name = todo.pop()
        seen.add(name)
        js = client.get(f"/static/{name}")
        assert js.status_code == 200, name
        assert js.headers["content-type"].split(";")[0] == "text/javascript", name
        for dep in re.findall(r'^import .* from "\./([\w-]+\.js)";$', js.text, re.M):
            if dep not in seen:
                todo.append(dep)
        assert "http://" not in js.text and "https://" not in js.text, name
    assert len(seen) > 10  # one idea a module


def test_the_command_starts_prints_its_url_and_stops_on_ctrl_c():
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "deepinside", "serve", "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_stops)
    try:
        line = proc.stderr.readline()
        assert f"at http://127.0.0.1:{port}/" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
            assert json.loads(r.read())["status"] == "ok"
        proc.send_signal(signal.SIGINT)
        try:  # the server gives itself 15 s; more room for a loaded machine
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"serve did not stop on Ctrl-C; it said: {proc.stderr.read()}")
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_paper_report_is_served_at_report(clf, tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "index.html").write_text("<!DOCTYPE html><html><body>report</body></html>")
    (tmp_path / "figures" / "a.png").write_bytes(png_bytes())
    c = TestClient(create_app(clf, report=tmp_path), base_url="http://localhost")
    assert "report" in c.get("/report/").text
    assert c.get("/report/figures/a.png").headers["content-type"] == "image/png"
