"""report.html, rendered in real headless Chromium: loads from disk alone, every section, every image."""

from __future__ import annotations

import re
import shutil

from conftest import ARTIFACTS
from playwright.sync_api import sync_playwright

from cnnlab.cli import main
from cnnlab.viz.report import SECTIONS

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def test_report_is_one_self_contained_page(fashion_run, tmp_path, capsys):
    run_dir = shutil.copytree(fashion_run.path, tmp_path / "run")  # the shared run stays as training left it
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page_html = out.read_text()
    # Nothing is fetched from elsewhere: every src/href is a data URI or an in-page anchor.
    refs = re.findall(r'(?:src|href)="([^"]*)"', page_html)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs), refs[:5]
    assert "<script" not in page_html and "http://" not in page_html and "https://" not in page_html
    # The pictures were drawn into the run on demand.
    for name in ("mistakes.png", "mistakes.csv", "filters_conv1.png", "feature_maps_avgpool2.png",
                 "attribution.png", "conv_arithmetic.png"):
        assert (run_dir / "inspect" / name).is_file()

    requests, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(out.as_uri(), wait_until="load")
            headings = page.locator("h2").all_inner_texts()
            images = page.evaluate("Array.from(document.images)"
                                   ".map(i => [i.alt, i.complete, i.naturalWidth])")
            tables = page.evaluate("""Array.from(document.querySelectorAll('section')).map(s =>
                [s.id, Array.from(s.querySelectorAll('tr')).map(r => r.innerText)])""")
            title = page.title()
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()

    assert failed == []
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert headings == SECTIONS
    assert title == "cnnlab report: lenet5"
    # loss, accuracy, confusion, mistakes, 3 filter grids, 5 feature-map layers, attribution, arithmetic
    assert len(images) == 14
    assert all(complete and width > 0 for _, complete, width in images), images
    alts = [a for a, _, _ in images]
    assert "conv3 output 120x1x1" in alts and "avgpool1 output 6x14x14" in alts
    # The per-class table is results.json's, class by class.
    rows = dict(tables)["per-class-metrics"]
    per = fashion_run.results["per_class"]
    assert len(rows) == 1 + len(per)
    for row, (c, m) in zip(rows[1:], per.items()):
        assert row.split("\t") == [c, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                                   str(m["support"])]
    acc = 100 * fashion_run.results["test_accuracy"]
    assert f"test accuracy {acc:.2f}%" in page_html


def test_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "not a cnnlab run directory" in capsys.readouterr().err
