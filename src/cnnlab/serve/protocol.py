"""uvicorn's HTTP protocol with a deadline for each request's head (slowloris by headers, idle sockets).

uvicorn times out neither a new connection that sends nothing nor request headers that trickle in: each
such client holds a socket and a file descriptor for as long as it likes (checked with uvicorn 0.54:
both were still open after 24 s). This subclass of uvicorn's own protocol (httptools, or h11 without it)
closes a connection that has no request in progress `head_timeout` seconds after it opened or after its
last response, so a request's head must arrive within that time. Once the head is in, the app's body
limit (serve/limits.py) takes over. Used by `cnnlab serve` and `serve_in_thread` through uvicorn's
documented `http=` option (a class, here bound to its timeout with functools.partial).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class HeadDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    def __init__(self, *args: Any, head_timeout: float = 10.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's head has the same time to arrive

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout, self._expire)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expire(self) -> None:
        self._head_timer = None
        cycle = self.cycle
        if (cycle is None or cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()  # between requests, or a head still arriving: nothing to answer yet
