"""Server settings: one validated place, set from `cnnlab serve` flags or by hand in Python."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

BACKENDS = ("torch", "onnxruntime")


class Settings(BaseModel):
    """What a served app needs beyond the run directory. Every `cnnlab serve` flag maps to one field."""

    backend: Literal["torch", "onnxruntime"] = Field(
        "torch", description="who runs the forward pass: PyTorch, or ONNX Runtime on the run's ONNX export")
    max_batch: int = Field(64, ge=1, le=1024, description="most images in one forward pass: /predict "
                                                          "requests batched together, or files in one "
                                                          "/predict/batch request")
    batch_wait_ms: float = Field(2.0, ge=0, le=1000, description="how long a batch may wait for requests "
                                                                 "already being received (a lone request "
                                                                 "never waits)")
    max_upload_mb: float = Field(10.0, gt=0, description="request bodies above this many MB get 413")
    client_timeout: float = Field(10.0, gt=0, description="a client must send each request's head, then "
                                                          "its body, within this many seconds; else the "
                                                          "connection is closed (408 for a late body)")
    drain_seconds: float = Field(0.0, ge=0, description="after SIGTERM: seconds to keep serving while "
                                                        "/health says 503 draining, before in-flight "
                                                        "requests are finished and the server exits")
    max_side: int = Field(4096, ge=28, description="most rows or columns in a JSON pixel array")
    top_k: int = Field(3, ge=1, description="classes listed per image when ?top_k= is not given")
    threads: int = Field(1, ge=1, description="intra-op threads of the forward pass; the event loop and "
                                              "the decoding need the other core")
    examples: int = Field(12, ge=0, description="test images offered by /examples")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
