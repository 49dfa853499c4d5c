"""Forged-token probes: every RequestAuthentication in force must refuse known JWT attacks.

Called by `verify/probes.run_probes` when a sidecar has jwt rules. For each such sidecar
(one HTTP port, each rule) the verifier forges tokens from *public* information only — the
key set the control plane published (control-plane.json) and the rule — exactly what an
attacker has, and sends each through another sidecar (mTLS, like any mesh caller) in the
rule's first token location. Expected: 401, and the server sidecar's access log names a
jwt_authn failure for the probe (`jwt_authn_access_denied{...}`). A key set that is stale is
reported as a failed `jwks` probe: the last good keys are in force but the IdP is not being
followed (DESIGN.md: a failed fetch shows in verify).

| probe | the forgery | what it proves |
|---|---|---|
| alg-none | unsigned (`alg: none`) | unsecured tokens are not accepted |
| hs256-public-key | HMAC keyed with the published RSA/EC key | no algorithm confusion |
| expired, not-yet-valid | `exp` / `nbf` 10 min off, real issuer and kid | time is checked |
| wrong-issuer | another issuer | only configured issuers |
| wrong-audience | an audience the rule does not list (rules with audiences) | audience is checked |
| unknown-kid | a key the IdP never published | only published keys |
| bad-signature | real kid, signed by another key (what tampering leaves) | signatures are checked |
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from meshward.jwks import resolve
from meshward.model.ir import MeshModel, OutboundService, ProxyModel, is_http
from meshward.model.request_authn import JwtRule
from meshward.state.layout import StateDir
from meshward.state.records import read_json
from meshward.verify import access_log, dial
from meshward.verify.authz_probes import service_for
from meshward.verify.probe import ProbeResult

SKEW = 600  # well past Envoy's 60 s clock skew
DENIED = "jwt_authn_access_denied"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Mapping[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def forgeries(rule: JwtRule, now: float) -> dict[str, str]:
    """name → forged token for `rule`, from its published key set only."""
    keys = json.loads(rule.jwks).get("keys", []) if rule.jwks else []
    published = keys[0] if keys else {}
    kid = str(published.get("kid", "k"))
    claims: dict[str, Any] = {"iss": rule.issuer, "sub": "verifier", "iat": int(now)}
    claims |= {"nbf": int(now), "exp": int(now + 300)}
    if rule.audiences:
        claims["aud"] = rule.audiences[0]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed(payload: Mapping[str, Any], header_kid: str = kid) -> str:
        return jwt.encode(dict(payload), stranger, algorithm="RS256", headers={"kid": header_kid})

    forged = {
        "alg-none": f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}.",
        "expired": signed(claims | {"nbf": int(now - 2 * SKEW), "exp": int(now - SKEW)}),
        "not-yet-valid": signed(claims | {"nbf": int(now + SKEW), "exp": int(now + 2 * SKEW)}),
        "wrong-issuer": signed(claims | {"iss": rule.issuer.rstrip("/") + "/evil"}),
        "unknown-kid": signed(claims, secrets.token_hex(8)),
        "bad-signature": signed(claims),
    }
    if rule.audiences:
        forged["wrong-audience"] = signed(claims | {"aud": "not-" + rule.audiences[0]})
    pem = _public_pem(published)
    if pem is not None:
        head = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}"
        mac = hmac.new(pem, head.encode(), hashlib.sha256).digest()
        forged["hs256-public-key"] = f"{head}.{_b64(mac)}"
    return forged


def _public_pem(jwk: Mapping[str, Any]) -> bytes | None:
    try:
        key = jwt.PyJWK(dict(jwk)).key
        return bytes(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    except (jwt.PyJWTError, AttributeError, ValueError):
        return None


def placement(rule: JwtRule, token: str) -> tuple[dict[str, str], str]:
    """Headers and query string carrying `token` in the rule's first location."""
    if rule.from_headers:
        name, prefix = rule.from_headers[0]
        return {name: prefix + token}, ""
    if rule.from_params:
        return {}, f"?{rule.from_params[0]}={token}"
    if rule.from_cookies:
        return {"Cookie": f"{rule.from_cookies[0]}={token}"}, ""
    return {"Authorization": f"Bearer {token}"}, ""


def jwt_probes(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    published = {s["source"]: s for s in (read_json(state.control_plane) or {}).get("jwks") or []}
    resolved = resolve.resolve(model, lambda url: (published.get(url) or {}).get("jwks") or "")
    results = [_source_probe(s) for s in published.values()]
    for server, service in _targets(resolved):
        client = next(
            (
                p
                for p in resolved.proxies
                if p.gateway is None and all(e.pod != p.pod.key for e in service.endpoints)
            ),
            None,
        )
        if client is None:
            continue
        logs = [state.sidecar_log(e.pod.namespace, e.pod.pod_name) for e in service.endpoints]
        for rule in server.jwt_rules:
            if not rule.jwks:
                continue  # no keys: refused anyway, and the jwks probe says why
            for name, token in forgeries(rule, time.time()).items():
                route = dial.via_sidecar(model.network, client, service)
                results.append(_send(client, service, route, logs, rule, name, token))
    return results


def _source_probe(source: Mapping[str, Any]) -> ProbeResult:
    state = source.get("state")
    code = f" {source['code']}" if source.get("code") else ""
    error = f"{code}: {source['error']}" if source.get("error") else code
    return ProbeResult(
        "jwks",
        source["source"],
        "key set fetched and current",
        f"{state}{error}",
        state == "ok",
    )


def _targets(model: MeshModel) -> Iterator[tuple[ProxyModel, OutboundService]]:
    """One HTTP service port of each set of replicas that validates tokens (the first
    replica stands for the others: they share the rules)."""
    seen: set[tuple[str, str, int]] = set()
    for proxy in model.proxies:
        if not proxy.jwt_rules:
            continue
        for port in proxy.inbound:
            service = service_for(model, proxy, port) if is_http(port.protocol) else None
            if service is None or (key := (service.namespace, service.name, 0)) in seen:
                continue
            seen.add(key)
            yield proxy, service
            break


def _send(
    client: ProxyModel,
    service: OutboundService,
    route: dial.Route | None,
    logs: list[Path],
    rule: JwtRule,
    name: str,
    token: str,
) -> ProbeResult:
    probe_id = uuid.uuid4().hex
    headers, query = placement(rule, token)
    host = f"{service.fqdn}:{service.port}"
    target = f"{name}: {client.pod.key} → {service.name}.{service.namespace}:{service.port}"
    # Through the client's sidecar as its app sends (verify/dial.py: in netns mode from
    # inside the client's pod to the service VIP).
    status = (
        None
        if route is None
        else dial.http_request(
            route, "GET", host, f"/{query}", {"X-Meshward-Probe": probe_id, **headers}
        )
    )
    entry = access_log.wait_for(logs, lambda e: e.get("probe") == probe_id)
    details = str(entry.get("details")) if entry else "no access-log entry"
    passed = status == 401 and details.startswith(DENIED)
    return ProbeResult(
        "jwt", target, f"401 ({rule.origin}), {DENIED}", f"HTTP {status}; {details}", passed
    )
