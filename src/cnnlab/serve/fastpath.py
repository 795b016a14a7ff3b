"""The common request, answered lean: `POST /predict` with one multipart file and at most `?top_k=N`.

Profiled under 16 concurrent clients (py-spy, samples holding the GIL; docs/serving.md), FastAPI's own
work for this one request came to about ten times the cost of decoding and predicting a 28x28 PNG:
dependency resolution, the threadpool hop, python-multipart's parser, response validation. This ASGI
middleware answers the common case without any of it: it reads the body, takes the file out of it with a
few `bytes.find` calls, hands it to the batcher and writes the JSON itself.

It only answers what it fully understands. Anything else -- another content type, `explain`, another
query parameter, a second part, a field that is not a file named `file`, a header it does not expect --
is passed, body included, to the FastAPI route, which gives the same answer or the same 4xx as always.
Image errors come from the same `decode_upload`, so a bad file gets the same status and detail either way.
"""

from __future__ import annotations

import json
import re
from functools import partial

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .limits import reply
from .service import ModelService

_BOUNDARY = re.compile(rb"\s*boundary=(\"?)([0-9A-Za-z'()+_,\-./:=?]{1,70})\1\s*", re.I)
# Content-Disposition of the one part we take: form-data with a name and a filename, plain quoted values.
_DISPOSITION = re.compile(rb'form-data(?:\s*;\s*(?:name|filename)="[^"\\\r\n]*")+\s*', re.I)
_PARAM = re.compile(rb'(name|filename)="([^"\\\r\n]*)"', re.I)


def lean_upload(content_type: bytes, body: bytes) -> tuple[str, bytes] | None:
    """(filename, data) of a multipart body holding exactly one part, a file in field "file"; else None."""
    kind, _, params = content_type.partition(b";")
    m = _BOUNDARY.fullmatch(params)
    if kind.strip().lower() != b"multipart/form-data" or m is None:
        return None
    delim = b"--" + m.group(2)
    if not body.startswith(delim + b"\r\n"):
        return None
    head_end = body.find(b"\r\n\r\n", len(delim))
    if head_end < 0:
        return None
    end = body.find(b"\r\n" + delim, head_end + 4)  # the data cannot contain the delimiter (RFC 2046)
    if end < 0 or body[end + 2 + len(delim):] not in (b"--", b"--\r\n"):
        return None  # another part follows, or the body does not end where a single part would
    filename = None
    for line in body[len(delim) + 2:head_end].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        name = name.lower()
        if not sep or name.strip() != name:
            return None  # folded or malformed header lines: the full parser's business
        if name == b"content-disposition":
            if filename is not None or not _DISPOSITION.fullmatch(value.strip()):
                return None
            params = [(k.lower(), v) for k, v in _PARAM.findall(value)]
            if sorted(k for k, _ in params) != [b"filename", b"name"] or dict(params)[b"name"] != b"file":
                return None
            filename = dict(params)[b"filename"]
        elif name != b"content-type":
            return None
    if filename is None:
        return None
    try:
        return filename.decode() or "upload", body[head_end + 4:end]
    except UnicodeDecodeError:
        return None


def lean_top_k(query: bytes, default: int) -> int | None:
    """`?top_k=N` (N >= 1) or no query at all -> N or the default; anything else -> None."""
    if not query:
        return default
    key, _, value = query.partition(b"=")
    if key == b"top_k" and value.isdigit() and int(value) >= 1:
        return int(value)
    return None


class FastPredict:
    """ASGI middleware in front of the FastAPI app (see the module docstring)."""

    def __init__(self, app: ASGIApp, service: ModelService):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        top_k = lean_top_k(scope["query_string"], self.service.settings.top_k)
        ctype = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if top_k is None or not ctype.startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)
            return
        body = await self._answer(top_k, ctype, receive, send)
        if body is not None:  # not ours after all: the route reads the same body
            await self.app(scope, _replay(body, receive), send)

    async def _answer(self, top_k: int, ctype: bytes, receive: Receive, send: Send) -> bytes | None:
        """Answer the request and return None, or return the body for the full route to answer."""
        service = self.service
        async with service.batcher.incoming() as slot:
            try:
                body = await _read_body(receive)
            except HTTPException as e:  # over the size limit, or too slow (limits.py)
                await reply(send, e.status_code, e.detail)
                return None
            if body is None:  # the client went away
                return None
            part = lean_upload(ctype, body)
            if part is None:
                return body
            name, data = part
            try:
                payload = await slot.submit(partial(service.prepare_upload, data, name), top_k,
                                            partial(_json, name))
            except HTTPException as e:  # the image cannot be used: the same status and words as the route
                await reply(send, e.status_code, e.detail, close=False)
                return None
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        return None


def _json(name: str, answer: dict) -> bytes:
    """The answer as FastAPI would send it (compact, UTF-8); made on the inference thread."""
    return json.dumps({"file": name, **answer}, ensure_ascii=False, separators=(",", ":")).encode()


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the already-read body once, then whatever the connection says next."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
