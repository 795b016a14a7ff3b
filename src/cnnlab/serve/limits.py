"""Refuse request bodies that are too big or too slow: by the header, by the bytes sent, by the clock.

A pure ASGI middleware. It answers 413 before the app reads anything when Content-Length is too big, and
stops reading (413 again) when a chunked or lying request sends more than the limit. Checking only the
header would let `Transfer-Encoding: chunked` through; checking only the bytes would make the server read
a whole 1 GB body before saying no.

A body must also arrive within `timeout_s` of the request's start, else 408 and the connection is closed:
a client that trickles its body (slowloris) holds one connection for that long and no more. It never holds
up anyone else: reading a body is a wait on the event loop, not on a thread. (uvicorn itself has no limit
on how long a body may take.)
"""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = 10.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    def _too_large(self, size: str) -> str:
        return (f"request body is {size}, over this server's limit of {self.max_bytes / 2**20:g} MB; "
                "send a smaller image (or start the server with a larger --max-upload-mb)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                length = v
                break
        if length is not None:
            if not length.isdigit():
                await reply(send, 400, "Content-Length is not a number")
                return
            if int(length) > self.max_bytes:
                await reply(send, 413, self._too_large(f"{int(length) / 2**20:.1f} MB"))
                return
        seen = 0
        complete = False  # the whole body is in: later receives (a wait for disconnect) have no deadline
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Raised inside the route's body read; FastAPI's handler (or fastpath.py) answers it.
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s; "
                                         "send it at once (slow clients are cut off)",
                                    headers={"connection": "close"}) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._too_large(f"over {self.max_bytes / 2**20:g} MB"),
                                        headers={"connection": "close"})
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited, send)


async def reply(send: Send, status: int, detail: str, close: bool = True) -> None:
    """A JSON `{"detail": ...}` answer sent straight over ASGI, as FastAPI's HTTPException handler does."""
    body = json.dumps({"detail": detail}, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
