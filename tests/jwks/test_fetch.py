"""JWKS fetch: real HTTP on loopback, OIDC discovery, blocked CIDRs after resolution."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from meshward.config.resources import MeshConfig
from meshward.errors import JwksFetchError
from meshward.jwks import fetch
from tests.xds.static_envoy import free_port, http_apps

IP = "127.144.0.1"
BLOCKED = MeshConfig(meta=None).jwks_blocked_cidrs
KEY = {"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}


class _Idp(BaseHTTPRequestHandler):
    port: ClassVar[int] = 0
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def idp() -> Iterator[str]:
    port = free_port(IP)
    base = f"http://{IP}:{port}"
    _Idp.answers = {
        "/.well-known/openid-configuration": (
            200,
            json.dumps({"jwks_uri": f"{base}/keys"}).encode(),
        ),
        "/keys": (200, json.dumps({"keys": [KEY]}).encode()),
        "/empty": (200, b'{"keys": []}'),
        "/html": (200, b"<html>"),
        "/gone": (500, b"{}"),
        "/no-jwks-uri/.well-known/openid-configuration": (200, b"{}"),
    }
    with http_apps(IP, [port], _Idp, poll=0.05):
        yield base


def test_jwks_uri_and_discovery(idp: str) -> None:
    expected = json.dumps({"keys": [KEY]}, sort_keys=True, separators=(",", ":"))
    direct = fetch.key_set(f"{idp}/keys", discovery=False, timeout=2, blocked=BLOCKED)
    found = fetch.key_set(
        f"{idp}/.well-known/openid-configuration", discovery=True, timeout=2, blocked=BLOCKED
    )
    assert direct == found == expected
    assert fetch.kids(direct) == frozenset({"k1"})


@pytest.mark.parametrize(
    ("path", "discovery", "message"),
    [
        ("/empty", False, "not a JSON Web Key Set with at least one key"),
        ("/html", False, "not JSON"),
        ("/gone", False, "HTTP 500"),
        (
            "/no-jwks-uri/.well-known/openid-configuration",
            True,
            "discovery document has no jwks_uri",
        ),
    ],
)
def test_bad_answers_are_failures(idp: str, path: str, discovery: bool, message: str) -> None:
    with pytest.raises(JwksFetchError, match=message):
        fetch.key_set(f"{idp}{path}", discovery=discovery, timeout=2, blocked=BLOCKED)


@pytest.mark.parametrize(
    ("resolved", "blocked_by"),
    [
        (["169.254.169.254"], "169.254.0.0/16"),
        (["127.0.0.1", "169.254.169.254"], "169.254.0.0/16"),  # any bad answer refuses
        (["::ffff:169.254.169.254"], "169.254.0.0/16"),
        (["fd00:ec2::254"], "fd00:ec2::254/128"),
        (["100.100.100.200"], "100.100.100.200/32"),
    ],
)
def test_blocked_addresses_checked_after_resolution(resolved: list[str], blocked_by: str) -> None:
    with pytest.raises(JwksFetchError, match=re.escape(f"blocked range {blocked_by}")):
        fetch.key_set(
            "http://idp.example/jwks",
            discovery=False,
            timeout=1,
            blocked=BLOCKED,
            resolver=lambda host, port: resolved,
        )


def test_connects_to_the_checked_address(idp: str) -> None:
    """The name resolves (by the injected resolver) to the loopback IdP: the fetch goes to
    that address, not to a second resolution of the name."""
    port = int(idp.rsplit(":", 1)[1])
    jwks = fetch.key_set(
        f"http://idp.invalid:{port}/keys",
        discovery=False,
        timeout=2,
        blocked=BLOCKED,
        resolver=lambda host, p: [IP],
    )
    assert fetch.kids(jwks) == frozenset({"k1"})


def test_loopback_is_allowed_by_default_and_can_be_blocked(idp: str) -> None:
    assert fetch.key_set(f"{idp}/keys", discovery=False, timeout=2, blocked=BLOCKED)
    with pytest.raises(JwksFetchError, match=re.escape("blocked range 127.0.0.0/8")):
        fetch.key_set(f"{idp}/keys", discovery=False, timeout=2, blocked=("127.0.0.0/8",))
