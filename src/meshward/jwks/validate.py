"""Check one JWT the way a sidecar's jwt_authn filter does, in Python.

Called by `meshward authz explain --jwt TOKEN` (and its tests): the same rules and key sets
Envoy got (model JwtRules with the control plane's fetched keys filled in) decide whether the
token is valid, which rule accepted it, and the principal and claims RBAC then sees. The
order and messages follow Envoy's jwt_authn (extensions/filters/http/jwt_authn
authenticator.cc and jwt_verify_lib status strings), so `explain` names the same reason the
sidecar's access log shows: structure, issuer, time (60 s clock skew, Envoy's default),
audience, key (kid and alg), then signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jwt

from meshward.model.request_authn import JwtRule

CLOCK_SKEW_SECONDS = 60  # JwtProvider.clock_skew_seconds default


@dataclass(frozen=True, slots=True)
class Verdict:
    """`valid` with the accepting rule, principal `<iss>/<sub>` and the payload; otherwise
    `reason` is Envoy's failure (the request gets 401)."""

    valid: bool
    reason: str
    rule: JwtRule | None = None
    principal: str = ""
    claims: Mapping[str, object] = field(default_factory=dict)


def check(token: str, rules: Sequence[JwtRule], now: float) -> Verdict:
    """The verdict on `token` presented in a location the rules read."""
    if token.count(".") != 2:
        return Verdict(False, "Jwt is not in the form of Header.Payload.Signature")
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        return Verdict(False, f"Jwt header or payload is malformed ({error})")
    issuer = payload.get("iss")
    rule = next((r for r in rules if r.issuer == issuer), None)
    if rule is None:
        return Verdict(False, "Jwt issuer is not configured")
    if isinstance(payload.get("exp"), int | float) and now > payload["exp"] + CLOCK_SKEW_SECONDS:
        return Verdict(False, "Jwt is expired", rule)
    if isinstance(payload.get("nbf"), int | float) and now < payload["nbf"] - CLOCK_SKEW_SECONDS:
        return Verdict(False, "Jwt not yet valid", rule)
    if rule.audiences:
        audience = payload.get("aud")
        given = audience if isinstance(audience, list) else [audience]
        if not set(rule.audiences) & {a for a in given if isinstance(a, str)}:
            return Verdict(False, "Audiences in Jwt are not allowed (answered 401)", rule)
    if not rule.jwks:
        return Verdict(False, "no keys fetched yet for this rule (fail closed)", rule)
    key = _key(rule.jwks, header)
    if key is None:
        return Verdict(False, "Jwks doesn't have key to match kid or alg from Jwt", rule)
    try:
        jwt.decode(
            token,
            key.key,
            algorithms=[str(header.get("alg"))],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError:
        return Verdict(False, "Jwt verification fails", rule)
    principal = f"{issuer}/{payload.get('sub', '')}"
    return Verdict(True, f"valid for {rule.origin}", rule, principal, payload)


def _key(jwks: str, header: Mapping[str, object]) -> jwt.PyJWK | None:
    """A key with the token's kid (any, if the token has none) whose algorithm can be the
    token's: an RSA key never verifies an HS256 token (algorithm confusion)."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg == "none" or alg.startswith("HS"):
        return None
    for raw in json.loads(jwks).get("keys", []):
        if header.get("kid") is not None and raw.get("kid") != header.get("kid"):
            continue
        if raw.get("alg") not in (None, alg):
            continue
        try:
            key = jwt.PyJWK(raw, algorithm=alg)
        except jwt.PyJWTError:
            continue
        return key
    return None
