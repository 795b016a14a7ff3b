"""GET /model, /health and /examples: what is being served, whether it is, and real test images to try."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .deps import ServiceDep

router = APIRouter(tags=["model"])


@router.get("/health", responses={503: {"description": "draining after SIGTERM: send new work elsewhere"}})
def health(request: Request, service: ServiceDep) -> JSONResponse:
    """Readiness: 200 and the model's name while serving; 503 `draining` once SIGTERM has been received."""
    draining = request.app.state.lifecycle.draining
    return JSONResponse({"status": "draining" if draining else "ok", "model": service.name,
                         "classes": len(service.meta.classes)}, status_code=503 if draining else 200)


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
