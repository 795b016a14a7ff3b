"""A trained model in the formats the rest of the world runs: ONNX and TorchScript.

Both files take the *normalised* input (N, C, H, W) float32, N free, and return logits (N, K),
exactly like the PyTorch model. What a consumer needs to build that input -- mean, std, input
shape, preprocessing style, class names -- travels inside the file:

- ONNX: `metadata_props` (ONNX Runtime: `session.get_modelmeta().custom_metadata_map`), one key per
  constant as JSON text, plus "cnnlab" holding the full `ModelMeta`.
- TorchScript: the extra file "cnnlab.json" (`torch.jit.load(path, _extra_files={"cnnlab.json": ""})`).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from .data import load_data, normalize
from .data.channels import with_channels
from .errors import UserError
from .files import atomic_write
from .models import ModelMeta, predictor
from .run import Run, open_model

# Opset 17 (2022) is run by every ONNX Runtime since 1.12 and by most other runtimes (TensorRT, OpenCV,
# onnx.js); our layers (Conv, pooling incl. LpPool's decomposition, Gemm, tanh, BatchNorm) need nothing newer.
OPSET = 17
INPUT, OUTPUT = "input", "logits"
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXTRA_FILE = "cnnlab.json"


def load_for_export(run_or_weights: Run | str | Path) -> tuple[torch.nn.Module, ModelMeta, Path]:
    """(model on CPU in eval mode, meta, folder to write into) from a Run, a run directory or a .safetensors
    file."""
    if isinstance(run_or_weights, Run):
        model, meta = run_or_weights.load()
        return model, meta, run_or_weights.path
    model, meta, run = open_model(run_or_weights)
    return model, meta, run.path if run is not None else Path(run_or_weights).parent


def metadata(meta: ModelMeta) -> dict[str, str]:
    """The key -> text pairs stored in an exported file: each preprocessing constant on its own, as JSON."""
    return {
        "cnnlab": meta.to_json(),
        "classes": json.dumps(meta.classes),
        "mean": json.dumps(meta.mean),
        "std": json.dumps(meta.std),
        "input_shape": json.dumps(list(meta.input_shape)),  # [C, H, W]
        "style": meta.style,
        "input": "float32 (N, C, H, W): pixels scaled to [0, 1], then (x - mean) / std per channel",
        "output": "logits (N, classes); softmax gives probabilities",
    }


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers (names, shapes, dtypes, values): the same for the same
    weights whichever file they were loaded from. Stored in an ONNX export as "weights_sha256", so a reader
    (`cnnlab serve --backend onnxruntime`) can tell whether the file still matches the run."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def export_onnx(run_or_weights: Run | str | Path, out: str | Path | None = None, opset: int = OPSET) -> Path:
    """Write an ONNX model with a dynamic batch axis and the preprocessing in its metadata; returns the
    path."""
    import onnx

    model, meta, folder = load_for_export(run_or_weights)
    out = _out_path(out, folder, "onnx")
    buf = io.BytesIO()
    # torch >= 2.5 has both exporters and picks dynamo by default; older ones only have this one.
    kw = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the dynamo one, which needs the
        # onnxscript package; the old one ships inside torch and exports these layer stacks exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(predictor(model, meta.tta), (_example(meta, 2),), buf, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                          opset_version=opset, do_constant_folding=True, **kw)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {**metadata(meta), "weights_sha256": weights_digest(model)})
    proto.producer_name = "cnnlab"
    proto.doc_string = f"{meta.spec.get('name', 'model')} trained on {meta.data or 'unknown data'}; " \
                       f"classes {', '.join(meta.classes)}"
    onnx.checker.check_model(proto, full_check=True)  # structure, opset and shape inference
    atomic_write(out, lambda tmp: onnx.save(proto, tmp))
    return out


def export_torchscript(run_or_weights: Run | str | Path, out: str | Path | None = None) -> Path:
    """Write a traced TorchScript module with the metadata as the extra file "cnnlab.json"; returns the
    path."""
    model, meta, folder = load_for_export(run_or_weights)
    out = _out_path(out, folder, "torchscript")
    with warnings.catch_warnings():
        # torch.jit is in maintenance mode (deprecation warnings) but still what C++/mobile loaders read.
        # Tracing, not scripting: the layer stack has no control flow, and SpecNet's Python attributes
        # (spec dict, layer table) are not TorchScript types. check_inputs proves the batch axis stays free.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(predictor(model, meta.tta), _example(meta, 2),
                                 check_inputs=[(_example(meta, 1),), (_example(meta, 5),)])
        atomic_write(out, lambda tmp: torch.jit.save(traced, tmp, _extra_files={EXTRA_FILE: meta.to_json()}))
    return out


def export(run_or_weights: Run | str | Path, fmt: str = "onnx", out: str | Path | None = None) -> Path:
    """`cnnlab export`: fmt is "onnx" or "torchscript"."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: unknown; use onnx or torchscript")
    return export_onnx(run_or_weights, out) if fmt == "onnx" else export_torchscript(run_or_weights, out)


def run_exported(path: str | Path, x: torch.Tensor, fmt: str | None = None) -> np.ndarray:
    """Logits from an exported file, run by the engine a user would run it with (ONNX Runtime or torch.jit).

    fmt "onnx" or "torchscript"; by default taken from the file's suffix."""
    path = Path(path)
    if (fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")) == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run([OUTPUT], {INPUT: x.numpy().astype(np.float32)})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return module(x).numpy()


def check_export(path: str | Path, run_or_weights: Run | str | Path, n: int = 8, data_dir: str | None = None,
                 fmt: str | None = None) -> dict:
    """Compare an exported file with the PyTorch model on `n` test images of the run's data set.

    Falls back to random inputs when the data set is not on this machine. Returns max_abs_diff,
    same_class (count), n and source (what the inputs were)."""
    model, meta, _ = load_for_export(run_or_weights)
    x, source = sample_inputs(meta, n, data_dir)
    with torch.inference_mode():
        ref = predictor(model, meta.tta)(x).numpy()  # what the export computes: the model's predictions
    got = run_exported(path, x, fmt)
    return {"max_abs_diff": float(np.abs(got - ref).max()),
            "same_class": int((got.argmax(1) == ref.argmax(1)).sum()), "n": len(x), "source": source}


def sample_inputs(meta: ModelMeta, n: int = 8, data_dir: str | None = None) -> tuple[torch.Tensor, str]:
    """The first n test images of the model's data set, normalised; random ones if it cannot be loaded."""
    name = meta.data
    try:
        if not name:
            raise UserError("the model does not name its data set")
        ds = load_data(name, data_dir, download=False,
                       image_size=meta.input_shape[1] if Path(name).is_dir() else None)
        x = ds.test.x[:n]
        if x.shape[1] == 1 and meta.spec.get("backbone"):  # grey photos, repeated as training did
            x = with_channels(x, meta.input_shape[0])
        if tuple(x.shape[1:]) == tuple(meta.input_shape) and len(x) > 0:
            return normalize(x.float() / 255, meta), f"{len(x)} {name} test images"
    except (UserError, OSError, ValueError):
        pass  # not on this machine: the comparison still means something on random inputs
    return _example(meta, n), f"{n} random inputs ({name or 'the data set'} not found here)"


def _example(meta: ModelMeta, n: int) -> torch.Tensor:
    return torch.randn(n, *meta.input_shape, generator=torch.Generator().manual_seed(0))


def _out_path(out: str | Path | None, folder: Path, fmt: str) -> Path:
    default = "model" + FORMATS[fmt]
    if out is None:
        return folder / default
    out = Path(out)
    if out.is_dir():
        return out / default
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; "
                        "create it or pick another path")
    return out
