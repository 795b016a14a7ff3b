"""The notebooks in examples/notebooks/, executed in a real Jupyter kernel (nbclient + ipykernel), and cnnlab's
behaviour in a notebook: the user's matplotlib backend untouched, rich display, progress bars, Ctrl-C.

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
        if c.cell_type == "code" and re.search(r"plt\.show\(\)|\.plot\(\)|\.show_\w+\(|_figure\(|_grid\(", c.source):
            assert _pngs(c) >= 1, f"no image from:\n{c.source}"


# --- the notebooks are committed clean ----------------------------------------------------------------

def test_every_notebook_is_committed_without_outputs():
    listed = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / p for p in listed.stdout.split()] or sorted(NOTEBOOKS.glob("*.ipynb"))
    assert len(paths) >= 3
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for c in nb.cells:
            if c.cell_type == "code":
                assert c.outputs == [] and c.execution_count is None, \
                    f"{path.name}: clear the outputs before committing (Jupyter: Edit > Clear Outputs of All Cells)"
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), f"{path.name}: no parameters cell"


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
