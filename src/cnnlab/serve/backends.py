"""Who runs the forward pass: PyTorch, or ONNX Runtime on the run's own ONNX export (`--backend`).

Both take the normalised batch (N, C, H, W) float32 and return softmax probabilities (N, K) as a float32
tensor, so the answer is formatted by the same `predict.answers` whichever ran it. Both run on one
dedicated thread (serve/batcher.py), one batch at a time.

Measured on the 2-vCPU AMD EPYC development VM, fastcnn on 28x28 inputs, one intra-op thread
(docs/serving.md has the table): PyTorch with channels-last weights ran a batch of 16 about 2x faster
than with the default layout, and ONNX Runtime ran batches of 1 and 16 about 2x faster again, with
probabilities within 5e-7 of PyTorch's.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Protocol

import torch

from ..data.catalog import cache_root
from ..export import INPUT, OUTPUT, export_onnx, weights_digest
from ..models import channels_last, predictor

log = logging.getLogger("cnnlab.serve")


class Backend(Protocol):
    name: str

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised float32 -> (N, K) softmax probabilities, float32 on the CPU."""
        ...


class TorchBackend:
    """The model itself, channels-last (oneDNN's fast conv and pooling kernels), in inference mode."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, tta: str = "none"):
        # A copy: the service keeps the original for the feature maps of `explain`, which walk its layers.
        self.model = predictor(channels_last(copy.deepcopy(model).eval()), tta)

    @torch.inference_mode()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x).float(), dim=1)


class OnnxBackend:
    """An ONNX Runtime session on the run's ONNX export (see `onnx_for`)."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # one: the other core decodes and serves HTTP
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.session.run([OUTPUT], {INPUT: x.numpy()})[0]
        return torch.softmax(torch.from_numpy(logits), dim=1)  # the same softmax as the torch backend


def onnx_for(run_dir: str | Path, model: torch.nn.Module) -> Path:
    """The ONNX file to serve for these weights: the run's own model.onnx when its "weights_sha256" matches
    them, else an export cached under ~/.cache/cnnlab/onnx/ by that digest (made now if missing)."""
    import onnx

    digest = weights_digest(model)
    src = Path(run_dir)
    own = (src if src.is_dir() else src.parent) / "model.onnx"
    if own.is_file():
        try:
            props = {p.key: p.value for p in onnx.load(str(own), load_external_data=False).metadata_props}
        except Exception:  # noqa: BLE001 -- a damaged or foreign file: not ours to trust, export afresh
            props = {}
        if props.get("weights_sha256") == digest:
            return own
    cached = cache_root() / "onnx" / f"{digest[:32]}.onnx"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s to ONNX for the onnxruntime backend: %s", src, cached)
        export_onnx(src, cached)  # atomic: concurrent workers each write a whole file, the last rename wins
    return cached


def load_backend(name: str, model: torch.nn.Module, run_dir: str | Path, threads: int = 1,
                 tta: str = "none") -> Backend:
    """The backend `--backend name` asks for (the ONNX export holds the model's test-time augmentation,
    `tta`, in its graph)."""
    backend: Backend = OnnxBackend(onnx_for(run_dir, model), threads) if name == "onnxruntime" \
        else TorchBackend(model, tta)
    return backend


def warm_up(backend: Backend, input_shape: tuple[int, ...], sizes: tuple[int, ...]) -> None:
    """Run each batch size once: oneDNN and ONNX Runtime build their kernels on first use, which would
    otherwise land on the first requests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in sizes:
            backend.probabilities(torch.zeros(n, *input_shape))

