"""Refuse request bodies above the configured size, by the header and by the bytes actually sent.

A pure ASGI middleware: it answers 413 before the app reads anything when Content-Length is too big,
and stops reading (413 again) when a chunked or lying request sends more than the limit. Checking
only the header would let `Transfer-Encoding: chunked` through; checking only the bytes would make
the server read a whole 1 GB body before saying no.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> str:
        return (f"request body is {size}, over this server's limit of {self.max_bytes / 2**20:g} MB; "
                "send a smaller image (or start the server with a larger --max-upload-mb)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _reply(send, 400, "Content-Length is not a number")
                return
            if int(length) > self.max_bytes:
                await _reply(send, 413, self._too_large(f"{int(length) / 2**20:.1f} MB"))
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body read; FastAPI's handler turns it into JSON.
                    raise HTTPException(413, self._too_large(f"over {self.max_bytes / 2**20:g} MB"))
            return message

        await self.app(scope, limited, send)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
