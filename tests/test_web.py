"""The draw-a-digit page in real headless Chromium, against `cnnlab serve` running on 127.0.0.1.

Digits are drawn stroke by stroke with the mouse (and once with real touch events); the test reads
what the page shows, checks it against the API for the same pixels, and saves screenshots to
test-artifacts/web-*.png.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from cnnlab.serve import create_app, serve_in_thread
from cnnlab.serve.process import serve_process

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Strokes in pad coordinates (0-1). The "1" has its flag: the run's training digits come from a font
# that writes it so; a bare bar is a coin toss between 0 and 1 for this small synthetic-trained model.
DIGITS = {
    "1": [[(0.38, 0.32), (0.54, 0.18), (0.54, 0.82)]],
    "7": [[(0.3, 0.2), (0.72, 0.2), (0.42, 0.82)]],
    "0": [[(0.5 + 0.2 * math.cos(t), 0.5 + 0.32 * math.sin(t))
           for t in (2 * math.pi * k / 24 for k in range(25))]],
    "4": [[(0.55, 0.18), (0.28, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.85)]],
}
IDLE = "() => window.cnnlab.answered === window.cnnlab.drawn && !window.cnnlab.busy"
SEEN_PIXELS = """() => { const c = document.getElementById('seen');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 32) lit++;
  return {w: c.width, h: c.height, lit}; }"""
MAP_PIXELS = """() => [...document.querySelectorAll('#maps img')].map(img => {
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data; const colours = new Set();
  for (let i = 0; i < d.length; i += 4) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return {w: c.width, h: c.height, colours: colours.size}; })"""
MAPS_LOADED = ("() => { const m = [...document.querySelectorAll('#maps img')]; "
               "return m.length > 0 && m.every(i => i.complete && i.naturalWidth > 0); }")


@pytest.fixture(scope="module")
def server(digits_run, tmp_path_factory):
    """`python -m cnnlab serve RUN --port P` as a user starts it, in its own process."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_process(digits_run.path, log=log, env={"OMP_NUM_THREADS": "1"}, timeout=90) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1200, "height": 1000}, has_touch=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server)
    pg.wait_for_function("() => window.cnnlab && window.cnnlab.model")
    yield pg
    ctx.close()
    assert not errors, errors


def _pad_point(page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#pad").bounding_box()
    return box["x"] + x * box["width"], box["y"] + y * box["height"]


def draw(page, strokes) -> None:
    """Mouse strokes, each point reached in several moves, as a hand would."""
    for stroke in strokes:
        page.mouse.move(*_pad_point(page, *stroke[0]))
        page.mouse.down()
        for pt in stroke[1:]:
            page.mouse.move(*_pad_point(page, *pt), steps=4)
        page.mouse.up()


def shown(page) -> tuple[str, float]:
    page.wait_for_function(IDLE)
    page.wait_for_function("() => window.cnnlab.predictions > 0")
    return page.text_content("#pred-label"), float(page.text_content("#pred-prob").rstrip("%"))


def api_answer(url: str, png: bytes) -> dict:
    return httpx.post(f"{url}/predict", files={"file": ("pad.png", png, "image/png")}).json()


def pad_png(page) -> bytes:
    return base64.b64decode(page.evaluate("() => document.getElementById('pad').toDataURL('image/png')")
                            .split(",", 1)[1])


def test_page_shows_the_model(page):
    facts = page.text_content("#model-facts")
    assert "test accuracy" in facts and "input 1×28×28" in facts and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in facts
    assert page.is_visible("#pad") and page.is_visible("label.button:has(#upload)")
    assert page.locator("#examples button").count() == 12


def test_drawn_digits_are_recognised_with_input_and_feature_maps(page, server, digits_run):
    for digit, strokes in DIGITS.items():
        page.click("#clear")
        draw(page, strokes)
        label, pct = shown(page)
        api = api_answer(server, pad_png(page))  # the same pixels straight to the API
        assert (label, pct) == (api["label"], round(100 * api["probability"], 1))
        assert label == digit, f"drew {digit}, page says {label} ({pct}%)"
        bars = page.locator("#bars .bar-row")
        assert bars.count() == 10
        seen = page.evaluate(SEEN_PIXELS)
        assert (seen["w"], seen["h"]) == (28, 28) and 40 < seen["lit"] < 400  # a digit, not blank or full
        page.wait_for_function(MAPS_LOADED)
        maps = page.evaluate(MAP_PIXELS)
        n_convs = sum(i.type == "Conv2d" for i in digits_run.model.info)
        assert len(maps) == n_convs and all(m["colours"] > 20 for m in maps)
        page.screenshot(path=str(ARTIFACTS / f"web-draw-{digit}.png"), full_page=True)


def test_prediction_updates_while_the_pen_is_down(page):
    page.click("#clear")
    page.mouse.move(*_pad_point(page, 0.3, 0.2))
    page.mouse.down()
    page.mouse.move(*_pad_point(page, 0.72, 0.2), steps=6)
    page.wait_for_function("() => window.cnnlab.predictions >= 1")  # answered mid-stroke
    first = page.evaluate("window.cnnlab.predictions")
    page.mouse.move(*_pad_point(page, 0.42, 0.82), steps=6)
    page.wait_for_function(f"() => window.cnnlab.predictions > {first}")
    page.mouse.up()
    assert shown(page)[0] == "7"
    page.click("#clear")
    assert page.text_content("#pred-label") == "–" and page.locator("#bars .bar-row").count() == 0


def test_touch_drawing(page):
    """Real touch input through Chrome DevTools: the pad takes pointer events from a finger too."""
    cdp = page.context.new_cdp_session(page)
    page.click("#clear")
    pts = [(0.3, 0.2), (0.5, 0.2), (0.72, 0.2), (0.6, 0.4), (0.5, 0.6), (0.42, 0.82)]
    kinds = ["touchStart"] + ["touchMove"] * (len(pts) - 1)
    for kind, (x, y) in zip(kinds, pts):
        px, py = _pad_point(page, x, y)
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": px, "y": py}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert shown(page)[0] == "7"


def test_upload_a_file(page, server, tmp_path):
    """A scan-like file (dark ink on white paper) through the upload button."""
    from test_serve import drawn_png

    path = tmp_path / "my-seven.png"
    path.write_bytes(drawn_png(DIGITS["7"], size=400, width=30, ink=20, paper=235))
    page.set_input_files("#upload", str(path))
    page.wait_for_function("() => window.cnnlab.predictions > 0")
    assert page.text_content("#pred-label") == api_answer(server, path.read_bytes())["label"] == "7"
    assert page.is_visible("#preview") and not page.is_visible("#pad")  # the file takes the pad's place
    page.wait_for_function(MAPS_LOADED)
    page.screenshot(path=str(ARTIFACTS / "web-upload.png"), full_page=True)
    page.click("#clear")
    assert page.is_visible("#pad") and not page.is_visible("#preview")


def test_fashion_model_offers_test_images_instead_of_drawing(browser, fashion_run):
    with serve_in_thread(create_app(fashion_run.path)) as url:
        pg = browser.new_page(viewport={"width": 1200, "height": 1000})
        pg.goto(url)
        pg.wait_for_selector("#examples button")
        assert not pg.is_visible("#pad") and pg.text_content("#input-title") == "Try an image"
        buttons = pg.locator("#examples button")
        assert buttons.count() == 12
        right = 0
        for i in (0, 1, 8):  # T-shirt/top, Trouser, Bag: what a lightly trained LeNet-5 tells apart
            before = pg.evaluate("window.cnnlab.predictions")
            buttons.nth(i).click()
            pg.wait_for_function(f"() => window.cnnlab.predictions > {before}")
            truth = pg.text_content("#truth").removeprefix("true label: ")
            right += pg.text_content("#pred-label") == truth
        assert right >= 2
        assert pg.evaluate(SEEN_PIXELS)["lit"] > 100
        pg.screenshot(path=str(ARTIFACTS / "web-fashion.png"), full_page=True)
        pg.close()


def test_photo_model_takes_an_uploaded_photo(browser, photo_run, photo_dir):
    """A fine-tuned backbone: no drawing pad, an upload, the model's 96x96 input and its stages' maps."""
    with serve_in_thread(create_app(photo_run.path)) as url:
        pg = browser.new_page(viewport={"width": 1200, "height": 1000})
        pg.goto(url)
        pg.wait_for_function("() => window.cnnlab && window.cnnlab.model")
        assert not pg.is_visible("#pad") and pg.is_visible("#upload-label")
        photo = sorted((photo_dir / "test" / "grass").glob("*.jpg"))[0]
        pg.set_input_files("#upload", str(photo))
        pg.wait_for_function("() => window.cnnlab.predictions > 0")
        assert pg.text_content("#pred-label") == photo_run.predict([photo])[0]["label"]
        assert pg.evaluate(SEEN_PIXELS)["w"] == 96
        pg.wait_for_function(MAPS_LOADED)
        assert pg.locator("#maps figcaption").first.text_content().startswith("blocks.1: 24×24×24")
        pg.screenshot(path=str(ARTIFACTS / "web-photo.png"), full_page=True)
        pg.close()
