"""Connection hygiene for ``poshuk serve``: a header-read deadline and a connection cap.

uvicorn (0.55, h11 protocol) arms no timer while it waits for a request head: its
``timeout_keep_alive`` runs only *after* an answer and is cancelled by the first byte of
the next request, so a connection that opens and never finishes its headers (or trickles
them a byte at a time) stays open for ever; 21,000 of them exhausted the process's file
descriptors. ``limit_concurrency`` answers a plain-text 503 but only once a request head
arrived, so it never closes the half-open ones either. The smallest fix is a subclass of
uvicorn's own h11 protocol (``uvicorn.run(http=...)`` takes one) that

* closes a connection that has not delivered a whole request head within
  ``service.header_timeout_s`` of opening (or of its last answer, once bytes of a next
  request arrived; an idle keep-alive connection is still uvicorn's to close), and
* answers every request on a connection opened beyond ``service.max_connections`` with
  503 problem+json and ``Connection: close`` instead of running the app, and
* closes a connection whose request body has not arrived in time: ``header_timeout_s``
  plus its declared length at ``MIN_BODY_BYTES_PER_S`` (a trickled body once held its
  connection until the 30 s request time limit; an 8 MiB batch still gets 2 minutes).

A timer per connection is one ``loop.call_later``: no task, no polling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from poshuk.settings import ServiceSettings

logger = logging.getLogger("poshuk.service.connections")

PROBLEM_MEDIA_TYPE = b"application/problem+json"
MIN_BODY_BYTES_PER_S = 64 * 1024  # the slowest upload a body deadline allows for (a slow mobile link)


def body_deadline_s(header_timeout_s: float, headers: list[tuple[bytes, bytes]]) -> float:
    """Seconds a request body may take to arrive, from its head's ``Content-Length`` (chunked: the largest write)."""
    declared = 8 * 1024 * 1024
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            declared = int(value)
    return header_timeout_s + declared / MIN_BODY_BYTES_PER_S


def over_capacity_app(limit: int) -> Any:
    """A tiny ASGI app that refuses with 503 problem+json: what a connection beyond the cap is served."""
    body_template = {
        "type": "https://poshuk.dev/problems/too-many-connections",
        "title": "Too many connections",
        "status": 503,
        "detail": f"the service holds its limit of {limit} open connections (service.max_connections); "
        "retry in a moment",
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps({**body_template, "instance": scope.get("path", "")}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def bounded_protocol(limits: ServiceSettings) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with ``limits.header_timeout_s`` and ``limits.max_connections`` applied."""
    header_timeout = limits.header_timeout_s
    cap = limits.max_connections
    refuse = over_capacity_app(cap)

    class BoundedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None  # the head's deadline, then the body's
        _body_phase = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > cap:
                self.app = refuse  # this connection only: its requests get 503, then it closes
                logger.warning("connection cap reached", extra={"max_connections": cap})
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            state = self.conn.their_state
            if state is h11.IDLE and not self.transport.is_closing():
                self._arm_header_timer()  # bytes of a request head arrived, but not all of it
            elif state is h11.SEND_BODY and not self.transport.is_closing():
                self._arm_body_timer()  # the head arrived; the body must follow in time
            else:
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel_header_timer()  # idle until the next request: uvicorn's keep-alive timer

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            self._body_phase = False
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def _arm_body_timer(self) -> None:
            if self._header_timer is not None and self._body_phase:
                return
            self._cancel_header_timer()
            self._body_phase = True
            deadline = body_deadline_s(header_timeout, self.headers or [])
            self._header_timer = self.loop.call_later(deadline, self._body_timeout)

        def _body_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
                logger.info("request body too slow: connection closed", extra={"header_timeout_s": header_timeout})
                self.transport.close()

    return BoundedH11Protocol


def raise_open_files_limit() -> int:
    """Lift this process's soft limit of open files to its hard limit; returns the limit now in force.

    Every connection costs a file descriptor; a soft limit of 1024 (a common default) is
    reached long before ``service.max_connections`` connections and the index's own files.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard
