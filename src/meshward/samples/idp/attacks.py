"""Forged and broken JWTs that a RequestAuthentication must refuse, one per known attack.

Called by the verifier's JWT probes (`meshward verify`) and the JWT end-to-end tests. Each
token is built from the real IdP's key store so that exactly one thing is wrong with it:

| name | what is wrong | expected |
|---|---|---|
| alg-none | `alg: none`, no signature (RFC 7519 §6 unsecured JWT) | 401 |
| hs256-public-key | HMAC-SHA256 keyed with the RSA public key PEM (algorithm confusion) | 401 |
| expired | `exp` 10 min ago (Envoy allows 60 s clock skew) | 401 |
| not-yet-valid | `nbf` 10 min ahead | 401 |
| wrong-issuer | `iss` another issuer, signed by the real key | 401 |
| wrong-audience | `aud` none of the rule's audiences (only when the rule names some) | 401 |
| unknown-kid | signed by a key the IdP never published | 401 |
| tampered-payload | a valid token whose payload was edited (`sub` changed), signature kept | 401 |

A valid token in a location the rule does not read (`elsewhere_header`) is not an attack on
the signature but on the extraction: it must not become an identity (the request then has
no principal; an ALLOW that requires requestPrincipals answers 403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from meshward.samples.idp import tokens
from meshward.samples.idp.keys import KeyStore

ELSEWHERE_HEADER = "X-Meshward-Unconfigured-Token"
_SKEW = 600  # well past Envoy's default clock_skew_seconds (60)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def forged(
    store: KeyStore, *, issuer: str, subject: str, now: float, audiences: Sequence[str] = ()
) -> dict[str, str]:
    """name → token, for every attack that applies (wrong-audience needs `audiences`)."""
    entry = store.ensure(now)
    key = store.private_key(entry.kid)
    aud: dict[str, Any] = {"aud": audiences[0]} if audiences else {}
    payload = {"iss": issuer, "sub": subject, "iat": int(now), "nbf": int(now)}
    payload |= {"exp": int(now + 300)} | aud

    def signed(claims: dict[str, Any]) -> str:
        return jwt.encode(claims, key, algorithm=entry.alg, headers={"kid": entry.kid})

    good = tokens.issue(
        store, issuer=issuer, subject=subject, now=now, ttl_seconds=300, audiences=audiences
    )
    head, _body, signature = good.split(".")
    tampered = _segment({**jwt.decode(good, options={"verify_signature": False}), "sub": "admin"})
    none_token = f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': entry.kid})}.{_segment(payload)}."
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confusion_input = (
        f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': entry.kid})}.{_segment(payload)}"
    )
    confusion = hmac.new(public_pem, confusion_input.encode(), hashlib.sha256).digest()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacks = {
        "alg-none": none_token,
        "hs256-public-key": f"{confusion_input}.{_b64(confusion)}",
        "expired": signed(
            payload
            | {"iat": int(now - 2 * _SKEW), "nbf": int(now - 2 * _SKEW), "exp": int(now - _SKEW)}
        ),
        "not-yet-valid": signed(payload | {"nbf": int(now + _SKEW), "exp": int(now + 2 * _SKEW)}),
        "wrong-issuer": signed(payload | {"iss": issuer.rstrip("/") + "/evil"}),
        "unknown-kid": jwt.encode(
            payload, stranger, algorithm="RS256", headers={"kid": secrets.token_hex(8)}
        ),
        "tampered-payload": f"{head}.{tampered}.{signature}",
    }
    if audiences:
        attacks["wrong-audience"] = signed(payload | {"aud": "not-" + audiences[0]})
    return attacks
