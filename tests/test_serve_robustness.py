"""An API that survives anything, measured against `cnnlab serve` on 127.0.0.1: a soak of good and malformed
requests, hypothesis-generated uploads, and slow clients. Every loop here is bounded in count and time.

The default run keeps each to a few seconds; `pytest -m slow` runs the full sizes (20,000 soak requests,
2,000 fuzzed uploads) and asserts the same properties.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_serve import SEVEN, drawn_png, huge_png_header, png_bytes

from cnnlab.serve import Settings, create_app, serve_in_thread
from cnnlab.serve.process import serve_process


def _request(**kw) -> tuple[dict, bytes]:
    """Headers and body exactly as httpx would send them (multipart, JSON, raw), to replay fast."""
    req = httpx.Request("POST", "http://x/", **kw)
    body = req.read()
    return {k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length")}, body


def _file(name: str, data: bytes, ctype: str = "image/png") -> tuple[dict, bytes]:
    return _request(files={"file": (name, data, ctype)})


def _nan_tiff() -> bytes:
    a = np.full((28, 28), 0.5, np.float32)
    a[3:9, 3:9] = np.nan
    buf = io.BytesIO()
    Image.fromarray(a, mode="F").save(buf, format="TIFF")
    return buf.getvalue()


def _as(fmt: str, png: bytes, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


PNG7 = drawn_png(SEVEN)
# (case, path, (headers, body), the status it must get). Half of a cycle is good traffic.
GOOD = [
    ("png", "/predict", _file("seven.png", PNG7), 200),
    ("jpeg", "/predict?top_k=5", _file("seven.jpg", _as("JPEG", PNG7), "image/jpeg"), 200),
    ("gif", "/predict", _file("seven.gif", _as("GIF", PNG7, "P"), "image/gif"), 200),
    ("pixels", "/predict", _request(json={"pixels": np.asarray(Image.open(io.BytesIO(PNG7)).resize((28, 28)))
                                          .tolist()}), 200),
    ("batch", "/predict/batch", _request(files=[("files", ("a.png", PNG7, "image/png"))] * 2), 200),
    ("explain", "/predict?explain=1", _file("seven.png", PNG7), 200),
]
MALFORMED = [
    ("truncated", "/predict", _file("t.png", PNG7[:300]), 400),
    ("text", "/predict", _file("notes.txt", b"hello, world", "text/plain"), 415),
    ("huge dimensions", "/predict", _file("bomb.png", huge_png_header()), 413),
    ("wrong field", "/predict", _request(files={"image": ("a.png", PNG7, "image/png")}), 422),
    ("empty body", "/predict", ({}, b""), 415),
    ("empty file", "/predict", _file("e.png", b""), 400),
    ("NaN pixels", "/predict", ({"content-type": "application/json"}, b'{"pixels": [[NaN, 0], [0, 0]]}'),
     422),
    ("NaN tiff", "/predict", _file("nan.tif", _nan_tiff(), "image/tiff"), 400),
    ("broken json", "/predict", ({"content-type": "application/json"}, b'{"pixels": [[1, 2'), 422),
    ("over the size limit", "/predict", ({"content-type": "application/json",
                                          "content-length": str(20 * 2**20)}, b"x" * 100), 413),
    ("batch with a text file", "/predict/batch",
     _request(files=[("files", ("a.png", PNG7, "image/png")), ("files", ("b.txt", b"hi", "text/plain"))]),
     415),
]
CYCLE = [c for pair in zip(GOOD * 2, MALFORMED + MALFORMED[:1]) for c in pair]  # good and bad alternate


@pytest.fixture(scope="module")
def server(digits_run, tmp_path_factory):
    """`cnnlab serve` in its own process: its memory is measured and a crash would show."""
    log = tmp_path_factory.mktemp("robust") / "serve.log"
    with serve_process(digits_run.path, log=log, env={"OMP_NUM_THREADS": "1"}, timeout=180) as url:
        pid = httpx.get(f"{url}/model").json()["serving"]["pid"]
        yield url, pid
    assert "Traceback" not in log.read_text()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _soak(url: str, n: int, clients: int = 8) -> Counter:
    """n requests of CYCLE from `clients` keep-alive connections; (case, status) -> count."""
    host, port = url.removeprefix("http://").split(":")
    seen: Counter = Counter()
    lock = threading.Lock()
    counter = iter(range(n))

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        local: Counter = Counter()
        for i in counter:  # next() on a shared range iterator is atomic under the GIL
            case, path, (headers, body), _ = CYCLE[i % len(CYCLE)]
            try:
                conn.request("POST", path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                local[case, r.status] += 1
            except (OSError, http.client.HTTPException) as e:
                local[case, type(e).__name__] += 1
                conn.close()
        conn.close()
        with lock:
            seen.update(local)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return seen


def _check_soak(url: str, pid: int, n: int) -> None:
    warm = _soak(url, max(len(CYCLE) * 10, n // 10))  # every case, many times: caches and pools filled
    rss_warm = _rss_mb(pid)
    t = time.monotonic()
    seen = _soak(url, n)
    seconds = time.monotonic() - t
    rss_after = _rss_mb(pid)
    growth = 100 * (rss_after / rss_warm - 1)
    print(f"\nsoak: {n:,} requests in {seconds:.1f} s ({n / seconds:.0f}/s, 8 clients); resident memory "
          f"{rss_warm:.0f} MB after warm-up, {rss_after:.0f} MB after ({growth:+.1f} %); "
          f"answers {dict(Counter(status for (_, status) in seen.elements()))}")
    expected = {case: status for case, _, _, status in GOOD + MALFORMED}
    wrong = {k: v for k, v in (warm + seen).items() if expected[k[0]] != k[1]}
    assert not wrong, f"unexpected answers (case, status): {wrong}"
    assert sum(seen.values()) == n
    assert sum(v for (case, _), v in seen.items() if case in dict((m[0], 1) for m in MALFORMED)) >= n // 2 - 1
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert rss_after <= 1.10 * rss_warm, f"resident memory grew from {rss_warm:.0f} MB to {rss_after:.0f} MB"


def test_soak_mixed_traffic(server):
    """2,000 requests, half malformed: zero 5xx, each malformed one its 4xx, healthy after, RSS within 10%."""
    _check_soak(*server, 2_000)


@pytest.mark.slow
def test_soak_mixed_traffic_20000(server):
    _check_soak(*server, 20_000)


# --- fuzzing ---------------------------------------------------------------------------------------------

def _seeds() -> list[bytes]:
    """Valid small files in many formats and modes, to be mutated."""
    base = Image.open(io.BytesIO(PNG7)).resize((40, 30))
    out = []
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"):
        for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
            buf = io.BytesIO()
            try:
                base.convert(mode).save(buf, format=fmt)
            except (OSError, ValueError, KeyError):
                continue  # this format cannot hold this mode
            out.append(buf.getvalue())
    return out


SEEDS = _seeds()


def _gif_header(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x80\x00\x00" + b"\x00" * 6 + b",\x00\x00\x00\x00" \
        + struct.pack("<HH", w, h) + b"\x00\x02\x02D\x01\x00;"


def _bmp_header(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 12, 0, 0, 54) + info + b"\x00" * 12


@st.composite
def uploads(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "dimensions", "image"]))
    if kind == "random":
        return draw(st.binary(max_size=3000))
    if kind == "mutated":
        data = bytearray(draw(st.sampled_from(SEEDS)))
        for _ in range(draw(st.integers(1, 8))):
            op = draw(st.sampled_from(["flip", "cut", "insert", "dims"]))
            at = draw(st.integers(0, max(0, len(data) - 1)))
            if op == "flip" and data:
                data[at] = draw(st.integers(0, 255))
            elif op == "cut":
                del data[at:at + draw(st.integers(1, 200))]
            elif op == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=50))
            elif len(data) > 24:  # overwrite what is width/height in a PNG header with any 32-bit value
                w, h = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
                data[16:24] = struct.pack(">II", w, h)
        return bytes(data)
    if kind == "dimensions":
        w, h = draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1))
        maker = draw(st.sampled_from(["png", "gif", "bmp"]))
        if maker == "png":
            return huge_png_header(w, h)
        return _gif_header(w % 65536, h % 65536) if maker == "gif" else _bmp_header(w, -h if h % 2 else h)
    w = draw(st.sampled_from([1, 2, 3, 7, 28, 100, 1000, 5000]))
    h = draw(st.sampled_from([1, 2, 3, 7, 28, 100, 1000, 5000] if w < 1000 else [1, 2, 7, 28, 100, 800]))
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    try:
        img.save(buf, format=draw(st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"])))
    except (OSError, ValueError, KeyError):
        return png_bytes(img.convert("L"))
    return buf.getvalue()


_pixel = st.one_of(st.integers(-10, 300), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                   st.text(max_size=3), st.booleans())
pixel_arrays = st.recursive(_pixel, lambda inner: st.lists(inner, max_size=6), max_leaves=60)


def _fuzz(url: str, data: bytes | None, pixels: object = None) -> None:
    with httpx.Client(base_url=url, timeout=20) as c:  # a hang fails as a timeout
        if data is not None:
            r = c.post("/predict", files={"file": ("fuzz.bin", data, "application/octet-stream")})
        else:
            r = c.post("/predict", content=json.dumps({"pixels": pixels}),
                       headers={"content-type": "application/json"})
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code == 200:
        assert 0 <= r.json()["probability"] <= 1
    else:
        assert isinstance(r.json()["detail"], str)


def _fuzz_settings(n: int, derandomize: bool):
    return settings(max_examples=n, deadline=None, database=None, derandomize=derandomize,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@_fuzz_settings(150, derandomize=True)
@given(data=uploads())
def test_fuzzed_uploads_get_200_or_4xx(server, data):
    _fuzz(server[0], data)


@_fuzz_settings(60, derandomize=True)
@given(pixels=pixel_arrays)
def test_fuzzed_pixel_arrays_get_200_or_4xx(server, pixels):
    _fuzz(server[0], None, pixels)


@pytest.mark.slow
@_fuzz_settings(2_000, derandomize=False)
@given(data=uploads())
def test_fuzzed_uploads_2000(server, data):
    _fuzz(server[0], data)


def test_the_server_survived_the_fuzzing(server):
    url, pid = server
    assert httpx.get(f"{url}/health").status_code == 200
    assert Path(f"/proc/{pid}").exists()


# --- slow clients ----------------------------------------------------------------------------------------

def _slow(port: int, first: bytes, trickle: bytes, until: float, out: dict, key: str) -> None:
    """Send `first`, then one byte of `trickle` every 0.2 s, reading all the while, until the server closes
    the connection or `until`; out[key] = (seconds held, what the server sent)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.2)
    t0 = time.monotonic()
    reply, rest = b"", list(trickle)
    try:
        s.sendall(first)
        while time.monotonic() < until:
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break  # closed by the server
                reply += chunk
            except TimeoutError:
                pass
            if rest:
                s.sendall(bytes([rest.pop(0)]))
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        s.close()
    out[key] = (time.monotonic() - t0, reply)


def test_slow_clients_are_cut_off_without_holding_up_the_others(digits_run):
    timeout = 3.0
    app = create_app(digits_run.path, Settings(client_timeout=timeout))
    body = _file("seven.png", PNG7)[1]
    ctype = _file("seven.png", PNG7)[0]["content-type"]
    results: dict[str, tuple[float, bytes]] = {}
    with serve_in_thread(app) as url:
        port = int(url.rsplit(":", 1)[1])
        head = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        until = time.monotonic() + 4 * timeout
        slow = [("body", head + body[:20], body[20:]),  # the body trickles: 408 after the timeout
                ("head", b"POST /predict HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n" * 100),  # headers trickle
                ("silent", b"", b"")]  # connects and says nothing
        threads = [threading.Thread(target=_slow, args=(port, first, trickle, until, results, f"{kind}{i}"))
                   for kind, first, trickle in slow for i in range(6)]
        start = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(0.3)
        done: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as c:  # a normal client, meanwhile
            for _ in range(20):
                r = c.post("/predict", files={"file": ("seven.png", PNG7, "image/png")})
                assert r.status_code == 200 and r.json()["label"] == "7"
                done.append(time.monotonic() - start)
        for t in threads:
            t.join(timeout=6 * timeout)
        assert httpx.get(f"{url}/health").status_code == 200
    assert max(done) < timeout  # all 20 answered while the slow clients were still connected
    assert len(results) == 18
    for key, (held, reply) in results.items():
        assert timeout - 0.5 < held < 3 * timeout, (key, held)  # cut off by the server, on time
        if key.startswith("body"):
            assert reply.startswith(b"HTTP/1.1 408") and b"did not arrive within 3 s" in reply, reply
        else:
            assert reply == b"", reply  # no request yet: the connection is closed without an answer
