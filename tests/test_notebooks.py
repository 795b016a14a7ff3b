"""The notebooks in examples/notebooks/, executed in a real Jupyter kernel (nbclient + ipykernel), and
cnnlab's behaviour in a notebook: the backend untouched, rich display, progress bars, Ctrl-C.

Each notebook runs in a fresh kernel in a temporary copy of its folder, with its parameter cell (tagged
`parameters`) overridden by a cell of smaller values, as papermill does. The checks read the outputs a
reader would look at: images for plots, the summary table, the final accuracy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "examples" / "notebooks"
ARTIFACTS = ROOT / "test-artifacts"


def _execute(name: str, tmp: Path, params: str, timeout: int = 600):
    """Run examples/notebooks/<name> top to bottom in a fresh kernel, in a copy of its folder."""
    shutil.copytree(NOTEBOOKS, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("runs", "data"))
    nb = nbformat.read(tmp / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(params, metadata={"tags": ["injected-parameters"]}))
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp)}}).execute()
    finally:  # the executed notebook, to open and look at (test-artifacts/ is not committed)
        (ARTIFACTS / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, ARTIFACTS / "notebooks" / name)
    return nb


def _cell(nb, tag: str):
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


def _text(cell) -> str:
    """Everything a code cell printed or returned, as text (stdout, stderr, text/plain, text/html)."""
    parts = []
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts += [o.data.get("text/html", ""), o.data.get("text/plain", "")]
        elif o.output_type == "error":
            parts += o.traceback
    return "\n".join(parts)


def _mimes(cell) -> set[str]:
    return {m for o in cell.get("outputs", []) if o.output_type in ("execute_result", "display_data")
            for m in o.data}


def _pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def _accuracy(cell) -> float:
    return float(re.search(r"test accuracy (\d+\.\d+)%", _text(cell)).group(1))


def _plotting_cells_drew(nb) -> None:
    """Every cell that draws (plt.show(), run.plot(), run.show_*(), a teaching figure) shows an image."""
    for c in nb.cells:
        draws = r"plt\.show\(\)|\.plot\(\)|\.show_\w+\(|_figure\(|_grid\("
        if c.cell_type == "code" and re.search(draws, c.source):
            assert _pngs(c) >= 1, f"no image from:\n{c.source}"


# --- the notebooks are committed clean ----------------------------------------------------------------

def test_every_notebook_is_committed_without_outputs():
    listed = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    paths = [ROOT / p for p in listed.stdout.split()] or sorted(NOTEBOOKS.glob("*.ipynb"))
    assert len(paths) >= 3
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, (
                    f"{path.name}: clear the outputs before committing (Edit > Clear Outputs of All Cells)")
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert "parameters" in tags, f"{path.name}: no parameters cell"


def test_readme_links_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS.glob("*.ipynb"):
        assert f"examples/notebooks/{path.name}" in readme


# --- each set of notes, executed ----------------------------------------------------------------------

def test_mnist_notes_notebook(tmp_path):
    nb = _execute("000-mnist-notes.ipynb", tmp_path, "EPOCHS = 12\nEXERCISE_EPOCHS = 6")
    summary = _text(_cell(nb, "summary"))
    assert "text/html" in _mimes(_cell(nb, "summary"))
    assert "20·4·4 = 320" in summary and "320 → 10" in summary  # why in_features is 320
    assert _accuracy(_cell(nb, "accuracy")) >= 80.0
    assert "<script" in _text(_cell(nb, "animation"))  # the sliding kernel plays as HTML + JavaScript
    assert "padding 2, stride 1: 10 maps of 28x28" in _text(_cell(nb, "feature-maps"))  # "same" padding
    pool = _text(_cell(nb, "pooling"))
    peak, mean = (float(v) for v in re.search(r"ReLU: peak (\S+), mean (\S+)", pool).groups())
    assert f"max pooling: peak {peak:.2f}" in pool and f"average pooling: peak {peak:.2f}" not in pool
    assert "average pooling: peak" in pool and f"mean {mean:.3f}" in pool.split("average")[1]
    accs = [float(a) for a in re.findall(r"test accuracy (\d+\.\d+)%", _text(_cell(nb, "exercise")))]
    assert len(accs) == 2 and accs[1] >= 85.0
    _plotting_cells_drew(nb)


def test_maths_notes_notebook(tmp_path):
    nb = _execute("001-maths-notes.ipynb", tmp_path, "EPOCHS = 2\nTRAIN_IMAGES = 5000")
    diffs = [float(d) for d in re.findall(r"differ by at most (\S+)", _text(_cell(nb, "maths")))]
    assert len(diffs) >= 5 and max(diffs) < 1e-9  # NumPy engine = PyTorch, output and every gradient
    summary = _text(_cell(nb, "summary"))
    assert "16x32x32" in summary and "16·16·16 = 4096" in summary
    assert _accuracy(_cell(nb, "accuracy")) >= 60.0
    _plotting_cells_drew(nb)


def test_slides_notebook(tmp_path):
    nb = _execute("002-slides.ipynb", tmp_path, "CNN_EPOCHS = 8\nLENET_EPOCHS = 20")
    summary = _text(_cell(nb, "summary"))
    for shape in ("16x26x26", "16x13x13", "32x11x11", "32x5x5", "32·5·5 = 800"):  # the slides' comments
        assert shape in summary
    pooling = _text(_cell(nb, "pooling"))
    assert float(re.search(r"power p=1 = 4 x mean: largest difference (\S+)", pooling).group(1)) < 1e-6
    assert float(re.search(r"power p=16 vs max: largest difference (\S+)", pooling).group(1)) < 0.15
    split = _text(_cell(nb, "split"))
    shares = [float(s) for s in re.findall(r"\((\d+\.\d)% held back\)", split)]
    assert len(shares) == 10 and all(abs(s - 20) < 1.5 for s in shares)  # stratified: every class 20%
    assert re.search(r"CNNModel: test accuracy", _text(_cell(nb, "cnn-accuracy")))
    assert float(re.search(r"LeNet-5: test accuracy (\S+)%", _text(_cell(nb, "lenet"))).group(1)) > 95.0
    assert _mimes(_cell(nb, "explorer")) & {"application/vnd.jupyter.widget-view+json", "image/png"}
    _plotting_cells_drew(nb)


def test_own_photos_notebook(tmp_path):
    """Fine-tuning on a photo folder, at 96 px on 30 + 15 photos a class (the notebook's default: 224 px on
    120 + 60): the two phases, accuracy above training from scratch, what the model sees and where it looks,
    a prediction, and the ONNX file in ONNX Runtime."""
    nb = _execute("003-own-photos.ipynb", tmp_path,
                  "TRAIN_PHOTOS = 30\nTEST_PHOTOS = 15\nIMAGE_SIZE = 96\nEPOCHS = 2\nSCRATCH_EPOCHS = 10")
    assert "head: 20 epochs on cached features of 54 images" in _text(_cell(nb, "train"))  # phase 1
    lrs = [float(v) for v in re.findall(r"peak learning rate (\S+)", _text(_cell(nb, "phases")))]
    assert lrs == sorted(lrs) and len(lrs) == 4 and lrs[0] == pytest.approx(1e-5) and lrs[-1] == 1e-3
    assert "text/html" in _mimes(_cell(nb, "accuracy"))  # the results table
    tuned = _accuracy(_cell(nb, "accuracy"))
    assert tuned >= 80.0  # 93.33% measured (28 of 30 test photos)
    scratch, again = (float(a) for a in re.findall(r"test accuracy (\d+\.\d+)%", _text(_cell(nb, "compare"))))
    assert again == tuned and scratch < tuned - 10  # measured: 73.33% from scratch after 10 epochs
    for tag, images in (("augment", 1), ("mistakes", 1), ("feature-maps", 6), ("gradcam", 1), ("predict", 1)):
        assert _pngs(_cell(nb, tag)) == images, tag
    assert "inspect/attribution.png" in _text(_cell(nb, "gradcam"))
    predicted = re.findall(r": (grass|gravel) \(probability [01]\.\d+\); it is", _text(_cell(nb, "predict")))
    assert len(predicted) == 2
    onnx = _text(_cell(nb, "onnx"))
    assert "same class for 16 of 16" in onnx and "test images" in onnx  # real photos, not random inputs
    assert float(re.search(r"logits differ by at most (\S+)", onnx).group(1)) < 1e-4
    ort_label, ours = re.search(r"ONNX Runtime: (\w+)  \|  run\.predict: (\w+)",
                                _text(_cell(nb, "onnxruntime"))).groups()
    assert ort_label == ours
    _plotting_cells_drew(nb)


# --- cnnlab in a user's own notebook ------------------------------------------------------------------

def _notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_a_users_notebook_keeps_its_backend_and_draws_inline(tmp_path):
    """Import cnnlab, train, inspect and report; then plain pyplot must still draw inline. On the way: rich
    display, the widget progress bar, and without ipywidgets a text bar and no warning."""
    nb = _notebook(
        "import matplotlib\nprint('backend before:', matplotlib.get_backend())",
        "import cnnlab\nrun = cnnlab.train(model='lenet5', data='fashion-mnist', epochs=1, limit=600, "
        "out='runs/a', report=True)",
        "run",
        "cnnlab.summary('mnist-classifier')",
        "run.plot()",
        "run.show_mistakes(top=8)",
        "run.show_filters()",
        "run.show_feature_maps(3, layer='conv1')",
        # ipywidgets missing (as without the [notebooks] extra): a text bar, and no TqdmWarning
        "import sys, warnings\nwarnings.simplefilter('always')\nsys.modules['ipywidgets'] = None\n"
        "run2 = cnnlab.train(model='lenet5', data='fashion-mnist', epochs=1, limit=600, out='runs/b')",
        "import matplotlib.pyplot as plt\nprint('backend after:', matplotlib.get_backend())\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\nplt.show()",
    )
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    c = nb.cells
    before = re.search(r"backend before: (\S+)", _text(c[0])).group(1)
    assert "inline" in before
    assert f"backend after: {before}" in _text(c[-1])
    assert _pngs(c[-1]) == 1  # the user's own plt.show() drew
    assert "application/vnd.jupyter.widget-view+json" in _mimes(c[1])  # tqdm's notebook widget
    assert "text/html" in _mimes(c[2]) and "test accuracy" in _text(c[2])
    assert "text/html" in _mimes(c[3]) and "320 → 10" in _text(c[3])
    assert [_pngs(x) for x in c[4:8]] == [1, 1, 3, 1]  # plot, mistakes, lenet5's 3 conv layers, conv1's maps
    bar = _text(c[8])
    assert "epoch 1/1" in bar and "step" in bar
    assert "application/vnd.jupyter.widget-view+json" not in _mimes(c[8])
    assert "Warning" not in bar and "IProgress" not in bar
    assert (tmp_path / "runs" / "a" / "report.html").is_file()


def test_kernel_interrupt_saves_and_says_how_to_resume(tmp_path):
    """Ctrl-C (a kernel interrupt) during cnnlab.train: a checkpoint, one line saying how to resume from
    Python, and a kernel that carries on: the next cell resumes the run to the end."""
    from jupyter_client import KernelManager

    nb = _notebook(
        "import cnnlab",
        "run = cnnlab.train(model='lenet5', data='fashion-mnist', epochs=2, limit=4000, out='runs/x')",
        "run = cnnlab.train(resume='runs/x')\nprint('finished', run.finished, run.results['epochs'])",
    )
    km = KernelManager(kernel_name="python3")
    client = nbclient.NotebookClient(nb, km=km, timeout=300, allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    run_dir = tmp_path / "runs" / "x"

    def interrupt_once_training() -> None:
        deadline = time.monotonic() + 120
        # config.yaml is written once the StopFlag is in place, just before the first step
        while not (run_dir / "config.yaml").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        km.interrupt_kernel()

    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        t = threading.Thread(target=interrupt_once_training)
        t.start()
        client.execute_cell(nb.cells[1], 1)
        t.join()
        client.execute_cell(nb.cells[2], 2)
    err = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert len(err) == 1 and err[0].ename == "NotebookInterrupted"
    assert err[0].traceback == [f"Interrupted: {err[0].evalue}"]  # one line, no traceback
    assert "the state is saved in runs/x: resume with cnnlab.train(resume='runs/x')" in err[0].evalue
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    assert "finished True 2" in _text(nb.cells[2])
