"""How runs, results and summaries show in a notebook (their `_repr_html_`), checked without a kernel;
tests/test_notebooks.py checks the same in a real one."""

from __future__ import annotations

import re

import cnnlab


def test_summary_is_the_text_table_and_an_html_table():
    s = cnnlab.summary("mnist-classifier")
    assert str(s) == repr(s) and "20·4·4 = 320" in str(s)
    html = s._repr_html_()
    assert html.count("<tr>") == 1 + 1 + 8  # header, input, 8 layers
    assert re.search(r"<td[^>]*>flatten1</td>.*?<td[^>]*>20·4·4 = 320</td>", html)
    assert "parameters: 8,490" in html
    assert s.rows[-1]["layer"] == "fc1" and s.rows[-1]["how the shape follows"] == "320 → 10"
    assert s.totals["params"] == 8490


def test_run_and_results_show_as_tables(fashion_run):
    html = fashion_run._repr_html_()
    acc = fashion_run.results["test_accuracy"]
    assert "finished" in html and f"{100 * acc:.2f}%" in html and str(fashion_run.path) in html
    res = fashion_run.results._repr_html_()
    assert "T-shirt/top" in res and res.count("<tr>") >= 10 + 1 + 5


def test_show_methods_return_figures(fashion_run):
    assert len(fashion_run.show_filters()) == 3  # lenet5's three conv layers
    maps = fashion_run.show_feature_maps(2, layer="conv2")
    assert len(maps) == 1 and "conv2" in maps[0]._suptitle.get_text()
    assert "misclassified" in fashion_run.show_mistakes(top=4)._suptitle.get_text()
