"""meshward.samples.http1: the sans-I/O request parser and response encoder, no sockets."""

from __future__ import annotations

import pytest

from meshward.samples import http1


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (
            [b"GET /get?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"],
            [http1.Request("GET", "/get?a=1", "HTTP/1.1", (("Host", "x"),))],
        ),
        # split anywhere, even inside the terminator
        (
            [b"GET / HTTP/1.1\r\nHo", b"st: x\r\n\r", b"\n"],
            [http1.Request("GET", "/", "HTTP/1.1", (("Host", "x"),))],
        ),
        # pipelined, in order, with a Content-Length body
        (
            [b"POST /post HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n"],
            [
                http1.Request("POST", "/post", "HTTP/1.1", (("Content-Length", "3"),), b"abc"),
                http1.Request("GET", "/", "HTTP/1.0", ()),
            ],
        ),
        # chunked body with an extension and a trailer
        (
            [
                b"POST /post HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
            ],
            [
                http1.Request(
                    "POST", "/post", "HTTP/1.1", (("Transfer-Encoding", "chunked"),), b"abcde"
                )
            ],
        ),
        # incomplete body: nothing yet
        ([b"POST /post HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"], []),
        # duplicate headers kept in order, values trimmed
        (
            [b"GET / HTTP/1.1\r\nA:  1 \r\na: 2\r\n\r\n"],
            [http1.Request("GET", "/", "HTTP/1.1", (("A", "1"), ("a", "2")))],
        ),
    ],
)
def test_parser_yields_complete_requests(
    chunks: list[bytes], expected: list[http1.Request]
) -> None:
    parser = http1.RequestParser()
    got: list[http1.Request] = []
    for chunk in chunks:
        got.extend(parser.feed(chunk))
    assert got == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET /\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 20000,
    ],
)
def test_parser_rejects(data: bytes) -> None:
    with pytest.raises(http1.BadRequestError):
        http1.RequestParser().feed(data)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/a/b?x=1&y=2", "/a/b", "x=1&y=2"),
        ("/", "/", ""),
        ("http://svc.ns.svc.cluster.local:8081/locations/1?q", "/locations/1", "q"),
        ("http://host", "/", ""),
    ],
)
def test_request_path_and_query(target: str, path: str, query: str) -> None:
    request = http1.Request("GET", target, "HTTP/1.1", ())
    assert (request.path, request.query) == (path, query)


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("HTTP/1.1", None, True),
        ("HTTP/1.1", "close", False),
        ("HTTP/1.1", "Keep-Alive, Close", False),
        ("HTTP/1.0", None, False),
        ("HTTP/1.0", "keep-alive", True),
    ],
)
def test_keep_alive(version: str, connection: str | None, keep_alive: bool) -> None:
    headers = (("Connection", connection),) if connection else ()
    assert http1.Request("GET", "/", version, headers).keep_alive is keep_alive


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    # the Date line varies with the clock; everything else is asserted exactly
    return [line for line in head.split(b"\r\n") if not line.startswith(b"Date: ")], body


@pytest.mark.parametrize(
    ("response", "head_only", "keep_alive", "lines", "body"),
    [
        (
            http1.Response(200, b"hi", "text/plain", (("X-A", "1"),)),
            False,
            True,
            [
                b"HTTP/1.1 200 OK",
                b"Server: meshward-samples",
                b"Content-Type: text/plain",
                b"Content-Length: 2",
                b"X-A: 1",
            ],
            b"hi",
        ),
        (
            http1.Response(404, b"{}"),
            True,
            False,
            [
                b"HTTP/1.1 404 Not Found",
                b"Server: meshward-samples",
                b"Content-Type: application/json",
                b"Content-Length: 2",
                b"Connection: close",
            ],
            b"",
        ),
        (
            http1.Response(204, b"ignored"),
            False,
            True,
            [
                b"HTTP/1.1 204 No Content",
                b"Server: meshward-samples",
                b"Content-Type: application/json",
            ],
            b"",
        ),
        (
            http1.Response(599),
            False,
            True,
            [
                b"HTTP/1.1 599 Unknown",
                b"Server: meshward-samples",
                b"Content-Type: application/json",
                b"Content-Length: 0",
            ],
            b"",
        ),
    ],
)
def test_encode(
    response: http1.Response, head_only: bool, keep_alive: bool, lines: list[bytes], body: bytes
) -> None:
    encoded = http1.encode(response, head_only=head_only, keep_alive=keep_alive)
    assert _split(encoded) == (lines, body)
    assert b"\r\nDate: " in encoded
