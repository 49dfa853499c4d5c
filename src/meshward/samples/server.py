"""The asyncio HTTP/1.1 transport shared by the sample apps (httpbin, simple_system).

An app is a plain function `respond(request, peer_ip) -> Response`. Cheap apps (httpbin, the
benchmark backend) answer inline on the event loop; apps that block on I/O (user-service waits
for Redis and location-service) pass `offload=True` and each request runs in a worker thread,
one at a time per connection so pipelined responses keep their order (RFC 9112 §9.3.2).
Framing lives in `meshward.samples.http1` (sans-I/O); this module only moves bytes.
Called by the `__main__` entry points of the samples and by their tests.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import time
import traceback
from collections.abc import Callable

from meshward.samples import http1

Respond = Callable[[http1.Request, str], http1.Response]
"""An app: the request and the peer's IP address in, the response out."""

AccessLog = Callable[[str], None]

_BAD_REQUEST = http1.Response(400, b'{"error": "bad request"}\n')
_SERVER_ERROR = http1.Response(500, b'{"error": "internal server error"}\n')
# Stands in the queue for input that failed to parse, so the 400 keeps its pipeline position.
_UNPARSABLE = http1.Request("-", "-", "HTTP/1.1", (("Connection", "close"),))


def stdout_log(line: str) -> None:
    """One access-log line per request on stdout, flushed so supervisors see it at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Connection(asyncio.Protocol):
    def __init__(self, respond: Respond, offload: bool, log: AccessLog | None) -> None:
        self._respond = respond
        self._offload = offload
        self._log = log
        self._parser = http1.RequestParser()
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._queue: collections.deque[http1.Request] = collections.deque()
        self._draining = False
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._queue.clear()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            requests = self._parser.feed(data)
        except http1.BadRequestError:
            requests = [_UNPARSABLE]
        self._queue.extend(requests)
        if self._offload:
            if not self._draining and self._queue:
                self._draining = True
                asyncio.get_running_loop().create_task(self._drain())
            return
        while self._queue and not self._closing:
            request = self._queue.popleft()
            started = time.perf_counter()
            self._send(request, self._answer(request), started)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue and not self._closing:
                request = self._queue.popleft()
                started = time.perf_counter()
                response = await loop.run_in_executor(None, self._answer, request)
                self._send(request, response, started)
        finally:
            self._draining = False

    def _answer(self, request: http1.Request) -> http1.Response:
        if request is _UNPARSABLE:
            return _BAD_REQUEST
        try:
            return self._respond(request, self._peer)
        except Exception:
            # A bug in an app must not kill the server; the traceback goes to stderr.
            traceback.print_exc()
            return _SERVER_ERROR

    def _send(self, request: http1.Request, response: http1.Response, started: float) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        keep_alive = request.keep_alive
        data = http1.encode(response, head_only=request.method == "HEAD", keep_alive=keep_alive)
        transport.write(data)
        if self._log is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._log(
                f'{self._peer} "{request.method} {request.target} {request.version}" '
                f"{response.status} {len(response.body)} {elapsed_ms:.1f}ms"
            )
        if not keep_alive:
            self._closing = True
            self._queue.clear()
            transport.close()


async def start(
    respond: Respond,
    host: str,
    port: int,
    *,
    offload: bool = False,
    log: AccessLog | None = None,
) -> asyncio.Server:
    """Listen on host:port (port 0 picks a free one; read it from the returned server)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Connection(respond, offload, log), host, port, reuse_address=True, backlog=1024
    )


def bound_port(server: asyncio.Server) -> int:
    """The TCP port `server` listens on (useful after binding port 0)."""
    return int(server.sockets[0].getsockname()[1])


def run(
    respond: Respond,
    host: str,
    port: int,
    *,
    offload: bool = False,
    log: AccessLog | None = None,
    banner: str = "",
) -> None:
    """Serve until SIGTERM or SIGINT, then close the listener and return (exit status 0)."""

    async def main() -> None:
        server = await start(respond, host, port, offload=offload, log=log)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if banner:
            stdout_log(f"{banner} listening on {host}:{bound_port(server)}")
        await stop.wait()
        server.close()

    asyncio.run(main())
