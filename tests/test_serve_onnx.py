"""`--backend onnxruntime`: real ONNX Runtime on the run's own export gives the torch backend's answers, and
the export is reused only while it matches the weights."""

from __future__ import annotations

import shutil
import warnings

import pytest
from test_serve import SEVEN, ZERO, drawn_png

from cnnlab.export import export_onnx, weights_digest
from cnnlab.serve import Settings, create_app
from cnnlab.serve.backends import OnnxBackend, onnx_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache, so exports land in tmp and nothing is reused from an earlier run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "cnnlab" / "onnx"


def _answers(app, uploads):
    with TestClient(app) as c:
        out = []
        for name, data in uploads:
            r = c.post("/predict?top_k=10", files={"file": (name, data, "image/png")})
            assert r.status_code == 200, r.text
            out.append(r.json())
        model = c.get("/model").json()["serving"]
    return out, model


@pytest.mark.parametrize("run_name", ["digits_run", "fashion_run"])
def test_onnxruntime_gives_the_torch_answers(request, run_name, cache):
    """Every class and every probability of the top 10, on real test images (and two drawn digits): the
    same classes in the same order, probabilities within 1e-4."""
    run = request.getfixturevalue(run_name)
    with TestClient(create_app(run.path)) as c:  # the run's own test images, served as PNGs
        uploads = [(f"{i}.png", c.get(f"/examples/{i}.png").content) for i in range(12)]
    uploads += [("seven.png", drawn_png(SEVEN)), ("zero.png", drawn_png(ZERO))]
    torch_answers, torch_serving = _answers(create_app(run.path), uploads)
    ort_answers, ort_serving = _answers(create_app(run.path, Settings(backend="onnxruntime")), uploads)
    assert (torch_serving["backend"], ort_serving["backend"]) == ("torch", "onnxruntime")
    assert len(list(cache.glob("*.onnx"))) == 1  # exported on the fly, into the cache
    worst = 0.0
    for t, o in zip(torch_answers, ort_answers):
        assert o["label"] == t["label"] and o["file"] == t["file"]
        assert [x["label"] for x in o["top_k"]] == [x["label"] for x in t["top_k"]]
        worst = max(worst, *(abs(x["probability"] - y["probability"])
                             for x, y in zip(o["top_k"], t["top_k"])))
    assert worst <= 1e-4
    assert len({a["label"] for a in torch_answers}) >= 5  # real, varied inputs, not one class 14 times


def test_the_export_is_reused_only_while_it_matches_the_weights(digits_run, fashion_run, tmp_path, cache):
    run = tmp_path / "run"
    shutil.copytree(digits_run.path, run)
    digest = weights_digest(digits_run.model)
    first = onnx_for(run, digits_run.model)  # no model.onnx beside the run: exported into the cache
    assert first == cache / f"{digest[:32]}.onnx" and first.is_file()
    assert onnx_for(run, digits_run.model) == first  # and found there next time
    own = export_onnx(run)  # `cnnlab export RUN --format onnx` writes RUN/model.onnx, with the digest
    assert own == run / "model.onnx" and onnx_for(run, digits_run.model) == own
    shutil.copy(export_onnx(fashion_run, tmp_path / "other.onnx"), own)  # another model's export
    assert onnx_for(run, digits_run.model) == first  # not served: its digest is not these weights'
    own.write_bytes(b"not onnx at all")
    assert onnx_for(run, digits_run.model) == first
    session = OnnxBackend(first).session
    assert session.get_modelmeta().custom_metadata_map["weights_sha256"] == digest
