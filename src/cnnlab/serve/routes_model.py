"""GET /model, /health and /examples: what is being served, and real test images to try it on."""

from __future__ import annotations

from fastapi import APIRouter, Response

from .deps import ServiceDep

router = APIRouter(tags=["model"])


@router.get("/health")
def health(service: ServiceDep) -> dict:
    """Liveness: 200 and the model's name while the server can answer."""
    return {"status": "ok", "model": service.name, "classes": len(service.meta.classes)}


@router.get("/model")
def model(service: ServiceDep) -> dict:
    """Architecture summary, classes, input shape, preprocessing style and the run's results.json."""
    return service.info()


@router.get("/examples")
def examples(service: ServiceDep) -> dict:
    """A few real test images of the model's data set (empty, with a note, when the data is not here)."""
    return service.examples()


@router.get("/examples/{index}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the test image, native size"}})
def example_png(index: int, service: ServiceDep) -> Response:
    return Response(service.example_png(index), media_type="image/png",
                    headers={"Cache-Control": "max-age=3600"})
