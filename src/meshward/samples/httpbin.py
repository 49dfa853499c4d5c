"""An httpbin-compatible sample app: `python -m meshward.samples.httpbin --host H --port N`.

Implements the httpbin.org endpoints the mesh's demos and probes use, with httpbin's JSON
shapes: GET /get, /headers, /ip, /robots.txt, any method on /status/{code}, POST /post, and
GET / (a short text). Header names are reported the way httpbin (werkzeug) does, `str.title()`
of the name (`X-Forwarded-Client-Cert`), so a probe can read what the sidecar injected.
Started by the runner for workloads such as the `legacy/reports` example, by `verify` probes,
and by `bench/dataplane.py` as the benchmark backend — which is why GET /robots.txt, a fixed
response, is served from precomputed bytes.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from meshward.samples import http1, server

_CORS = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true"))
_INDEX = http1.Response(
    200,
    b"meshward httpbin sample: /get /headers /ip /status/{code} /post /robots.txt\n",
    "text/plain; charset=utf-8",
    _CORS,
)
# httpbin's own /robots.txt body; fixed, so it is the cheapest response (benchmark path).
ROBOTS_TXT = http1.Response(200, b"User-agent: *\nDisallow: /deny\n", "text/plain", _CORS)
_NOT_FOUND = http1.Response(404, b'{"error": "not found"}\n', "application/json", _CORS)
_NOT_ALLOWED = http1.Response(405, b'{"error": "method not allowed"}\n', "application/json", _CORS)


def request_headers(request: http1.Request) -> dict[str, str]:
    """All request headers as httpbin shows them: title-cased names, duplicates joined ","."""
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.title()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def origin(request: http1.Request, peer: str) -> str:
    """httpbin's `origin`: the X-Forwarded-For chain when a proxy set one, else the peer IP."""
    return request.header("X-Forwarded-For") or peer


def _args(query: str) -> dict[str, str | list[str]]:
    # httpbin: a key given once maps to a string, given more than once to a list.
    parsed = urllib.parse.parse_qs(query, keep_blank_values=True)
    return {key: values[0] if len(values) == 1 else values for key, values in parsed.items()}


def _url(request: http1.Request) -> str:
    host = request.header("Host") or "localhost"
    query = f"?{request.query}" if request.query else ""
    return f"http://{host}{request.path}{query}"


def _json(status: int, value: object) -> http1.Response:
    body = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
    return http1.Response(status, body, "application/json", _CORS)


def _get(request: http1.Request, peer: str) -> http1.Response:
    return _json(
        200,
        {
            "args": _args(request.query),
            "headers": request_headers(request),
            "origin": origin(request, peer),
            "url": _url(request),
        },
    )


def _headers(request: http1.Request, peer: str) -> http1.Response:
    return _json(200, {"headers": request_headers(request)})


def _ip(request: http1.Request, peer: str) -> http1.Response:
    return _json(200, {"origin": origin(request, peer)})


def _post(request: http1.Request, peer: str) -> http1.Response:
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    text = request.body.decode("utf-8", errors="replace")
    form: dict[str, str | list[str]] = {}
    data = text
    if content_type == "application/x-www-form-urlencoded":
        # httpbin puts a urlencoded body in `form` and leaves `data` empty.
        form, data = _args(text), ""
    parsed: Any = None
    try:
        # httpbin parses `json` from any body that is JSON, whatever the Content-Type.
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return _json(
        200,
        {
            "args": _args(request.query),
            "data": data,
            "files": {},
            "form": form,
            "headers": request_headers(request),
            "json": parsed,
            "origin": origin(request, peer),
            "url": _url(request),
        },
    )


def _status(code_text: str) -> http1.Response:
    if not code_text.isdigit() or not 100 <= int(code_text) <= 599:
        return http1.Response(400, b"Invalid status code\n", "text/plain", _CORS)
    return http1.Response(int(code_text), b"", "text/html; charset=utf-8", _CORS)


Route = Callable[[http1.Request, str], http1.Response]

# path -> (methods allowed, handler). HEAD is allowed wherever GET is (RFC 9110 §9.3.2).
_ROUTES: dict[str, tuple[frozenset[str], Route]] = {
    "/": (frozenset({"GET", "HEAD"}), lambda request, peer: _INDEX),
    "/robots.txt": (frozenset({"GET", "HEAD"}), lambda request, peer: ROBOTS_TXT),
    "/get": (frozenset({"GET", "HEAD"}), _get),
    "/headers": (frozenset({"GET", "HEAD"}), _headers),
    "/ip": (frozenset({"GET", "HEAD"}), _ip),
    "/post": (frozenset({"POST"}), _post),
}


def respond(request: http1.Request, peer: str) -> http1.Response:
    """The httpbin app (a `meshward.samples.server.Respond`)."""
    path = request.path
    route = _ROUTES.get(path)
    if route is not None:
        methods, handler = route
        return handler(request, peer) if request.method in methods else _NOT_ALLOWED
    if path.startswith("/status/"):
        return _status(path.removeprefix("/status/"))
    return _NOT_FOUND


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meshward.samples.httpbin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--quiet", action="store_true", help="no access log (benchmarks)")
    options = parser.parse_args(argv)
    log = None if options.quiet else server.stdout_log
    server.run(respond, options.host, options.port, log=log, banner="httpbin")


if __name__ == "__main__":
    main()
