"""The IdP sample, driven through its `respond` function (no sockets): discovery, JWKS,
rotation with a grace period, client authentication, token issuance, RFC 7662 introspection."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path
from typing import Any

import jwt
import pytest

from meshward.samples import http1
from meshward.samples.idp import keys, tokens
from meshward.samples.idp.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, IdentityProvider

ISSUER = "http://idp.test:9443"
BASIC = (
    "Basic " + base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp(tmp_path: Path) -> IdentityProvider:
    clock = Clock()
    provider = IdentityProvider(keys.KeyStore(tmp_path), ISSUER, grace_seconds=60, clock=clock)
    provider.store.ensure(clock.now)
    return provider


def _call(
    idp: IdentityProvider, method: str, path: str, body: bytes = b"", auth: str | None = BASIC
) -> tuple[int, Any]:
    headers = (("Authorization", auth),) if auth else ()
    response = idp.respond(http1.Request(method, path, "HTTP/1.1", headers, body), "127.0.0.1")
    return response.status, json.loads(response.body)


def _introspect(idp: IdentityProvider, token: str) -> Any:
    status, value = _call(
        idp, "POST", "/introspect", urllib.parse.urlencode({"token": token}).encode()
    )
    assert status == 200
    return value


def test_discovery_names_the_endpoints(idp: IdentityProvider) -> None:
    status, value = _call(idp, "GET", "/.well-known/openid-configuration")
    assert status == 200
    assert {
        k: value[k] for k in ("issuer", "jwks_uri", "token_endpoint", "introspection_endpoint")
    } == {
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/jwks",
        "token_endpoint": f"{ISSUER}/token",
        "introspection_endpoint": f"{ISSUER}/introspect",
    }


@pytest.mark.parametrize("path", ["/token", "/rotate", "/introspect"])
@pytest.mark.parametrize(
    "auth", [None, "Basic " + base64.b64encode(b"meshward-dev:wrong").decode()]
)
def test_client_credentials_required(idp: IdentityProvider, path: str, auth: str | None) -> None:
    assert _call(idp, "POST", path, b"{}", auth) == (401, {"error": "invalid_client"})


def test_token_endpoint_issues_a_verifiable_token(idp: IdentityProvider) -> None:
    body = json.dumps({"sub": "alice", "ttl": 60, "aud": ["api"], "claims": {"groups": ["admin"]}})
    status, value = _call(idp, "POST", "/token", body.encode())
    assert (status, value["token_type"], value["expires_in"]) == (200, "Bearer", 60.0)
    _, jwks = _call(idp, "GET", "/jwks")
    key = jwt.PyJWK(jwks["keys"][0])
    claims = jwt.decode(
        value["access_token"],
        key.key,
        algorithms=["RS256"],
        audience="api",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims == {
        "iss": ISSUER,
        "sub": "alice",
        "aud": "api",
        "groups": ["admin"],
        "iat": 1_800_000_000,
        "nbf": 1_800_000_000,
        "exp": 1_800_000_060,
    }


def test_rotation_keeps_the_old_key_published_for_the_grace_period(idp: IdentityProvider) -> None:
    clock = idp.clock
    assert isinstance(clock, Clock)
    old_kid = idp.store.entries()[-1].kid
    old_token = tokens.issue(idp.store, issuer=ISSUER, subject="a", now=clock.now, ttl_seconds=600)
    status, rotated = _call(idp, "POST", "/rotate", b'{"alg": "ES256"}')
    assert status == 200 and rotated["alg"] == "ES256"
    kids = lambda: [k["kid"] for k in _call(idp, "GET", "/jwks")[1]["keys"]]  # noqa: E731
    assert kids() == [old_kid, rotated["kid"]]
    assert _introspect(idp, old_token)["active"] is True
    clock.now += 60
    assert kids() == [rotated["kid"]]
    assert _introspect(idp, old_token) == {"active": False}


def test_introspection(idp: IdentityProvider) -> None:
    clock = idp.clock
    assert isinstance(clock, Clock)
    token = tokens.issue(
        idp.store,
        issuer=ISSUER,
        subject="bob",
        now=clock.now,
        ttl_seconds=30,
        claims={"scope": "read write"},
    )
    active = _introspect(idp, token)
    assert {k: active[k] for k in ("active", "sub", "iss", "scope", "client_id", "exp")} == {
        "active": True,
        "sub": "bob",
        "iss": ISSUER,
        "scope": "read write",
        "client_id": DEFAULT_CLIENT_ID,
        "exp": 1_800_000_030,
    }
    other = tokens.issue(
        idp.store, issuer="http://other", subject="bob", now=clock.now, ttl_seconds=30
    )
    assert _introspect(idp, other) == {"active": False}
    assert _introspect(idp, "not-a-token") == {"active": False}
    clock.now += 30
    assert _introspect(idp, token) == {"active": False}


@pytest.mark.parametrize(
    ("pairs", "claims"),
    [
        (["groups=admin"], {"groups": "admin"}),
        (["groups=admin", "groups=dev"], {"groups": ["admin", "dev"]}),
        (['org={"team": "blue"}', "n=3"], {"org": {"team": "blue"}, "n": 3}),
    ],
)
def test_claim_pairs(pairs: list[str], claims: dict[str, Any]) -> None:
    assert tokens.parse_claims(pairs) == claims


def test_claim_pair_without_value_is_refused() -> None:
    with pytest.raises(ValueError, match="not name=value"):
        tokens.parse_claims(["groups"])
