"""Sans-I/O HTTP/1.1 for the sample apps: bytes in, `Request`s out; `Response` to bytes.

Used by `meshward.samples.server` (the asyncio transport) and tested without sockets. It is
deliberately small — the samples are demo apps and the benchmark backend, not a general web
server — but what it does follows RFC 9112: request-line and header parsing (§3, §5),
message body length from Content-Length or chunked transfer coding (§6, §7.1), persistent
connections (§9.3: HTTP/1.1 defaults to keep-alive, HTTP/1.0 needs `Connection: keep-alive`),
and pipelined requests answered in order (§9.3.2).
"""

from __future__ import annotations

import email.utils
import http
import time
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
_SUPPORTED_VERSIONS = ("HTTP/1.1", "HTTP/1.0")


class BadRequestError(Exception):
    """The peer sent bytes that are not an HTTP/1.x request we accept; answer 400 and close."""


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. `headers` keeps names as received and in order (duplicates kept)."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path of an origin-form or absolute-form target (RFC 9112 §3.2), no query."""
        return self._origin_form().partition("?")[0]

    @property
    def query(self) -> str:
        return self._origin_form().partition("?")[2]

    def _origin_form(self) -> str:
        # A client talking to an HTTP proxy sends absolute-form (`GET http://host/p`); accept it
        # too so the apps answer the same whether or not a proxy forwarded the request as is.
        target = self.target
        if target.startswith(("http://", "https://")):
            rest = target.split("://", 1)[1]
            slash = rest.find("/")
            return rest[slash:] if slash >= 0 else "/"
        return target

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive); duplicates joined with ","."""
        wanted = name.lower()
        values = [value for key, value in self.headers if key.lower() == wanted]
        return ",".join(values) if values else None

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in (self.header("connection") or "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass(frozen=True, slots=True)
class Response:
    """What an app returns; `encode` turns it into bytes for one request."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())


class RequestParser:
    """Incremental request parser for one connection: `feed(bytes)` returns complete requests.

    Raises `BadRequestError` on malformed or oversized input; the connection must then be closed,
    since the message framing can no longer be trusted (RFC 9112 §11.2, request smuggling);
    requests that preceded the bad one in the same `feed` are dropped with the connection.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Request]:
        self._buffer += data
        requests: list[Request] = []
        while True:
            request = self._next()
            if request is None:
                return requests
            requests.append(request)

    def _next(self) -> Request | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise BadRequestError("request head too large")
            return None
        if end > MAX_HEAD_BYTES:
            raise BadRequestError("request head too large")
        method, target, version, headers = _parse_head(bytes(self._buffer[:end]))
        body_start = end + 4
        framing = _body_framing(headers)
        if isinstance(framing, str):  # "chunked"
            decoded = _decode_chunked(self._buffer, body_start)
            if decoded is None:
                return None
            body, consumed = decoded
        else:
            if framing > MAX_BODY_BYTES:
                raise BadRequestError("request body too large")
            if len(self._buffer) - body_start < framing:
                return None
            body = bytes(self._buffer[body_start : body_start + framing])
            consumed = body_start + framing
        del self._buffer[:consumed]
        return Request(method, target, version, headers, body)


def _parse_head(head: bytes) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    # Header text is ISO-8859-1 on the wire (RFC 9110 §5.5); latin-1 never fails to decode.
    lines = head.decode("latin-1").split("\r\n")
    # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        raise BadRequestError("empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequestError("malformed request-line")
    method, target, version = parts
    if version not in _SUPPORTED_VERSIONS:
        raise BadRequestError("unsupported HTTP version")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        # RFC 9112 §5.1: no whitespace between name and colon; obs-fold is rejected (§5.2).
        if not colon or not name or name != name.strip() or line[0] in " \t":
            raise BadRequestError("malformed header line")
        headers.append((name, value.strip(" \t")))
    return method, target, version, tuple(headers)


def _body_framing(headers: tuple[tuple[str, str], ...]) -> int | str:
    """Content length in bytes, or "chunked" (RFC 9112 §6.3 precedence)."""
    lengths = [value for name, value in headers if name.lower() == "content-length"]
    codings = [value for name, value in headers if name.lower() == "transfer-encoding"]
    if codings:
        # Both present is a smuggling vector (§6.3 item 3): refuse rather than guess.
        if lengths or codings[-1].strip().lower() != "chunked":
            raise BadRequestError("unsupported transfer-encoding")
        return "chunked"
    if not lengths:
        return 0
    if len(set(lengths)) != 1 or not lengths[0].isdigit():
        raise BadRequestError("invalid content-length")
    return int(lengths[0])


def _decode_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, bytes consumed from the buffer start) or None when incomplete (RFC 9112 §7.1)."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequestError("invalid chunk size") from None
        position = line_end + 2
        if size == 0:
            # Skip trailer fields up to the empty line that ends the message.
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                empty = line_end == position
                position = line_end + 2
                if empty:
                    return bytes(body), position
        if len(body) + size > MAX_BODY_BYTES:
            raise BadRequestError("request body too large")
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        position += size + 2


class _DateCache:
    """The Date header (RFC 9110 §6.6.1), formatted at most once a second: it is on the hot
    path of the benchmark backend."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = email.utils.formatdate(second, usegmt=True)
        return self._text


_DATE = _DateCache()


def reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def encode(response: Response, *, head_only: bool, keep_alive: bool) -> bytes:
    """The bytes of `response`; for HEAD the headers (with the GET length) and no body."""
    lines = [
        f"HTTP/1.1 {response.status} {reason(response.status)}",
        "Server: meshward-samples",
        f"Date: {_DATE.now()}",
        f"Content-Type: {response.content_type}",
    ]
    body = response.body
    # RFC 9110 §8.6: no Content-Length (and no content) in a 1xx or 204 response.
    if response.status < 200 or response.status == 204:
        body = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
