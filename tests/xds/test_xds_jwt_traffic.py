"""RequestAuthentication enforced by a real Envoy built from a translated snapshot.

A client (this test) → the server sidecar's inbound port (jwt_authn from xds/jwt_authn.py,
then RBAC from xds/rbac.py) → an app that echoes the headers it got. Tokens come from the IdP
sample's key store; the attack tokens from `meshward.samples.idp.attacks`. Proves Istio's
semantics: no token passes with no identity, a present token must be valid (401 for each
attack), requestPrincipals and request.auth.claims (list-valued, space-delimited scope) are
enforced, a token in a location the rule does not read is no identity, outputClaimToHeaders
/ outputPayloadToHeader / forwardOriginalToken act on what the app receives, and a rule
whose keys were never fetched refuses its tokens (fail closed).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import http.client
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import xds_cases
from static_envoy import free_port, http_apps, static_envoy

from meshward.jwks import validate
from meshward.model import ir
from meshward.model.authorization import (
    AuthzPolicy,
    AuthzRule,
    Condition,
    OperationMatch,
    PortAuthz,
    SourceMatch,
    StringMatch,
)
from meshward.model.authz_eval import Request, evaluate
from meshward.model.request_authn import JwtRule
from meshward.samples.idp import attacks, keys, tokens
from meshward.xds import bootstrap, translate

pytestmark = pytest.mark.e2e

SERVER_IP, SERVER_APP_IP = "127.140.0.1", "127.140.0.2"
ISSUER = "https://idp.test"
AUDIENCE = "api"


def _prefix(value: str) -> OperationMatch:
    return OperationMatch(paths=(StringMatch("prefix", value),))


AUTHZ = PortAuthz(
    (
        AuthzPolicy(
            "default",
            "jwt",
            "ALLOW",
            (
                AuthzRule(0, operations=(_prefix("/public"),)),
                AuthzRule(
                    1,
                    sources=(
                        SourceMatch(request_principals=(StringMatch("prefix", ISSUER + "/"),)),
                    ),
                    operations=(_prefix("/secure"),),
                ),
                AuthzRule(
                    2,
                    operations=(_prefix("/admin"),),
                    conditions=(Condition("request.auth.claims[groups]", ("admin",)),),
                ),
                AuthzRule(
                    3,
                    operations=(_prefix("/scoped"),),
                    conditions=(Condition("request.auth.claims[scope]", ("write",)),),
                ),
                AuthzRule(
                    4,
                    operations=(_prefix("/nested"),),
                    conditions=(Condition("request.auth.claims[org][team]", ("blue",)),),
                ),
                AuthzRule(
                    5,
                    sources=(
                        SourceMatch(request_principals=(StringMatch("exact", f"{ISSUER}/alice"),)),
                    ),
                    operations=(_prefix("/alice"),),
                ),
            ),
        ),
    )
)


def _rule(jwks: str, **fields: object) -> JwtRule:
    base: dict[str, object] = {
        "origin": "default/jwt jwtRules[0]",
        "issuer": ISSUER,
        "audiences": (AUDIENCE,),
        "key_source": "inline",
        "jwks": jwks,
        "from_headers": (),
        "from_params": (),
        "from_cookies": (),
        "output_payload_to_header": "x-jwt-payload",
        "forward_original_token": False,
        "output_claim_to_headers": (("x-jwt-sub", "sub"),),
        "timeout_seconds": 5.0,
    }
    return JwtRule(**(base | fields))  # type: ignore[arg-type]


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _server(tmp_path: Path, rules: tuple[JwtRule, ...], ports: tuple[int, ...]) -> Iterator[None]:
    pod = xds_cases.pod("web", SERVER_IP, SERVER_APP_IP)
    proxy = xds_cases.proxy(
        pod, inbound=tuple(ir.InboundPort(p, "HTTP", "DISABLE", "test", AUTHZ) for p in ports)
    )
    proxy = ir.ProxyModel(**{**_fields(proxy), "jwt_rules": rules})
    admin = (SERVER_IP, free_port(SERVER_IP))
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy), admin=admin, node_id=proxy.node_id, secrets_dir=None
    )
    log = tmp_path / "web.log"
    with http_apps(SERVER_APP_IP, list(ports), _Echo), static_envoy(config, log, admin):
        yield
    assert "deprecated" not in log.read_text()


def _fields(proxy: ir.ProxyModel) -> dict[str, object]:
    return {name: getattr(proxy, name) for name in ir.ProxyModel.__slots__}


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(SERVER_IP, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        seen = json.loads(body) if response.status == 200 else {}
        return response.status, seen
    finally:
        connection.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_enforced_by_envoy(tmp_path: Path) -> None:
    store = keys.KeyStore(tmp_path / "idp")
    now = time.time()
    store.ensure(now)
    jwks = json.dumps(store.public_jwks(now, 300))

    def token(subject: str = "alice", **claims: object) -> str:
        return tokens.issue(
            store,
            issuer=ISSUER,
            subject=subject,
            now=now,
            ttl_seconds=300,
            audiences=(AUDIENCE,),
            claims=claims,
        )

    port, custom_port = free_port(SERVER_IP, SERVER_APP_IP), 0
    while custom_port in (0, port):
        custom_port = free_port(SERVER_IP, SERVER_APP_IP)
    del custom_port
    forged = attacks.forged(store, issuer=ISSUER, subject="alice", now=now, audiences=(AUDIENCE,))
    alice = token()
    # What the Python side (jwks/validate.py, then the evaluator) predicts for each request.
    predicted: dict[str, int] = {}
    requests = {
        "public, no token": ("/public", None),
        "secure, no token": ("/secure", None),
        "secure, bearer": ("/secure", alice),
        "alice, bob's token": ("/alice", token("bob")),
        "alice, alice's token": ("/alice", alice),
        "admin, groups admin": ("/admin", token(groups=["dev", "admin"])),
        "admin, groups dev": ("/admin", token(groups=["dev"])),
        "scoped, scope write": ("/scoped", token(scope="read write")),
        "scoped, scope read": ("/scoped", token(scope="read")),
        "nested, team blue": ("/nested", token(org={"team": "blue"})),
        "nested, team red": ("/nested", token(org={"team": "red"})),
    }
    for name, (path, bearer) in requests.items():
        predicted[name] = _predict(_rule(jwks), path, bearer, port, now)
    with _server(tmp_path, (_rule(jwks),), (port,)):
        statuses = {
            "public, no token": _get(port, "/public")[0],
            "secure, no token": _get(port, "/secure")[0],
            "secure, bearer": _get(port, "/secure", _bearer(alice))[0],
            "secure, access_token param": _get(port, f"/secure?access_token={alice}")[0],
            "secure, unconfigured header": _get(port, "/secure", {attacks.ELSEWHERE_HEADER: alice})[
                0
            ],
            "alice, bob's token": _get(port, "/alice", _bearer(token("bob")))[0],
            "alice, alice's token": _get(port, "/alice", _bearer(alice))[0],
            "admin, groups admin": _get(port, "/admin", _bearer(token(groups=["dev", "admin"])))[0],
            "admin, groups dev": _get(port, "/admin", _bearer(token(groups=["dev"])))[0],
            "scoped, scope write": _get(port, "/scoped", _bearer(token(scope="read write")))[0],
            "scoped, scope read": _get(port, "/scoped", _bearer(token(scope="read")))[0],
            "nested, team blue": _get(port, "/nested", _bearer(token(org={"team": "blue"})))[0],
            "nested, team red": _get(port, "/nested", _bearer(token(org={"team": "red"})))[0],
        }
        refused = {name: _get(port, "/public", _bearer(t))[0] for name, t in forged.items()}
        observed = {
            name: _get(port, path, _bearer(bearer) if bearer else None)[0]
            for name, (path, bearer) in requests.items()
        }
        _, seen = _get(port, "/secure", _bearer(alice))

    assert statuses == {
        "public, no token": 200,
        "secure, no token": 403,
        "secure, bearer": 200,
        "secure, access_token param": 200,
        "secure, unconfigured header": 403,
        "alice, bob's token": 403,
        "alice, alice's token": 200,
        "admin, groups admin": 200,
        "admin, groups dev": 403,
        "scoped, scope write": 200,
        "scoped, scope read": 403,
        "nested, team blue": 200,
        "nested, team red": 403,
    }
    assert refused == dict.fromkeys(
        (
            "alg-none",
            "hs256-public-key",
            "expired",
            "not-yet-valid",
            "wrong-issuer",
            "wrong-audience",
            "unknown-kid",
            "tampered-payload",
        ),
        401,
    )
    # The Python evaluator (`authz explain --jwt`) decides every request as Envoy did.
    assert predicted == observed
    assert {n: _predict(_rule(jwks), "/public", t, port, now) for n, t in forged.items()} == refused
    # outputClaimToHeaders and outputPayloadToHeader reach the app; forwardOriginalToken
    # false removes the token.
    assert seen["x-jwt-sub"] == "alice"
    payload = json.loads(base64.urlsafe_b64decode(seen["x-jwt-payload"] + "=="))
    assert (payload["iss"], payload["sub"], payload["aud"]) == (ISSUER, "alice", AUDIENCE)
    assert "authorization" not in seen


def test_custom_locations_and_unfetched_keys(tmp_path: Path) -> None:
    store = keys.KeyStore(tmp_path / "idp")
    now = time.time()
    store.ensure(now)
    jwks = json.dumps(store.public_jwks(now, 300))
    alice = tokens.issue(
        store, issuer=ISSUER, subject="alice", now=now, ttl_seconds=300, audiences=(AUDIENCE,)
    )
    located = _rule(
        jwks,
        from_headers=(("x-token", "Token "),),
        from_params=("tok",),
        from_cookies=("session",),
        forward_original_token=True,
    )
    # Reads where `located` reads: its tokens are refused as an unknown issuer.
    unfetched = _rule(
        "",
        issuer="https://other.test",
        key_source="https://other.test/jwks",
        from_headers=(("x-token", "Token "),),
    )
    port = free_port(SERVER_IP, SERVER_APP_IP)
    with _server(tmp_path, (located, unfetched), (port,)):
        statuses = {
            "header with prefix": _get(port, "/secure", {"x-token": f"Token {alice}"})[0],
            "param": _get(port, f"/secure?tok={alice}")[0],
            "cookie": _get(port, "/secure", {"Cookie": f"a=b; session={alice}"})[0],
            # The default location is not read when the rule names others: no identity.
            "bearer (not configured)": _get(port, "/secure", _bearer(alice))[0],
            "other issuer, no keys yet": _get(
                port,
                "/public",
                {"x-token": "Token " + _other_token(tmp_path, now)},
            )[0],
        }
        _, seen = _get(port, "/secure", {"x-token": f"Token {alice}"})
    assert statuses == {
        "header with prefix": 200,
        "param": 200,
        "cookie": 200,
        "bearer (not configured)": 403,
        "other issuer, no keys yet": 401,
    }
    assert seen["x-token"] == f"Token {alice}"  # forwardOriginalToken: true


def _predict(rule: JwtRule, path: str, bearer: str | None, port: int, now: float) -> int:
    """The status the Python side predicts: 401 from jwks/validate.py, else the evaluator's
    decision on the token's principal and claims (200 or 403)."""
    request = Request(
        source_principal="",
        source_ip="127.0.0.1",
        destination_ip=SERVER_IP,
        destination_port=port,
        host=f"{SERVER_IP}:{port}",
        method="GET",
        path=path,
    )
    if bearer is not None:
        verdict = validate.check(bearer, (rule,), now)
        if not verdict.valid:
            return 401
        request = dataclasses.replace(
            request, request_principal=verdict.principal, claims=dict(verdict.claims)
        )
    return 200 if evaluate(AUTHZ, request).allowed else 403


def _other_token(tmp_path: Path, now: float) -> str:
    other = keys.KeyStore(tmp_path / "other-idp")
    return tokens.issue(
        other,
        issuer="https://other.test",
        subject="carol",
        now=now,
        ttl_seconds=300,
        audiences=(AUDIENCE,),
    )


def test_rule_without_keys_fails_closed(tmp_path: Path) -> None:
    """Before the first successful fetch: no made-up key set, yet every token is refused
    (401) in every location the rule reads, and requests without a token still pass."""
    now = time.time()
    token = _other_token(tmp_path, now)
    unfetched = _rule("", key_source="https://idp.test/jwks")
    cookie_only = _rule("", issuer="https://c.test", from_cookies=("session",))
    port = free_port(SERVER_IP, SERVER_APP_IP)
    with _server(tmp_path, (unfetched, cookie_only), (port,)):
        statuses = {
            "no token": _get(port, "/public")[0],
            "bearer": _get(port, "/public", _bearer(token))[0],
            "access_token param": _get(port, f"/public?x=1&access_token={token}")[0],
            "cookie": _get(port, "/public", {"Cookie": f"a=b; session={token}"})[0],
            "other cookie": _get(port, "/public", {"Cookie": "a=b"})[0],
        }
    assert statuses == {
        "no token": 200,
        "bearer": 401,
        "access_token param": 401,
        "cookie": 401,
        "other cookie": 200,
    }
