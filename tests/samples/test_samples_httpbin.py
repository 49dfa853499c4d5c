"""meshward.samples.httpbin over real loopback sockets (in-process, and the CLI entry point)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from meshward.samples import httpbin

ServeFn = Callable[..., int]

CLIENT_HEADERS = {"Accept-Encoding": "identity"}  # what http.client adds by itself


def _request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _json(port: int, method: str, target: str, **kwargs: Any) -> tuple[int, Any]:
    status, _, body = _request(port, method, target, **kwargs)
    return status, json.loads(body)


@pytest.fixture
def port(serve: ServeFn) -> int:
    return serve(httpbin.respond)


def test_get_reports_args_headers_origin_url(port: int) -> None:
    host = f"127.0.0.1:{port}"
    xfcc = "By=spiffe://cluster.local/ns/legacy/sa/reports;URI=spiffe://cluster.local/ns/core/sa/a"
    assert _json(
        port,
        "GET",
        "/get?a=1&b=2&b=3",
        headers={"X-Forwarded-Client-Cert": xfcc, "x-b3-traceid": "abc"},
    ) == (
        200,
        {
            "args": {"a": "1", "b": ["2", "3"]},
            "headers": {
                "Host": host,
                **CLIENT_HEADERS,
                "X-Forwarded-Client-Cert": xfcc,
                "X-B3-Traceid": "abc",
            },
            "origin": "127.0.0.1",
            "url": f"http://{host}/get?a=1&b=2&b=3",
        },
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, {"origin": "127.0.0.1"}),
        ({"X-Forwarded-For": "10.0.0.1, 10.0.0.2"}, {"origin": "10.0.0.1, 10.0.0.2"}),
    ],
)
def test_ip(port: int, headers: dict[str, str], expected: dict[str, str]) -> None:
    assert _json(port, "GET", "/ip", headers=headers) == (200, expected)


def test_headers_shows_every_header(port: int) -> None:
    assert _json(port, "GET", "/headers", headers={"user-agent": "probe", "X-Dup": "1"}) == (
        200,
        {
            "headers": {
                "Host": f"127.0.0.1:{port}",
                **CLIENT_HEADERS,
                "User-Agent": "probe",
                "X-Dup": "1",
            }
        },
    )


@pytest.mark.parametrize(
    ("content_type", "body", "data", "form", "parsed"),
    [
        ("application/json", b'{"k": [1, 2]}', '{"k": [1, 2]}', {}, {"k": [1, 2]}),
        ("application/x-www-form-urlencoded", b"a=1&a=2&b=", "", {"a": ["1", "2"], "b": ""}, None),
        ("text/plain", b"hello", "hello", {}, None),
    ],
)
def test_post_echoes_body(
    port: int, *, content_type: str, body: bytes, data: str, form: dict[str, Any], parsed: Any
) -> None:
    host = f"127.0.0.1:{port}"
    assert _json(port, "POST", "/post?q=1", body=body, headers={"Content-Type": content_type}) == (
        200,
        {
            "args": {"q": "1"},
            "data": data,
            "files": {},
            "form": form,
            "headers": {
                "Host": host,
                **CLIENT_HEADERS,
                "Content-Length": str(len(body)),
                "Content-Type": content_type,
            },
            "json": parsed,
            "origin": "127.0.0.1",
            "url": f"http://{host}/post?q=1",
        },
    )


@pytest.mark.parametrize(
    ("method", "target", "status", "body"),
    [
        ("GET", "/status/418", 418, b""),
        ("POST", "/status/503", 503, b""),
        ("GET", "/status/abc", 400, b"Invalid status code\n"),
        ("GET", "/status/700", 400, b"Invalid status code\n"),
        ("GET", "/robots.txt", 200, b"User-agent: *\nDisallow: /deny\n"),
        ("GET", "/nope", 404, b'{"error": "not found"}\n'),
        ("POST", "/get", 405, b'{"error": "method not allowed"}\n'),
        ("GET", "/post", 405, b'{"error": "method not allowed"}\n'),
    ],
)
def test_status_and_fixed_responses(
    port: int, method: str, target: str, status: int, body: bytes
) -> None:
    got_status, _, got_body = _request(port, method, target)
    assert (got_status, got_body) == (status, body)


def test_index_is_text(port: int) -> None:
    status, headers, body = _request(port, "GET", "/")
    assert (status, headers["Content-Type"], body.startswith(b"meshward httpbin")) == (
        200,
        "text/plain; charset=utf-8",
        True,
    )


def test_head_has_get_length_and_no_body(port: int) -> None:
    _, get_headers, get_body = _request(port, "GET", "/robots.txt")
    status, head_headers, head_body = _request(port, "HEAD", "/robots.txt")
    assert (status, head_headers["Content-Length"], head_body) == (200, str(len(get_body)), b"")
    assert get_headers["Content-Length"] == str(len(get_body))


def test_keep_alive_reuses_one_connection(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        statuses = []
        sockets = set()
        for target in ("/get", "/headers", "/ip", "/robots.txt"):
            connection.request("GET", target)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            sockets.add(id(connection.sock))
        assert (statuses, len(sockets)) == ([200, 200, 200, 200], 1)
    finally:
        connection.close()


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_pipelined_requests_answered_in_order_then_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /status/202 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = _read_until_closed(sock)
    status_lines = [line for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert status_lines == [b"HTTP/1.1 201 Created", b"HTTP/1.1 200 OK", b"HTTP/1.1 202 Accepted"]


def test_malformed_request_gets_400_and_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        data = _read_until_closed(sock)
    assert data.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
    assert b"\r\nConnection: close\r\n" in data


def test_app_bug_is_500_and_server_survives(
    serve: ServeFn, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(request: Any, peer: str) -> Any:
        if request.path == "/boom":
            raise RuntimeError("bug")
        return httpbin.respond(request, peer)

    port = serve(broken)
    assert _request(port, "GET", "/boom")[0] == 500
    assert _request(port, "GET", "/status/200")[0] == 200
    assert "RuntimeError: bug" in capsys.readouterr().err


def test_cli_serves_and_logs_one_line_per_request(spawn_module: Callable[..., Any]) -> None:
    port, process = spawn_module("meshward.samples.httpbin")
    assert _json(port, "GET", "/ip") == (200, {"origin": "127.0.0.1"})
    assert _request(port, "GET", "/status/404")[0] == 404
    process.terminate()
    out, _ = process.communicate(timeout=5)
    lines = out.decode().splitlines()
    assert (process.returncode, len(lines)) == (0, 3)
    assert lines[0] == f"httpbin listening on 127.0.0.1:{port}"
    assert [line.split(" ")[1:5] for line in lines[1:]] == [
        ['"GET', "/ip", 'HTTP/1.1"', "200"],
        ['"GET', "/status/404", 'HTTP/1.1"', "404"],
    ]
