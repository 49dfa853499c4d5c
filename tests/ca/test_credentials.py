"""Workload tokens: a valid token names its identity and node; every forgery is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from ca_testkit import ALICE, NOW, Keys
from cryptography.hazmat.primitives import serialization

from meshward.ca.credentials import WorkloadTokens
from meshward.errors import AuthenticationError

TTL = timedelta(hours=1)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "meshward-ca",
        "aud": "meshward-ca",
        "sub": ALICE.uri,
        "node": "node-1",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + TTL).timestamp()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(alg: str, claims: dict[str, Any], secret: bytes | None) -> str:
    """A token built by hand, as an attacker would (PyJWT refuses to make these)."""
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    if secret is None:
        return f"{head}.{body}."
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


@pytest.fixture
def tokens(tmp_path: Path, keys: Keys) -> WorkloadTokens:
    return WorkloadTokens.load_or_create(tmp_path, key=keys.token)


def test_round_trip(tokens: WorkloadTokens) -> None:
    token = tokens.issue_workload_token(ALICE, node="node-1", now=NOW, ttl=TTL)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert tokens.verify_workload_token(token, now=NOW + TTL - timedelta(seconds=1)) == (
        ALICE,
        "node-1",
    )


def test_key_file_is_private_and_reloaded(tmp_path: Path, tokens: WorkloadTokens) -> None:
    path = tmp_path / "token-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = tokens.issue_workload_token(ALICE, node="node-1", now=NOW, ttl=TTL)
    assert WorkloadTokens.load_or_create(tmp_path).verify_workload_token(token, now=NOW) == (
        ALICE,
        "node-1",
    )


def test_repr_hides_the_key(tokens: WorkloadTokens) -> None:
    assert repr(tokens) == "WorkloadTokens(key=<redacted>)"


Forge = Callable[[WorkloadTokens, Keys], str]

FORGERIES: list[tuple[str, Forge, str]] = [
    (
        "expired",
        lambda t, k: t.issue_workload_token(ALICE, node="n", now=NOW - TTL, ttl=TTL),
        r"^token expired or not yet valid",
    ),
    (
        "issued in the future",
        lambda t, k: t.issue_workload_token(
            ALICE, node="n", now=NOW + timedelta(seconds=5), ttl=TTL
        ),
        r"^token expired or not yet valid",
    ),
    ("alg none", lambda t, k: _unsigned("none", _claims(), None), r"^token alg 'none' refused"),
    (
        "HS256 keyed with the public key",
        lambda t, k: _unsigned(
            "HS256",
            _claims(),
            k.token.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        r"^token alg 'HS256' refused",
    ),
    (
        "wrong audience",
        lambda t, k: jwt.encode(_claims(aud="someone-else"), k.token, algorithm="ES256"),
        r"^token rejected: Audience doesn't match",
    ),
    (
        "wrong issuer",
        lambda t, k: jwt.encode(_claims(iss="evil"), k.token, algorithm="ES256"),
        r"^token rejected: Invalid issuer",
    ),
    (
        "signed by another key",
        lambda t, k: jwt.encode(_claims(), k.other_token, algorithm="ES256"),
        r"^token rejected: Signature verification failed",
    ),
    (
        "missing node",
        lambda t, k: jwt.encode(_claims(node=None), k.token, algorithm="ES256"),
        r'^token rejected: Token is missing the "node" claim',
    ),
    (
        "subject not a SPIFFE ID",
        lambda t, k: jwt.encode(_claims(sub="alice"), k.token, algorithm="ES256"),
        r"^token subject: not an Istio SPIFFE ID",
    ),
    ("not a JWT", lambda t, k: "garbage", r"^malformed token"),
]


@pytest.mark.parametrize(
    ("forge", "message"), [f[1:] for f in FORGERIES], ids=[f[0] for f in FORGERIES]
)
def test_forgeries_refused(tokens: WorkloadTokens, keys: Keys, forge: Forge, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        tokens.verify_workload_token(forge(tokens, keys), now=NOW)
