"""`security.istio.io/v1` (and v1beta1) RequestAuthentication → `resources.RequestAuthentication`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/security/request_authentication/): `selector` and
`jwtRules[]` with every field — issuer, audiences, jwksUri, jwks, fromHeaders (name, prefix),
fromParams, fromCookies, outputPayloadToHeader, forwardOriginalToken, outputClaimToHeaders
(header, claim) and timeout. Checks copied from Istio's validation (pilot
`ValidateRequestAuthentication`): issuer required, jwksUri an http(s) URL, header names
non-empty, outputClaimToHeaders header and claim given.

meshward is stricter where Istio would silently do nothing useful: an inline `jwks` that is
not a JSON Web Key Set with at least one key (RFC 7517 §5) is refused (MW0161) instead of
failing every token at run time; `targetRef`/`targetRefs` are refused (MW0163) rather than
attaching the rule to nothing.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from meshward.config import duration
from meshward.config import selector as workload_selector
from meshward.config.fields import Fields
from meshward.config.resources import JwtRuleSpec, Labels, Meta, RequestAuthentication

# RFC 7230 §3.2.6 token: what an HTTP header name may be.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Istio's default jwksUri fetch timeout (PILOT_JWT_PUB_KEY_TIMEOUT... RequestAuthentication
# `timeout`: "If not set, the default timeout is 5s").
DEFAULT_TIMEOUT_SECONDS = 5.0


def parse(spec: Fields, meta: Meta, labels: Labels) -> RequestAuthentication | None:
    """The RequestAuthentication, or None if any field was reported as an error."""
    del labels
    workload_selector.refuse_target_ref(spec, "MW0163")
    selector = workload_selector.parse(spec, "selector")
    rules = tuple(r for r in (_rule(item) for item in spec.items("jwtRules") or ()) if r)
    spec.finish()
    if spec.report.failed:
        return None
    return RequestAuthentication(meta, selector, rules)


def _rule(item: Fields) -> JwtRuleSpec | None:
    issuer = item.string("issuer", required=True)
    audiences = item.strings("audiences") or ()
    jwks_uri = item.string("jwksUri") or ""
    if jwks_uri and not _is_http_url(jwks_uri):
        item.disallow("jwksUri", f"{jwks_uri!r} is not an http or https URL", code="MW0160")
    jwks = item.string("jwks") or ""
    if jwks and not _is_key_set(jwks):
        item.disallow("jwks", "jwks is not a JSON Web Key Set with at least one key", code="MW0161")
    from_headers = tuple(h for h in (_from_header(h) for h in item.items("fromHeaders") or ()) if h)
    from_params = item.strings("fromParams") or ()
    from_cookies = item.strings("fromCookies") or ()
    for key, values in (("fromParams", from_params), ("fromCookies", from_cookies)):
        if any(not v for v in values):
            item.disallow(key, f"{key} has an empty name", code="MW0162")
    payload_header = item.string("outputPayloadToHeader") or ""
    if payload_header:
        _check_header(item, "outputPayloadToHeader", payload_header)
    forward = item.boolean("forwardOriginalToken") or False
    claim_headers = tuple(
        c for c in (_claim_header(c) for c in item.items("outputClaimToHeaders") or ()) if c
    )
    timeout = _timeout(item)
    item.finish()
    if issuer is None:
        return None
    return JwtRuleSpec(
        issuer=issuer,
        audiences=audiences,
        jwks_uri=jwks_uri,
        jwks=jwks,
        from_headers=from_headers,
        from_params=from_params,
        from_cookies=from_cookies,
        output_payload_to_header=payload_header,
        forward_original_token=forward,
        output_claim_to_headers=claim_headers,
        timeout_seconds=DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout,
        line=item.line,
    )


def _from_header(item: Fields) -> tuple[str, str] | None:
    name = item.string("name", required=True)
    prefix = item.string("prefix") or ""
    item.finish()
    if name is None or not _check_header(item, "name", name):
        return None
    return (name, prefix)


def _claim_header(item: Fields) -> tuple[str, str] | None:
    header = item.string("header", required=True)
    claim = item.string("claim", required=True)
    item.finish()
    if header is None or claim is None or not _check_header(item, "header", header):
        return None
    return (header, claim)


def _check_header(item: Fields, key: str, name: str) -> bool:
    if _HEADER_NAME.match(name):
        return True
    item.disallow(key, f"{name!r} is not an HTTP header name", code="MW0162")
    return False


def _timeout(item: Fields) -> float | None:
    text = item.string("timeout")
    if text is None:
        return None
    seconds = duration.parse_duration(text)
    if seconds is None or seconds <= 0:
        item.disallow("timeout", f"{text!r} is not a positive duration like 5s", code="MW0164")
        return None
    return float(seconds)


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_key_set(text: str) -> bool:
    """RFC 7517 §5: a JSON object whose `keys` member is a non-empty array of objects."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    keys = value.get("keys") if isinstance(value, dict) else None
    return isinstance(keys, list) and bool(keys) and all(isinstance(k, dict) for k in keys)
