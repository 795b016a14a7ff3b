"""POST /predict and /predict/batch: images in, `cnnlab predict --json` objects out.

The common request, one multipart file and no `explain`, is answered by serve/fastpath.py before it gets
here; these routes take everything else (JSON pixels, `explain`, anything unusual) and every error.
Both send each image through the service's batcher.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile as FormFile  # request.form() gives these

from .deps import ServiceDep, SettingsDep
from .service import ModelService, PixelsIn, decode_upload, pixels_to_image, validation_detail

router = APIRouter(tags=["predict"])


class TopK(BaseModel):
    label: str
    probability: float


class FeatureMap(BaseModel):
    layer: str  # e.g. "conv1 → bn1 → relu1"
    shape: list[int]  # (C, H, W) of the block's output
    channels_shown: int
    grid: list[int]  # [rows, cols] of tiles in the PNG
    png: str  # data:image/png;base64,...


class Prediction(BaseModel):
    file: str
    label: str
    probability: float
    top_k: list[TopK]
    input: list[Any] | None = None  # ?explain=1: the model input before normalisation, (H, W) or (H, W, C)
    feature_maps: list[FeatureMap] | None = None  # ?explain=1: one per conv block


class Error(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "a broken image file (e.g. truncated) or an empty body"},
    413: {"model": Error, "description": "body over --max-upload-mb, or an image with too many pixels"},
    415: {"model": Error, "description": "not an image, or a Content-Type other than multipart or JSON"},
    422: {"model": Error,
          "description": "wrong field name, bad query value, or a JSON array of the wrong shape"},
}
_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": PixelsIn.model_json_schema()},
}}}
TopKQuery = Annotated[int | None,
                      Query(ge=1, description="classes to list (default: the server's --top-k, 3)")]
ExplainQuery = Annotated[bool, Query(description="add `input` (what the model saw) and `feature_maps`")]


async def _answer(service: ModelService, source: bytes | PixelsIn, name: str, top_k: int,
                  explain: bool) -> dict:
    """One image through the batcher; the costly decodings (JSON arrays, `explain`) in the threadpool."""
    submit = service.batcher.submit
    if isinstance(source, PixelsIn):
        image = await run_in_threadpool(pixels_to_image, source, service.settings.max_side)
    elif explain:
        image = await run_in_threadpool(decode_upload, source, name)
    else:  # decoded on the inference thread, with the rest of its batch
        return {"file": name, **await submit(partial(service.prepare_upload, source, name), top_k)}
    if not explain:
        return {"file": name, **await submit(partial(service.prepare_image, image), top_k)}
    px, extra = await run_in_threadpool(service.explain, image)  # feature maps from the torch model
    return {"file": name, **await submit(lambda: px, top_k), **extra}


@router.post("/predict", response_model=Prediction, response_model_exclude_none=True, responses=ERRORS,
             openapi_extra=_BODY)
async def predict(request: Request, service: ServiceDep, settings: SettingsDep, top_k: TopKQuery = None,
                  explain: ExplainQuery = False) -> dict:
    """Classify one image: multipart field `file`, or JSON `{"pixels": [[...]]}` with values 0-255."""
    ctype = request.headers.get("content-type", "")
    source: bytes | PixelsIn
    if ctype.startswith("multipart/form-data"):
        async with request.form(max_files=settings.max_batch) as form:
            if len(form.getlist("file")) > 1:
                raise HTTPException(422, "several 'file' fields: /predict takes one image; send several to "
                                         "/predict/batch as repeated 'files' fields")
            upload = form.get("file")
            if not isinstance(upload, FormFile):
                got = ", ".join(repr(k) for k in form) or "none"
                what = "is text, not a file" if upload is not None else f"is missing (fields sent: {got})"
                raise HTTPException(422, f"multipart field 'file' {what}; "
                                         "send the image as a file in field 'file'")
            source, name = await upload.read(), upload.filename or "upload"
    elif ctype.startswith("application/json"):
        try:
            source = PixelsIn.model_validate_json(await request.body())
        except ValidationError as e:
            raise HTTPException(422, validation_detail(e.errors())) from None
        name = source.name
    else:
        raise HTTPException(415, f"Content-Type {ctype or '(none)'!r} is not accepted: "
                                 "send multipart/form-data "
                                 "with the image in field 'file', or application/json {\"pixels\": [[...]]}")
    return await _answer(service, source, name, top_k or settings.top_k, explain)


@router.post("/predict/batch", response_model=list[Prediction], response_model_exclude_none=True,
             responses=ERRORS)
async def predict_batch(service: ServiceDep, settings: SettingsDep,
                        files: Annotated[list[UploadFile], File(description="image files, field `files` "
                                                                            "repeated")],
                        top_k: TopKQuery = None) -> list[dict]:
    """Classify several images in one forward pass; one bad file fails the request and names itself."""
    if len(files) > settings.max_batch:
        raise HTTPException(413, f"{len(files)} files: at most {settings.max_batch} per batch; "
                                 "split the request")
    names = [f.filename or f"upload-{i}" for i, f in enumerate(files)]
    datas = [await f.read() for f in files]
    k = top_k or settings.top_k
    got = await asyncio.gather(*(service.batcher.submit(partial(service.prepare_upload, d, n), k)
                                 for d, n in zip(datas, names)), return_exceptions=True)
    bad = next((g for g in got if isinstance(g, BaseException)), None)
    if bad is not None:  # the first bad file in the order sent, as before
        raise bad
    return [{"file": n, **g} for n, g in zip(names, got)]
