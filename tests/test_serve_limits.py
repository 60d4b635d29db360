"""``deepinside serve`` under attack (issue 20): each request that failed, and a Schemathesis run.

The numbered tests replay the requests of the issue: 500s from parameters (1), engine switches
in a client's hands (2), a time limit that did not stop the work (3), chunked bodies over the
limit (4), uploads spooled to disk (5), no Host / Origin check (6), class-model jobs (7), the
protocol and the schema (8).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
import time

import numpy as np
import pytest
import torch
from models import TinyFeatures, tiny_classifier
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from deepinside.models import Classifier, Preprocessing  # noqa: E402
from deepinside.serve import Limits, create_app  # noqa: E402

BASE = "http://localhost"


class SlowFeatures(TinyFeatures):
    """TinyFeatures that sleeps ``delay`` seconds in every forward pass (a big model's pace)
    and counts its forward passes (its fast copy shares the count)."""

    delay = 0.02
    calls = [0]

    def forward(self, x):
        self.calls[0] += 1
        time.sleep(self.delay)
        return super().forward(x)


def slow_classifier() -> Classifier:
    torch.manual_seed(0)
    net = SlowFeatures(6).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return Classifier(net, Preprocessing(input_size=(32, 32), resize_size=36),
                      [f"class{i}" for i in range(6)], name="slow")


def png_bytes(seed: int = 0, size=(40, 50)) -> bytes:
    a = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def problem(r, status: int, words: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and words in body["detail"], body["detail"]
    return body


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(tiny_classifier()), base_url=BASE)


@pytest.fixture(scope="module")
def slow():
    return slow_classifier()


def explain(c, method: str, params: str, **data):
    return c.post("/v1/explain", files={"image": ("a.png", png_bytes())},
                  data={"method": method, "params": params, **data})


# ------------------------------------------------------------------ 1. 500s from parameters

@pytest.mark.parametrize(("method", "params", "field"), [
    ("deeplift", '{"eps": NaN}', "NaN"),
    ("deeplift", '{"eps": 1e309}', "params.eps: must be a finite number"),
    ("deeplift", '{"eps": -Infinity}', "Infinity"),
    ("extremal_perturbation", '{"sigma": NaN}', "NaN"),
    ("extremal_perturbation", '{"max_blur": 1e309}', "params.max_blur"),
    ("gradient", '{"reduce": "none"}', "params.reduce: must be one of"),
    ("gradient", '{"amp": "bogus"}', "params.amp"),
    ("gradcam", '{"layer": "no.such.layer"}', "params.layer: must be one of"),
    ("gradcam", '{"layer": "head"}', "params.layer: gradcam cannot use the layer 'head'"),
    ("smoothgrad", '{"base": "smoothgrad"}', "params: smoothgrad cannot smooth itself"),
    ("smoothgrad", '{"base": "no_such_method"}', "params: unknown method"),
    ("occlusion", '{"window": "8"}', "params.window: must be an integer"),
    ("integrated_gradients", '{"steps": 100000000000000000000000}', "params.steps"),
    ("gradient", "[" * 10000 + "]" * 10000, "params: JSON nested more than"),
])
def test_1_bad_parameters_are_422_naming_the_field(client, method, params, field):
    body = problem(explain(client, method, params), 422, field)
    assert "Error" not in body["detail"] and "Traceback" not in body["detail"]


def test_1_a_target_is_bounded(client):
    problem(explain(client, "gradient", "", target="top100000"), 422,
            "target: top<k> explains at most 6 classes")
    problem(explain(client, "gradient", "", target="x" * 5000), 422, "target: longer")
    r = explain(client, "gradient", "", target="top2")
    assert r.status_code == 200 and len(r.json()["more"]) == 1


def test_1_occlusion_window_is_published_and_taken_as_an_integer(client):
    ms = {m["name"]: m for m in client.get("/v1/methods").json()["methods"]}
    assert ms["occlusion"]["params"]["window"]["type"] == "int"
    assert ms["gradcam"]["params"]["layer"]["choices"][:2] == ["features", "features.0"]
    r = explain(client, "occlusion", '{"window": 8, "stride": 8}')
    assert r.status_code == 200, r.text


def test_1_an_unexpected_error_is_500_with_an_id_the_log_has(monkeypatch, caplog):
    import deepinside

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    c = TestClient(create_app(tiny_classifier()), base_url=BASE, raise_server_exceptions=False)
    monkeypatch.setattr(deepinside, "photo_maps", broken)
    with caplog.at_level(logging.ERROR, logger="deepinside.serve"):
        body = problem(explain(c, "gradient", ""), 500, "error id")
    assert "secret" not in json.dumps(body)
    error_id = body["detail"].split("error id ")[1].split(":")[0]
    assert any(error_id in r.getMessage() and "secret internals" in r.exc_text
               for r in caplog.records)


# ------------------------------------------------------------------ 2. engine switches

@pytest.mark.parametrize("params", ['{"compiled": "yes"}', '{"compiled": true}',
                                    '{"amp": "float16"}', '{"fast": false}'])
def test_2_engine_switches_are_not_request_fields(client, params):
    problem(explain(client, "gradient", params), 422, "the server's option, not a request's")
    for m in client.get("/v1/methods").json()["methods"]:
        assert not {"compiled", "amp", "fast"} & set(m["params"]), m["name"]


def test_2_engine_switches_are_server_options():
    import deepinside

    clf = tiny_classifier()
    c = TestClient(create_app(clf, engine={"fast": False}), base_url=BASE)
    data = png_bytes(3)
    r = c.post("/v1/explain", files={"image": ("a.png", data)}, data={"target": "2"})
    assert r.status_code == 200, r.text
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["map"]["png"]))))
    photo = Image.open(io.BytesIO(data)).convert("RGB")
    [want], _, _ = deepinside.photo_maps(clf, [photo], [2], fast=False)
    np.testing.assert_allclose(got / 65535, want / want.max(), atol=2 / 65535)


# ------------------------------------------------------------------ 3. work that stops

def test_3_after_a_504_the_work_stops_and_the_next_request_is_served_at_once(slow):
    c = TestClient(create_app(slow, limits=Limits(timeout=3.0)), base_url=BASE)
    t0 = time.perf_counter()  # rise: 8000 masks one at a time take 160 s at least
    problem(explain(c, "rise", '{"masks": 8000, "batch_size": 1}'), 504, "more than 3 s")
    assert time.perf_counter() - t0 < 10
    time.sleep(0.3)
    n = SlowFeatures.calls[0]
    time.sleep(0.3)
    assert SlowFeatures.calls[0] == n  # no forward pass since: the work stopped
    # served within its own 3 s, which it could not be if the 160 s of rise went on
    r = c.post("/v1/classify", files={"image": ("a.png", png_bytes())})
    assert r.status_code == 200, r.text


def test_3_a_large_photo_is_drawn_smaller_and_its_box_is_in_its_own_pixels():
    import deepinside

    clf = tiny_classifier()
    c = TestClient(create_app(clf, limits=Limits(max_render_pixels=100 * 150)), base_url=BASE)
    a = np.zeros((400, 600, 3), np.uint8)
    a[100:300, 200:500] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    r = c.post("/v1/explain", files={"image": ("a.png", buf.getvalue())},
               data={"method": "gradcam", "target": "1", "localize": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["map"]["width"], body["map"]["height"]) == (150, 100)
    small = Image.fromarray(a).resize((150, 100), Image.BILINEAR, reducing_gap=2.0)
    [want], _, _ = deepinside.photo_maps(clf, [small], [1], method="gradcam")
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["map"]["png"])))) / 65535
    np.testing.assert_allclose(got, want / want.max(), atol=2 / 65535)
    from deepinside.localize import get_recipe, segment_map

    _, box, _ = segment_map(np.zeros((100, 150, 3), np.uint8), want,
                            get_recipe("gradcam-30", smooth=0.04))
    np.testing.assert_allclose(body["box"], np.asarray(box) * 4)  # in the photo's pixels


def test_3_kserve_obeys_the_time_limit_and_bounds_its_instances(slow):
    c = TestClient(create_app(slow, limits=Limits(timeout=1.0, max_instances=4)),
                   base_url=BASE)
    b64 = base64.b64encode(png_bytes()).decode()
    # RISE of 4000 masks on each of 4 photos: about 10 s of forward passes of 20 ms on an idle
    # machine (400 masks took 0.94 s there, too close to the 1 s limit to test it)
    t0 = time.perf_counter()
    r = c.post("/v1/models/slow:explain", json={
        "instances": [{"image_b64": b64}] * 4,
        "parameters": {"method": "rise", "params": {"masks": 4000, "batch_size": 1}}})
    problem(r, 504, "more than 1 s")
    assert time.perf_counter() - t0 < 10
    problem(c.post("/v1/models/slow:explain", json={"instances": [{"image_b64": b64}] * 5}),
            413, "at most 4")


def test_3_a_job_stops_at_its_time_limit(slow):
    c = TestClient(create_app(slow, limits=Limits(job_timeout=0.5)), base_url=BASE)
    job = c.post("/v1/classmodel", json={"classes": [1], "steps": 500}).json()["job"]
    t0 = time.perf_counter()
    while c.get(f"/v1/jobs/{job}").json()["state"] in ("queued", "running"):
        assert time.perf_counter() - t0 < 10
        time.sleep(0.05)
    status = c.get(f"/v1/jobs/{job}").json()
    assert status["state"] == "error" and "0.5 s" in status["error"]
    assert status["step"] < 100  # 500 steps of 40+ ms each would take 20 s


# ------------------------------------------------------------------ 4. chunked bodies

def test_4_a_chunked_body_over_the_limit_is_413():
    c = TestClient(create_app(tiny_classifier(), limits=Limits(max_body=2**20)), base_url=BASE)

    def chunks():
        for _ in range(50):  # 5 MB, no Content-Length
            yield b"x" * 100_000

    r = c.post("/v1/classmodel", content=chunks(), headers={"Content-Type": "application/json"})
    problem(r, 413, "more than")
    r = c.post("/v1/explain", content=chunks(),
               headers={"Content-Type": "multipart/form-data; boundary=x"})
    problem(r, 413, "more than")


# ------------------------------------------------------------------ 5. uploads in memory

def test_5_uploads_over_1_mb_stay_in_memory(monkeypatch):
    big = png_bytes(size=(700, 700))  # noise: ~1.5 MB
    assert len(big) > 2**20

    def to_disk(self, *args):
        raise AssertionError("an upload was spooled to disk")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", to_disk)
    c = TestClient(create_app(tiny_classifier()), base_url=BASE)
    r = c.post("/v1/classify", files={"image": ("a.png", big)})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ 6. Host and Origin

def test_6_an_unknown_host_is_refused(client):
    problem(client.get("/v1/models", headers={"Host": "evil.example"}), 400, "evil.example")
    r = client.post("/v1/explain", files={"image": ("a.png", png_bytes())},
                    headers={"Host": "evil.example:8000"})
    problem(r, 400, "--allowed-hosts")
    for host in ("localhost:8000", "127.0.0.1", "[::1]:80"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200
    c = TestClient(create_app(tiny_classifier(), allowed_hosts=["models.example"]),
                   base_url="http://models.example")
    assert c.get("/v1/models").status_code == 200


def test_6_a_cross_site_post_is_refused_unless_allowed():
    app = create_app(tiny_classifier(), cors_origins=["https://friend.example"])
    c = TestClient(app, base_url=BASE)
    body = json.dumps({"classes": [1], "steps": 1})
    r = c.post("/v1/classmodel", content=body,  # a form's text/plain POST: no preflight
               headers={"Origin": "https://evil.example", "Content-Type": "text/plain"})
    problem(r, 403, "https://evil.example")
    r = c.post("/v1/classmodel", content=body, headers={"Content-Type": "text/plain"})
    problem(r, 415, "JSON")  # not even without an Origin
    for origin in (BASE, "https://friend.example"):  # the page itself; an allowed site
        r = c.post("/v1/classmodel", content=body,
                   headers={"Origin": origin, "Content-Type": "application/json"})
        assert r.status_code == 202, r.text
    r = c.options("/v1/classmodel", headers={"Origin": "https://friend.example",
                                             "Access-Control-Request-Method": "POST"})
    assert r.headers["access-control-allow-origin"] == "https://friend.example"
    r = c.get("/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers  # the browser will not let it read


# ------------------------------------------------------------------ 7. jobs

def test_7_jobs_have_their_own_queue_a_cap_per_client_and_requests_go_first(slow):
    c = TestClient(create_app(slow, limits=Limits(jobs=3, jobs_per_client=2, timeout=3)),
                   base_url=BASE)
    codes = [c.post("/v1/classmodel", json={"classes": [1], "steps": 500}).status_code
             for _ in range(3)]
    assert codes == [202, 202, 429]
    other = TestClient(c.app, base_url=BASE, client=("10.0.0.2", 1))
    codes = [other.post("/v1/classmodel", json={"classes": [1], "steps": 500}).status_code
             for _ in range(2)]
    assert codes == [202, 503]  # the job queue (3) is full
    # a job runs (500 steps of 20 ms at least) and two wait: a classify goes first, within
    # its 3 s, between two steps of the running job
    r = c.post("/v1/classify", files={"image": ("a.png", png_bytes())})
    assert r.status_code == 200, r.text


def test_7_delete_cancels_a_job_and_results_expire(slow):
    c = TestClient(create_app(slow, limits=Limits(job_ttl=0.3)), base_url=BASE)
    job = c.post("/v1/classmodel", json={"classes": [1], "steps": 500}).json()["job"]
    while c.get(f"/v1/jobs/{job}").json()["step"] == 0:
        time.sleep(0.02)
    assert c.delete(f"/v1/jobs/{job}").status_code == 204
    problem(c.get(f"/v1/jobs/{job}"), 404, "no job")
    problem(c.delete(f"/v1/jobs/{job}"), 404, "no job")
    quick = c.post("/v1/classmodel", json={"classes": [2], "steps": 2}).json()["job"]
    t0 = time.perf_counter()  # the cancelled job no longer holds the worker
    while c.get(f"/v1/jobs/{quick}").json()["state"] != "done":
        assert time.perf_counter() - t0 < 5
        time.sleep(0.02)
    time.sleep(0.5)
    problem(c.get(f"/v1/jobs/{quick}"), 404, "expired")


# ------------------------------------------------------------------ 8. protocol and schema

def test_8_405_says_allow_and_bearer_is_case_insensitive():
    c = TestClient(create_app(tiny_classifier(), token="s3cret"), base_url=BASE)
    r = c.put("/v1/jobs/abc", headers={"Authorization": "bearer s3cret"})
    problem(r, 405, "PUT")
    assert r.headers["allow"] == "DELETE, GET, HEAD"
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = c.get("/v1/models", headers={"Authorization": f"{scheme} s3cret"})
        assert r.status_code == 200
    problem(c.get("/v1/models", headers={"Authorization": "Basic s3cret"}), 401, "Bearer")


def test_8_the_schema_is_complete_and_docs_need_no_cdn():
    c = TestClient(create_app(tiny_classifier(), token="s3cret"), base_url=BASE)
    schema = c.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http",
                                                                 "scheme": "bearer"}
    for path in ("/v1/classmodel", "/v1/models/{name}:explain", "/v1/explain",
                 "/v1/classify"):
        op = schema["paths"][path]["post"]
        assert op["requestBody"]["required"], path
        assert op["security"] == [{"bearer": []}]
        for status in ("401", "403", "413", "415", "422", "503" if path != "/v1/classmodel"
                       else "429"):
            assert "application/problem+json" in op["responses"][status]["content"], \
                (path, status)
    assert "504" in schema["paths"]["/v1/explain"]["post"]["responses"]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404


# ------------------------------------------------------------------ Schemathesis

def _schemathesis_test():
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, settings

    app = create_app(tiny_classifier(), allowed_hosts=["testserver"],
                     limits=Limits(timeout=10, max_classmodel_steps=3, max_instances=2,
                                   jobs_per_client=100, jobs=100))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.parametrize()
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def test(case):
        # no 5xx, every status and content type documented, bodies as the schema says; a
        # schema-valid body may still be refused: no schema says "a decodable photo"; and a
        # form whose "invalid" field is an empty array sends no such field at all: valid
        excluded = [schemathesis.checks.positive_data_acceptance]
        if (case.media_type or "").startswith("multipart/"):
            excluded.append(schemathesis.checks.negative_data_rejection)
        case.call_and_validate(excluded_checks=excluded)

    return test


test_schemathesis_no_5xx_and_every_status_documented = _schemathesis_test()
