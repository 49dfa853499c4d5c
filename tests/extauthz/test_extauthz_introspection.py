"""The RFC 7662 introspection plugin against a real introspection endpoint (a small HTTP
server here): what it sends, how it judges answers, how long it caches them."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshward.extauthz.introspection import IntrospectionPlugin, IntrospectionSettings
from meshward.extauthz.plugin import Decision, Facts

NOW = 1_800_000_000.0
TOKENS: dict[str, dict[str, object]] = {
    "good": {
        "active": True,
        "sub": "alice",
        "scope": "read write",
        "client_id": "app",
        "exp": NOW + 3600,
        "team": "blue",
    },
    "reader": {"active": True, "sub": "bob", "scope": "read", "exp": NOW + 3600},
    "soon": {"active": True, "sub": "carol", "scope": "read write", "exp": NOW + 5},
    "revoked": {"active": False},
}
CLIENT = ("extauthz", "s3cret:/")


class Endpoint(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict[str, object]]


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        form = dict(urllib.parse.parse_qsl(body))
        self.server.requests.append(
            {
                "form": form,
                "type": self.headers["content-type"],
                "auth": self.headers["authorization"],
            }
        )
        expected = "Basic " + base64.b64encode(b"extauthz:s3cret%3A%2F").decode()
        if self.headers["authorization"] != expected:
            self.send_response(401)  # RFC 7662 §2.1: the endpoint requires client auth
            self.send_header("content-length", "0")
            self.end_headers()
            return
        answer = json.dumps(TOKENS.get(form.get("token", ""), {"active": False})).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint(("127.0.0.1", 0), _Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def plugin(endpoint: Endpoint, clock: Clock, **overrides: object) -> IntrospectionPlugin:
    settings = IntrospectionSettings(
        url=f"http://127.0.0.1:{endpoint.server_address[1]}/introspect",
        client_id=CLIENT[0],
        client_secret=CLIENT[1],
        **overrides,  # type: ignore[arg-type]
    )
    return IntrospectionPlugin(settings, clock)


def facts(authorization: str | None) -> Facts:
    headers = (("authorization", authorization),) if authorization is not None else ()
    return Facts(request_id="r1", method="GET", path="/", headers=headers)


def bearer(token: str) -> str:
    return f"Bearer {token}"


CASES: list[tuple[str, str | None, dict[str, object], Decision]] = [
    (
        "active",
        bearer("good"),
        {},
        Decision(
            True,
            200,
            "active token of alice",
            (
                ("x-auth-subject", "alice"),
                ("x-auth-scope", "read write"),
                ("x-auth-client-id", "app"),
            ),
        ),
    ),
    (
        "no token",
        None,
        {},
        Decision(
            False,
            401,
            "no bearer token",
            (),
            (("www-authenticate", "Bearer"),),
            "no bearer token\n",
        ),
    ),
    (
        "not bearer",
        "Basic abc",
        {},
        Decision(
            False,
            401,
            "no bearer token",
            (),
            (("www-authenticate", "Bearer"),),
            "no bearer token\n",
        ),
    ),
    (
        "inactive",
        bearer("revoked"),
        {},
        Decision(
            False,
            401,
            "token is not active",
            (),
            (("www-authenticate", 'Bearer error="invalid_token"'),),
            "token is not active\n",
        ),
    ),
    (
        "unknown token",
        bearer("forged"),
        {},
        Decision(
            False,
            401,
            "token is not active",
            (),
            (("www-authenticate", 'Bearer error="invalid_token"'),),
            "token is not active\n",
        ),
    ),
    (
        "missing scope",
        bearer("reader"),
        {"required_scopes": ("read", "write")},
        Decision(
            False,
            403,
            "missing scope write",
            (),
            (("www-authenticate", 'Bearer error="insufficient_scope", scope="write"'),),
            "missing scope write\n",
        ),
    ),
    (
        "claim",
        bearer("good"),
        {"required_claims": (("team", "red"),)},
        Decision(False, 403, "claim team is not 'red'", (), (), "claim team is not 'red'\n"),
    ),
]


@pytest.mark.parametrize(
    ("authorization", "overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision(
    endpoint: Endpoint,
    authorization: str | None,
    overrides: dict[str, object],
    expected: Decision,
) -> None:
    assert plugin(endpoint, Clock(), **overrides).check(facts(authorization)) == expected


def test_request_is_rfc7662_form_with_basic_client_auth(endpoint: Endpoint) -> None:
    plugin(endpoint, Clock()).check(facts(bearer("good")))
    assert endpoint.requests == [
        {
            "form": {"token": "good", "token_type_hint": "access_token"},
            "type": "application/x-www-form-urlencoded",
            "auth": "Basic " + base64.b64encode(b"extauthz:s3cret%3A%2F").decode(),
        }
    ]


def test_wrong_client_credentials_deny_with_503(endpoint: Endpoint) -> None:
    """The endpoint refuses the client (401, no JSON): fail closed, never allow."""
    wrong = IntrospectionPlugin(
        IntrospectionSettings(
            url=f"http://127.0.0.1:{endpoint.server_address[1]}/introspect",
            client_id="extauthz",
            client_secret="wrong",
        ),
        Clock(),
    )
    decision = wrong.check(facts(bearer("good")))
    assert (decision.allow, decision.status, decision.reason) == (
        False,
        503,
        "introspection endpoint unavailable",
    )


def test_unreachable_endpoint_denies_with_503_and_is_asked_again(endpoint: Endpoint) -> None:
    port = endpoint.server_address[1]
    endpoint.shutdown()
    endpoint.server_close()
    down = IntrospectionPlugin(
        IntrospectionSettings(url=f"http://127.0.0.1:{port}/introspect", timeout_seconds=0.5),
        Clock(),
    )
    for _ in range(2):
        assert down.check(facts(bearer("good"))).status == 503
    assert down.endpoint_calls == 2  # failures are not cached


def test_cache_keeps_answers_for_the_ttl(endpoint: Endpoint) -> None:
    clock = Clock()
    cached = plugin(endpoint, clock, cache_ttl_seconds=30.0)
    for _ in range(3):
        assert cached.check(facts(bearer("good"))).allow
    assert cached.endpoint_calls == 1
    clock.now += 31
    assert cached.check(facts(bearer("good"))).allow
    assert cached.endpoint_calls == 2


def test_cache_never_outlives_the_token_exp(endpoint: Endpoint) -> None:
    """RFC 7662 §4: a cached "active" answer must not be used after the token expires."""
    clock = Clock()
    cached = plugin(endpoint, clock, cache_ttl_seconds=30.0)
    assert cached.check(facts(bearer("soon"))).allow
    clock.now += 4
    cached.check(facts(bearer("soon")))
    assert cached.endpoint_calls == 1
    clock.now += 2  # past exp (NOW + 5), inside the TTL
    cached.check(facts(bearer("soon")))
    assert cached.endpoint_calls == 2
