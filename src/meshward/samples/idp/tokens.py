"""Development JWTs: issue (sign with the key store's signing key) and check (RFC 7519).

Called by the IdP sample server (token and introspection endpoints), `meshward token
issue`, the JWT end-to-end tests and the verifier's attack probes (which need well-formed
tokens to tamper with). Claims: `iss`, `sub`, `iat`, `nbf`, `exp` always; `aud` when given;
extra claims as given (a claim given twice becomes a list).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from meshward.samples.idp.keys import KeyStore


def parse_claims(pairs: Sequence[str]) -> dict[str, Any]:
    """`name=value` pairs: a value that is JSON (number, list, object, true) is read as JSON,
    anything else is a string; a name given twice collects its values in a list."""
    claims: dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"claim {pair!r} is not name=value")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        if name in claims:
            previous = claims[name]
            claims[name] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            claims[name] = value
    return claims


def issue(
    store: KeyStore,
    *,
    issuer: str,
    subject: str,
    now: float,
    ttl_seconds: float,
    audiences: Sequence[str] = (),
    claims: Mapping[str, Any] | None = None,
) -> str:
    """A JWT signed with the store's signing key (created on first use, RS256)."""
    entry = store.ensure(now)
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + ttl_seconds),
    }
    if audiences:
        payload["aud"] = audiences[0] if len(audiences) == 1 else list(audiences)
    payload.update(claims or {})
    return jwt.encode(
        payload, store.private_key(entry.kid), algorithm=entry.alg, headers={"kid": entry.kid}
    )


def check(
    store: KeyStore, token: str, *, issuer: str, now: float, grace_seconds: float
) -> dict[str, Any] | None:
    """The payload of a token this IdP signed with a published key and that is valid now
    (signature, iss, exp, nbf; any audience), else None."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    entry = next(
        (e for e in store.published(now, grace_seconds) if e.kid == header.get("kid")), None
    )
    if entry is None or header.get("alg") != entry.alg:
        return None
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            store.private_key(entry.kid).public_key(),
            algorithms=[entry.alg],
            issuer=issuer,
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["exp", "iss", "sub"],
            },
        )
    except jwt.PyJWTError:
        return None
    # Time is checked against `now`, not PyJWT's own clock (injected time, tests).
    if payload["exp"] <= now or payload.get("nbf", now) > now:
        return None
    return payload
