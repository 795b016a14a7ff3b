"""The HTTP API on a trained digits run: answers equal the CLI's, bad input gets a clear 4xx, load gets
no 5xx."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import threading
import warnings
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnnlab.cli import main
from cnnlab.data import open_image, to_model_pixels
from cnnlab.serve import Settings, create_app, serve_in_thread

with warnings.catch_warnings():  # starlette warns that its TestClient will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SEVEN = [[(0.3, 0.2), (0.72, 0.2), (0.42, 0.82)]]
ZERO = [[(0.5 + 0.2 * np.cos(t), 0.5 + 0.32 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 25)]]


def drawn_png(strokes, size: int = 280, width: int = 23, ink: int = 255, paper: int = 0) -> bytes:
    """A digit drawn like the web page draws it: round strokes `width` px wide on a size x size pad."""
    im = Image.new("L", (size, size), paper)
    d = ImageDraw.Draw(im)
    for s in strokes:
        pts = [(x * size, y * size) for x, y in s]
        d.line(pts, fill=ink, width=width, joint="curve")
        for x, y in pts:
            d.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=ink)
    return png_bytes(im)


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def huge_png_header(w: int = 100_000, h: int = 100_000) -> bytes:
    """A valid, tiny PNG whose header claims w x h pixels: a decompression bomb's calling card."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def client(digits_run):
    with TestClient(create_app(digits_run.path, Settings(max_upload_mb=1, max_batch=4))) as c:
        yield c


def test_health_and_model_facts(client, digits_run):
    assert client.get("/health").json() == {"status": "ok", "model": "fastcnn", "classes": 10}
    m = client.get("/model").json()
    assert m["classes"] == [str(d) for d in range(10)]
    assert (m["style"], m["draw"], m["input_shape"]) == ("mnist", True, [1, 28, 28])
    assert m["test_accuracy"] == digits_run.results["test_accuracy"] > 0.9
    assert m["params"] == digits_run.results["params"]
    assert m["metrics"]["epochs"] == 3
    assert "conv1" in m["summary"] and f"{m['params']:,}" in m["summary"]  # the layer table and total


def test_predict_is_the_cli_answer(client, digits_run, tmp_path, capsys):
    """A drawn 7 posted as a file gets exactly the object `cnnlab predict --json` prints for that file."""
    path = tmp_path / "seven.png"
    path.write_bytes(drawn_png(SEVEN, ink=0, paper=255))  # dark ink on white paper, as a scan would be
    assert main(["predict", str(digits_run.path), str(path), "--json"]) == 0  # in-process: no torch re-import
    expected = json.loads(capsys.readouterr().out)[0]
    api = client.post("/predict", files={"file": (str(path), path.read_bytes(), "image/png")})
    assert api.status_code == 200
    assert api.json() == expected
    assert expected["label"] == "7" and expected["probability"] > 0.8


def test_json_pixels_go_the_same_way(client):
    png = drawn_png(ZERO)
    by_file = client.post("/predict?top_k=10", files={"file": ("zero.png", png, "image/png")}).json()
    grey = np.asarray(Image.open(io.BytesIO(png))).tolist()  # (280, 280)
    by_grey = client.post("/predict?top_k=10", json={"pixels": grey, "name": "zero"}).json()
    rgb = np.repeat(np.asarray(grey)[..., None], 3, axis=2).tolist()  # (280, 280, 3)
    by_rgb = client.post("/predict?top_k=10", json={"pixels": rgb}).json()
    assert by_file["label"] == "0"
    assert by_grey == {**by_file, "file": "zero"}
    assert by_rgb == {**by_file, "file": "pixels"}
    assert sum(t["probability"] for t in by_file["top_k"]) == pytest.approx(1, abs=1e-4)


def test_explain_returns_the_model_input_and_feature_maps(client, digits_run):
    png = drawn_png(SEVEN)
    r = client.post("/predict?explain=1", files={"file": ("seven.png", png, "image/png")}).json()
    assert r["label"] == "7"
    x = np.asarray(r["input"])
    expected = to_model_pixels(open_image(png), digits_run.meta)[0]  # the preprocessing `predict` uses
    assert x.shape == (28, 28) and np.abs(x - expected).max() < 1e-4
    # one block per conv layer, named "conv → ... → last layer before the next conv", with that layer's shape
    info = {i.name: i for i in digits_run.model.info}
    convs = [i.name for i in digits_run.model.info if i.type == "Conv2d"]
    assert [f["layer"].split(" → ")[0] for f in r["feature_maps"]] == convs
    assert [f["shape"] for f in r["feature_maps"]] == [list(info[f["layer"].split(" → ")[-1]].out_shape)
                                                       for f in r["feature_maps"]]
    for f in r["feature_maps"]:
        img = Image.open(io.BytesIO(base64.b64decode(f["png"].split(",", 1)[1])))
        rows, cols = f["grid"]
        c, h, w = f["shape"]
        assert rows * cols >= c > (rows - 1) * cols
        assert img.size == (cols * (w + 1) - 1, rows * (h + 1) - 1)  # tiles with 1 px gaps
        assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 20  # real activations, not flat


def test_batch_answers_each_file_like_predict(client):
    files = [("files", (n, drawn_png(s), "image/png")) for n, s in (("a7.png", SEVEN), ("b0.png", ZERO))]
    r = client.post("/predict/batch", files=files)
    assert r.status_code == 200
    assert [p["file"] for p in r.json()] == ["a7.png", "b0.png"]
    assert [p["label"] for p in r.json()] == ["7", "0"]
    single = client.post("/predict", files={"file": ("b0.png", drawn_png(ZERO), "image/png")}).json()
    assert r.json()[1] == single


def test_examples_are_real_test_images_it_mostly_gets_right(client):
    ex = client.get("/examples").json()["examples"]
    assert [e["label"] for e in ex] == [str(d) for d in range(10)] + ["0", "1"]  # round-robin over classes
    right = 0
    for e in ex:
        png = client.get(e["url"])
        assert png.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(png.content)).size == (28, 28)
        p = client.post("/predict", files={"file": ("x.png", png.content, "image/png")}).json()
        right += p["label"] == e["label"]
    assert right >= 10


def _chunks(n: int):
    for _ in range(n):
        yield b"x" * 500_000


def nan_tiff() -> bytes:
    """A float (mode F) TIFF, a format that can hold NaN and infinity, with some of each."""
    a = np.full((28, 28), 0.5, np.float32)
    a[2:6, 2:6], a[10, 10] = np.nan, np.inf
    buf = io.BytesIO()
    Image.fromarray(a, mode="F").save(buf, format="TIFF")
    return buf.getvalue()


PNG7 = drawn_png(SEVEN)
BAD = [  # (case, route, request kwargs, status, words the detail must contain)
    ("truncated png", "/predict", {"files": {"file": ("t.png", PNG7[:300], "image/png")}}, 400, "truncated"),
    ("text file", "/predict", {"files": {"file": ("notes.txt", b"hello, world", "text/plain")}}, 415,
     "notes.txt: not an image"),
    ("huge dimensions", "/predict", {"files": {"file": ("bomb.png", huge_png_header(), "image/png")}}, 413,
     "too many pixels"),
    ("empty body", "/predict", {"content": b""}, 415, "multipart/form-data"),
    ("empty file", "/predict", {"files": {"file": ("e.png", b"", "image/png")}}, 400,
     "e.png: the file is empty"),
    ("NaN pixels in a float TIFF", "/predict", {"files": {"file": ("n.tif", nan_tiff(), "image/tiff")}}, 400,
     "n.tif: some pixel values are NaN or infinite"),
    ("wrong field name", "/predict", {"files": {"image": ("a.png", PNG7, "image/png")}}, 422,
     "'file' is missing (fields sent: 'image')"),
    ("two files to /predict", "/predict", {"files": [("file", ("a.png", PNG7, "image/png"))] * 2}, 422,
     "/predict takes one image"),
    ("text field, not a file", "/predict", {"data": {"file": "seven"}, "files": {"x": ("x", b"x")}}, 422,
     "is text"),
    ("1-D pixels", "/predict", {"json": {"pixels": [1, 2, 3]}}, 422, "shape 3 is not an image"),
    ("4-D pixels", "/predict", {"json": {"pixels": [[[[1]]]]}}, 422, "shape 1x1x1x1"),
    ("ragged pixels", "/predict", {"json": {"pixels": [[1, 2], [3]]}}, 422, "not all the same length"),
    ("pixels out of range", "/predict", {"json": {"pixels": [[0, 300]]}}, 422, "0-255 (got 0 to 300)"),
    ("pixels not numbers", "/predict", {"json": {"pixels": [["a"]]}}, 422, "must be a number"),
    ("no pixels key", "/predict", {"json": {"image": [[1]]}}, 422, "pixels: Field required"),
    ("broken json", "/predict", {"content": b"{pixels", "headers": {"content-type": "application/json"}},
     422, "Invalid JSON"),
    ("wrong content type", "/predict", {"content": PNG7, "headers": {"content-type": "image/png"}}, 415,
     "'image/png' is not accepted"),
    ("content-length over limit", "/predict", {"content": b"x" * (2 * 2**20),
                                                "headers": {"content-type": "application/json"}},
     413, "limit of 1 MB"),
    ("chunked body over limit", "/predict",
     {"content": _chunks(5), "headers": {"content-type": "application/json"}}, 413, "limit of 1 MB"),
    ("top_k 0", "/predict?top_k=0", {"json": {"pixels": [[0]]}}, 422, "top_k: Input should be greater"),
    ("batch wrong field", "/predict/batch", {"files": {"file": ("a.png", PNG7, "image/png")}}, 422,
     "files: Field required"),
    ("batch with one text file", "/predict/batch",
     {"files": [("files", ("a.png", PNG7, "image/png")), ("files", ("b.txt", b"hi", "text/plain"))]}, 415,
     "b.txt: not an image"),
    ("batch too many files", "/predict/batch",
     {"files": [("files", (f"{i}.png", PNG7, "image/png")) for i in range(5)]}, 413, "at most 4 per batch"),
]


@pytest.mark.parametrize("case,route,kwargs,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_healthy(client, case, route, kwargs, status, words):
    r = client.post(route, **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and words in detail
    assert client.get("/health").status_code == 200


def test_openapi_describes_both_request_kinds(client):
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/model", "/health", "/examples"} <= set(spec["paths"])
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert client.get("/docs").status_code == 200


def test_concurrent_clients_get_no_server_errors(digits_run):
    """200 requests from 8 threads on a real uvicorn server: every good one answered alike, bad ones 4xx."""
    codes: list[int] = []
    labels: set[str] = set()
    lock = threading.Lock()

    def client_thread(url: str, k: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(25):
                if i % 10 == 9:
                    r = c.post("/predict", files={"file": ("t.png", PNG7[:200], "image/png")})
                else:
                    r = c.post("/predict", files={"file": ("seven.png", PNG7, "image/png")},
                               params={"explain": int(i % 3 == 0)})
                with lock:
                    codes.append(r.status_code)
                    if r.status_code == 200:
                        labels.add(r.json()["label"])

    with serve_in_thread(create_app(digits_run.path)) as url:
        threads = [threading.Thread(target=client_thread, args=(url, k)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert httpx.get(f"{url}/health").status_code == 200
    assert len(codes) == 200
    assert codes.count(200) == 184 and codes.count(400) == 16  # 2 truncated files per client
    assert labels == {"7"}


def test_serve_command_refuses_bad_run_and_busy_port(digits_run, tmp_path, capsys):
    """One `error:` line and exit 2, before uvicorn starts (test_web.py runs the command for real)."""
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "not a cnnlab run directory" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", str(digits_run.path), "--port", str(port)]) == 2
    assert f"--port {port}: cannot listen there" in capsys.readouterr().err
    assert main(["serve", str(digits_run.path), "--max-upload-mb", "0"]) == 2
    assert "--max-upload-mb: Input should be greater than 0" in capsys.readouterr().err


@pytest.mark.parametrize("flags,words", [
    (["--workers", "0"], "--workers 0: must be 1 or more"),
    (["--max-batch", "0"], "--max-batch: Input should be greater than or equal to 1"),
    (["--batch-wait-ms", "-1"], "--batch-wait-ms: Input should be greater than or equal to 0"),
    (["--client-timeout", "0"], "--client-timeout: Input should be greater than 0"),
    (["--drain-seconds", "-2"], "--drain-seconds: Input should be greater than or equal to 0"),
])
def test_serve_command_refuses_bad_serving_options(digits_run, flags, words, capsys):
    assert main(["serve", str(digits_run.path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1
