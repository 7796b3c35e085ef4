"""How uvicorn serves the API: bounded headers, timeouts for slow clients, a connection cap.

uvicorn's default parser (httptools) takes headers of any size, and no timeout covers a
client that connects and sends its headers one byte at a time (slowloris: a connection
stayed open 60 s and more). Here the parser is h11 with ``max_header_bytes`` as its limit
on an incomplete request head (400 and close beyond it), and ``GuardedH11Protocol`` closes
a connection whose request head is not complete ``header_timeout_seconds`` after it
connected or after the first byte of the next request on a kept-alive connection. Request
bodies have their own deadline in ``api/body_guard.py``. A request refused before it is
read (an oversized or malformed head) gets its 400 through a lingering close: uvicorn
closes at once, and the request bytes still unread make the kernel reset the connection,
so the client loses the answer; here the server half-closes and discards what still
arrives for up to ``LINGER_SECONDS``.

Logs go through ``fractal.observability`` (uvicorn's own configuration and access log are
off). X-Forwarded-For is handled by the application (``api/main.py``, from the
``trusted_proxies`` setting), so uvicorn's own proxy handling is off: its default trusts
127.0.0.1, which let anyone on the host choose their address.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fractal.settings import Settings

GRACEFUL_SHUTDOWN_SECONDS = 30
LINGER_SECONDS = 2.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request head."""

    header_timeout: float = 10.0
    max_head_bytes: int = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_deadline: asyncio.TimerHandle | None = None
        self._lingering = False
        super().connection_made(transport)
        self._start_head_deadline()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused request: read and dropped
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            # Part of a request head is buffered (or a kept-alive connection began its
            # next request): it has header_timeout to be complete.
            self._start_head_deadline()
        else:
            self._cancel_head_deadline()

    def send_400_response(self, msg: str) -> None:
        self._cancel_head_deadline()
        self._lingering = True
        body = f"{msg} (a request head is at most {self.max_head_bytes} bytes)".encode()
        for event in (
            h11.Response(
                status_code=400,
                headers=[
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            ),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()
            return
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # Between requests the keep-alive timeout applies instead.
        self._cancel_head_deadline()
        super().on_response_complete()

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None and not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection whose request head was too slow")
            self.transport.close()


def protocol_for(settings: Settings) -> type[GuardedH11Protocol]:
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "max_head_bytes": settings.max_header_bytes,
        },
    )


def server_config(application: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration ``fractal api``, ``fractal up`` and the tests serve with."""
    options: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "http": protocol_for(settings),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "limit_concurrency": settings.max_connections,
        "proxy_headers": False,
        "server_header": False,
        # uvicorn's loggers propagate to the handler fractal.observability.configure_logging
        # installed (text or JSON); the API writes its own access line (route, status,
        # duration, request id: api/observability.py).
        "log_config": None,
        "access_log": False,
        "log_level": settings.log_level.lower(),
        # Requests in flight get this long to finish after SIGTERM (the chart's preStop
        # pause has already taken the pod out of the Service by then).
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        **overrides,
    }
    return uvicorn.Config(application, **options)
