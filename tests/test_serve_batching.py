"""Micro-batching (serve/batcher.py) and the lean multipart path (serve/fastpath.py): requests that arrive
together share one forward pass, a lone one never waits, and every caller gets its own answer."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings

import httpx
import numpy as np
import pytest
import torch
from fastapi import HTTPException
from prometheus_client.parser import text_string_to_metric_families
from test_serve import SEVEN, ZERO, drawn_png

from cnnlab.data import normalize, open_image, to_model_pixels
from cnnlab.predict import predict_tensor
from cnnlab.serve import Settings, create_app, serve_in_thread
from cnnlab.serve.backends import TorchBackend
from cnnlab.serve.batcher import Batcher
from cnnlab.serve.fastpath import lean_top_k, lean_upload

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


class Recording:
    """A backend that records each batch size and can take its time, so jobs pile up behind it."""

    name = "recording"

    def __init__(self, inner, delay: float = 0.0):
        self.inner, self.delay, self.sizes = inner, delay, []

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        time.sleep(self.delay)
        return self.inner.probabilities(x)


@pytest.fixture(scope="module")
def inputs(digits_run) -> np.ndarray:
    """Eight different real images as the model sees them before normalising, (8, 1, 28, 28) in [0, 1]:
    two drawn digits, and six of the digits run's own test images."""
    drawn = [to_model_pixels(open_image(drawn_png(s)), digits_run.meta) for s in (SEVEN, ZERO)]
    test = digits_run.test_set().x[:6].numpy().astype(np.float32) / 255
    return np.concatenate([np.stack(drawn), test])


def _expected(run, pixels: np.ndarray, top_k: int = 3) -> list[dict]:
    """What `cnnlab predict` answers for these images, one forward pass each."""
    return [predict_tensor(run.model, run.meta, normalize(px[None], run.meta), top_k)[0] for px in pixels]


def _run(coro):
    return asyncio.run(coro)


def test_a_burst_shares_forward_passes_and_each_caller_gets_its_answer(digits_run, inputs):
    backend = Recording(TorchBackend(digits_run.model))
    batcher = Batcher(backend, digits_run.meta, max_batch=16, wait_s=0.002)
    jobs = [inputs[i % len(inputs)] for i in range(40)]

    async def burst():
        try:  # all 40 submitted in one turn of the loop, as requests read in one go are
            return await asyncio.gather(*(batcher.submit(lambda x=x: x, 10) for x in jobs))
        finally:
            batcher.stop()

    got = _run(burst())
    assert backend.sizes == [16, 16, 8]  # 3 forward passes, not 40
    expected = _expected(digits_run, inputs, 10)
    for i, g in enumerate(got):
        e = expected[i % len(inputs)]
        assert g["label"] == e["label"]
        assert [t["label"] for t in g["top_k"]] == [t["label"] for t in e["top_k"]]
        assert max(abs(a["probability"] - b["probability"]) for a, b in zip(g["top_k"], e["top_k"])) < 1e-5


def test_a_lone_request_does_not_wait_for_the_window(digits_run, inputs):
    backend = Recording(TorchBackend(digits_run.model))
    batcher = Batcher(backend, digits_run.meta, max_batch=64, wait_s=5.0)  # a window nobody should see

    async def lone():
        try:
            t = time.perf_counter()
            await batcher.submit(lambda: inputs[0], 3)
            return time.perf_counter() - t
        finally:
            batcher.stop()

    assert _run(lone()) < 1.0 and backend.sizes == [1]


def test_a_batch_waits_only_for_requests_being_received_and_at_most_the_window(digits_run, inputs):
    backend = Recording(TorchBackend(digits_run.model))
    batcher = Batcher(backend, digits_run.meta, max_batch=64, wait_s=0.5)

    async def body_arrives_later(slot, delay):
        await asyncio.sleep(delay)
        return await slot.submit(lambda: inputs[1], 3)

    async def scenario():
        try:
            async with batcher.incoming() as slow:  # a request whose body is still on its way
                t = time.perf_counter()
                both = await asyncio.gather(batcher.submit(lambda: inputs[0], 3),
                                            body_arrives_later(slow, 0.1))
                joined = time.perf_counter() - t
            async with batcher.incoming():  # one that never submits: the window bounds the wait
                t = time.perf_counter()
                await batcher.submit(lambda: inputs[2], 3)
                waited = time.perf_counter() - t
            return both, joined, waited
        finally:
            batcher.stop()

    both, joined, waited = _run(scenario())
    assert backend.sizes == [2, 1]  # the first job waited for the second, which came within the window
    assert 0.09 < joined < 0.45
    assert 0.45 < waited < 2.0
    assert [b["label"] for b in both] == [e["label"] for e in _expected(digits_run, inputs[:2])]


def test_a_bad_upload_fails_only_its_own_request(digits_run, inputs):
    batcher = Batcher(TorchBackend(digits_run.model), digits_run.meta, max_batch=8)

    def bad():
        raise HTTPException(415, "x.txt: not an image")

    async def mixed():
        try:
            return await asyncio.gather(batcher.submit(lambda: inputs[0], 3), batcher.submit(bad, 3),
                                        batcher.submit(lambda: inputs[1], 3), return_exceptions=True)
        finally:
            batcher.stop()

    a, b, c = _run(mixed())
    assert isinstance(b, HTTPException) and b.status_code == 415
    assert a["label"] == "7" and c["label"] == "0"


def _metric(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"{name}{labels} not in /metrics")


def test_concurrent_http_requests_are_batched_and_counted(digits_run):
    """16 clients at once against a real uvicorn whose forward pass is slowed to 30 ms: requests pile up
    behind it and leave together; /metrics counts them by status and batch size."""
    app = create_app(digits_run.path, Settings(max_batch=8))
    service = app.state.service
    service.batcher.backend = Recording(service.backend, delay=0.03)
    pngs = {"7": drawn_png(SEVEN), "0": drawn_png(ZERO)}
    got: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def client(url: str, digit: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(4):
                r = c.post("/predict", files={"file": (f"{digit}.png", pngs[digit], "image/png")})
                with lock:
                    got.append((digit, r.status_code, r.json()))

    with serve_in_thread(app) as url:
        single = {d: httpx.post(f"{url}/predict", files={"file": (f"{d}.png", p, "image/png")}).json()
                  for d, p in pngs.items()}
        threads = [threading.Thread(target=client, args=(url, "70"[k % 2])) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bad = httpx.post(f"{url}/predict", files={"file": ("n.txt", b"not a picture", "text/plain")})
        metrics = httpx.get(f"{url}/metrics").text
    assert bad.status_code == 415
    assert len(got) == 64 and {s for _, s, _ in got} == {200}
    for digit, _, answer in got:  # each caller its own answer, whatever it was batched with
        assert answer["label"] == digit and answer["file"] == f"{digit}.png"
        assert abs(answer["probability"] - single[digit]["probability"]) < 1e-5
    sizes = service.batcher.backend.sizes
    assert sum(sizes) == 66 and max(sizes) <= 8 and len(sizes) < 40  # most forward passes were shared
    assert _metric(metrics, "cnnlab_requests_total", handler="/predict", status="200") == 66
    assert _metric(metrics, "cnnlab_requests_total", handler="/predict", status="415") == 1
    assert _metric(metrics, "cnnlab_request_seconds_count", handler="/predict") == 67
    assert _metric(metrics, "cnnlab_batch_size_count") == len(sizes)
    assert _metric(metrics, "cnnlab_batch_size_sum") == 66
    assert _metric(metrics, "cnnlab_batch_size_bucket", le="1.0") == sizes.count(1)
    assert _metric(metrics, "cnnlab_queue_depth") == 0


# --- the lean multipart path ---------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n-bytes-"


def _part(disposition: bytes, data: bytes = PNG, boundary: bytes = b"b0undary", extra: bytes = b"") -> bytes:
    return (b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n" + extra
            + b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n")


CT = b"multipart/form-data; boundary=b0undary"


def test_lean_upload_takes_the_common_request_as_starlette_would(digits_run):
    assert lean_upload(CT, _part(b'form-data; name="file"; filename="seven.png"')) == ("seven.png", PNG)
    assert lean_upload(CT, _part(b'form-data; filename="s.png"; name="file"')) == ("s.png", PNG)
    assert lean_upload(b'multipart/form-data; boundary="b0undary"',
                       _part(b'form-data; name="file"; filename=""')) == ("upload", PNG)
    assert lean_upload(CT, _part(b'form-data; name="file"; filename="\xc3\xa9t\xc3\xa9.png"')) \
        == ("\u00e9t\u00e9.png", PNG)
    assert lean_upload(CT, _part(b'form-data; name="file"; filename="e.png"', data=b"")) == ("e.png", b"")
    # What httpx (and so TestClient) sends is taken: the same bytes starlette's parser gives the route.
    req = httpx.Request("POST", "http://x/predict", files={"file": ("a.png", PNG + b"\r\n--x", "image/png")})
    body = req.read()
    assert lean_upload(req.headers["content-type"].encode(), body) == ("a.png", PNG + b"\r\n--x")


@pytest.mark.parametrize("content_type,body", [
    (CT, _part(b'form-data; name="image"; filename="a.png"')),  # another field name
    (CT, _part(b'form-data; name="file"')),  # a text field, not a file
    (CT, _part(b'form-data; name="file"; filename="a\\".png"')),  # an escaped quote
    (CT, _part(b'form-data; name="file"; filename*=UTF-8\'\'a.png')),  # RFC 5987 names
    (CT, _part(b'form-data; name="file"; filename="a.png"', extra=b"Content-Transfer-Encoding: base64\r\n")),
    (CT, _part(b'form-data; name="file"; filename="a.png"')[:-4]),  # no closing delimiter
    (CT, _part(b'form-data; name="file"; filename="a.png"') * 2),  # two parts
    (CT, _part(b'form-data; name="file"; filename="a.png"', boundary=b"other")),
    (b"multipart/form-data", _part(b'form-data; name="file"; filename="a.png"')),  # no boundary
    (b"multipart/mixed; boundary=b0undary", _part(b'form-data; name="file"; filename="a.png"')),
    (CT, b""),
], ids=["field", "text", "escape", "rfc5987", "encoding", "unclosed", "two-parts", "boundary", "no-boundary",
        "mixed", "empty"])
def test_lean_upload_leaves_everything_else_to_the_full_parser(content_type, body):
    assert lean_upload(content_type, body) is None


def test_lean_top_k():
    assert lean_top_k(b"", 3) == 3 and lean_top_k(b"top_k=10", 3) == 10
    for q in (b"top_k=0", b"top_k=x", b"explain=1", b"top_k=2&explain=1", b"top_k=-1", b"k=2"):
        assert lean_top_k(q, 3) is None


def test_the_lean_path_and_the_route_answer_alike(digits_run):
    """The same upload, once as the lean path takes it and once forced through FastAPI's route (a second,
    empty field makes the lean parser decline): equal answers, and equal errors."""
    png = drawn_png(SEVEN)
    with TestClient(create_app(digits_run.path)) as c:
        for data, status in ((png, 200), (png[:300], 400), (b"plain text", 415), (b"", 400)):
            lean = c.post("/predict?top_k=4", files={"file": ("s.png", data, "image/png")})
            full = c.post("/predict?top_k=4", files={"file": ("s.png", data, "image/png")}, data={"note": ""})
            assert lean.status_code == full.status_code == status
            assert lean.json() == full.json()
