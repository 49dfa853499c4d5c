"""The Python authorization evaluator: what Envoy decides for one request on one port.

Called by `meshward authz explain` and `authz preview` (cli/authz.py), the verifier
(verify/authz_probes.py) and the differential test that holds it to a real Envoy. It reads the
same `PortAuthz` the xds translator turns into RBAC filters, and models Envoy's RBAC
evaluation of the translation Istio generates (pilot authz builder + generator):

- Filter order (xds/rbac.py): the dry-run filters, then AUDIT, then CUSTOM, then DENY, then
  ALLOW; a filter that denies ends the request, so later enforced filters never run (AUDIT,
  which never denies, runs first so that it marks denied requests too).
  CUSTOM with a provider (`PortAuthz.ext_authz`): a request (or TCP connection) its rules
  match is sent to the provider first (`Decision.provider`), which the evaluator cannot predict;
  the rest of the decision is what follows if it allows. CUSTOM without a usable provider
  fails closed: its rules act as a DENY filter.
- Inside one filter Envoy keeps policies in a `std::map` by name, so the policy it reports
  (`rbac_access_denied_matched_policy[...]`, `shadow_effective_policy_id`) is the matching
  rule whose name `ns[..]-policy[..]-rule[i]` sorts first; `evaluate` names the same one.
- Shadow rules (dry-run): every dry-run policy has its own shadow-only filter, and these
  run before all enforced filters (xds/rbac.py), so each request, denied ones included, gets
  one ShadowResult per dry-run policy. An ALLOW shadow would allow iff some rule matches; a
  DENY shadow would allow iff none matches.
- Matchers, as Istio builds them: principals against the peer URI SAN `spiffe://<principal>`
  ("*" is the regex `.+`, "*x" the regex `spiffe://.*x`, "x*" the prefix `spiffe://x`);
  namespaces via the regex `.*/ns/<ns, * → .*>/.*` on the same SAN; no peer certificate
  (`source_principal == ""`) matches no principal or namespace, so not* forms hold; hosts
  on `:authority`, case-insensitive, "*" = header present; methods exact on `:method`;
  paths on Envoy's url_path (query and fragment removed), "*" = regex `.+`, templates as
  Envoy's uri_template (`{*}` one segment of pchars, `{**}` any number, `/` included);
  headers exact/prefix/suffix/present on each value of a repeated header alone (Envoy 1.40
  matches if any one value does; it does not join them); CIDRs by containment (`ipBlocks`
  on the direct peer address, `remoteIpBlocks` on the XFF-derived one); JWT matchers on
  `request_principal` (`<iss>/<sub>`, split at the last "/") and `claims` — absent when
  `request_principal` is "" (no jwt_authn metadata), so they never match and their not*
  forms always do.

Decisions documented here: a peer certificate is assumed to carry its identity as the first
URI SAN (meshward SVIDs do), so the subject/DNS-SAN fallback of Envoy's authenticated matcher
is not modelled; `Request.path` is the path as Envoy's RBAC filter sees it (after the
connection manager's own normalisation); `experimental.envoy.filters.*` metadata is never
present on a sidecar, so those conditions never match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

from meshward.model.authorization import (
    ACTION_ORDER,
    AuthzAction,
    AuthzPolicy,
    AuthzRule,
    Condition,
    OperationMatch,
    PortAuthz,
    SourceMatch,
    StringMatch,
)
from meshward.model.authz import string_match
from meshward.model.request_authn import SPACE_DELIMITED_CLAIMS

DecisionAction = Literal["CUSTOM", "DENY", "ALLOW", "DEFAULT"]
SPIFFE = "spiffe://"
# Envoy uri_template pchar class (uri_template_internal.cc kLiteral).
_PCHAR = r"a-zA-Z0-9\-._~%!$&'()+,;:@="


@dataclass(frozen=True, slots=True)
class Request:
    """One request (or TCP connection, `is_http=False`) as the inbound sidecar sees it.

    `source_principal`: the peer's Istio principal `<td>/ns/<ns>/sa/<sa>` from its mTLS
    certificate, "" for plaintext. `remote_ip`: the X-Forwarded-For-derived client address,
    "" for the same as `source_ip`. `path` may carry a query. `headers`: lowercase names.
    `request_principal`: `<iss>/<sub>` of a validated JWT, "" for none; `claims` its payload.
    """

    source_principal: str
    source_ip: str
    destination_ip: str
    destination_port: int
    remote_ip: str = ""
    sni: str = ""
    host: str = ""
    method: str = ""
    path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    request_principal: str = ""
    claims: Mapping[str, object] = field(default_factory=dict)
    is_http: bool = True


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """What one dry-run policy would have decided: the policy "ns/name", the rule that
    matched (None when none did), the policy's action and the shadow engine's result."""

    policy: str
    rule: int | None
    action: AuthzAction
    would_allow: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """The enforced outcome. `action` is the filter that decided (DEFAULT: no ALLOW policy),
    `policy`/`rule`/`rule_id` the rule Envoy names ("", None, "" when none: Envoy's
    `[none]`). `audited`: matching AUDIT rules as "ns/name rule[i]", in Envoy's order.
    `provider`: the CUSTOM provider consulted first ("" when none is): the outcome is then
    what DENY and ALLOW decide if the provider allows; if it denies, the request is denied
    with the provider's status."""

    allowed: bool
    action: DecisionAction
    policy: str
    rule: int | None
    rule_id: str
    reason: str
    shadow: tuple[ShadowResult, ...] = ()
    audited: tuple[str, ...] = ()
    provider: str = ""


@dataclass(frozen=True, slots=True)
class _Hit:
    policy: AuthzPolicy
    rule: AuthzRule

    @property
    def rule_id(self) -> str:
        return self.policy.rule_id(self.rule.index)

    @property
    def label(self) -> str:
        return f"{self.policy.ref} rule[{self.rule.index}]"


def evaluate(authz: PortAuthz, request: Request) -> Decision:
    """Envoy's decision for `request` on a port whose policies are `authz`."""
    shadow = tuple(
        _shadow(policy, request)
        for action in ACTION_ORDER
        for policy in authz.of(action, dry_run=True)
    )
    audited = tuple(h.label for h in _hits(authz.of("AUDIT"), request))
    custom = _first_hit(authz.of("CUSTOM"), request)
    if custom is not None and authz.ext_authz is None:
        return _deny(
            "CUSTOM",
            custom,
            f"matched CUSTOM policy {custom.label}; external authorization "
            f"(provider {custom.policy.provider!r}) is not available, so it fails closed",
            shadow,
            audited,
        )
    decision = _deny_then_allow(authz, request, shadow, audited)
    if custom is None or authz.ext_authz is None:
        return decision
    provider = authz.ext_authz.name
    return replace(
        decision,
        provider=provider,
        reason=f"CUSTOM provider {provider!r} would be consulted (matched {custom.label}); "
        f"it decides first, and if it allows: {decision.reason}",
    )


def _deny_then_allow(
    authz: PortAuthz,
    request: Request,
    shadow: tuple[ShadowResult, ...],
    audited: tuple[str, ...],
) -> Decision:
    """The DENY and ALLOW engines' decision (after CUSTOM let the request through)."""
    deny = _first_hit(authz.of("DENY"), request)
    if deny is not None:
        reason = f"matched DENY policy {deny.label}"
        return _deny("DENY", deny, reason, shadow, audited)
    allow_policies = authz.of("ALLOW")
    if not allow_policies:
        return Decision(True, "DEFAULT", "", None, "", "no ALLOW policy applies", shadow, audited)
    allow = _first_hit(allow_policies, request)
    if allow is None:
        in_force = ", ".join(p.ref for p in allow_policies)
        reason = f"no ALLOW rule matched; ALLOW policies in force: {in_force}"
        return Decision(False, "ALLOW", "", None, "", reason, shadow, audited)
    return Decision(
        True,
        "ALLOW",
        allow.policy.ref,
        allow.rule.index,
        allow.rule_id,
        f"matched ALLOW policy {allow.label}",
        shadow,
        audited,
    )


def _deny(
    action: DecisionAction,
    hit: _Hit,
    reason: str,
    shadow: tuple[ShadowResult, ...] = (),
    audited: tuple[str, ...] = (),
) -> Decision:
    return Decision(
        False, action, hit.policy.ref, hit.rule.index, hit.rule_id, reason, shadow, audited
    )


def _shadow(policy: AuthzPolicy, request: Request) -> ShadowResult:
    """One dry-run policy's shadow filter. A matching rule makes a DENY (or fail-closed
    CUSTOM) shadow deny and an ALLOW shadow allow; an AUDIT (LOG) shadow always allows."""
    hit = _first_hit((policy,), request)
    matched = hit is not None
    would_allow = {"ALLOW": matched, "AUDIT": True}.get(policy.action, not matched)
    rule = hit.rule.index if hit is not None else None
    return ShadowResult(policy.ref, rule, policy.action, would_allow)


def _hits(policies: Sequence[AuthzPolicy], request: Request) -> list[_Hit]:
    """Every matching rule, in Envoy's policy-map order (by rule name)."""
    hits = [_Hit(p, r) for p in policies for r in p.rules if rule_matches(r, request)]
    return sorted(hits, key=lambda h: h.rule_id)


def _first_hit(policies: Sequence[AuthzPolicy], request: Request) -> _Hit | None:
    hits = _hits(policies, request)
    return hits[0] if hits else None


# --- one rule ------------------------------------------------------------------------------


def rule_matches(rule: AuthzRule, request: Request) -> bool:
    """from (any source) AND to (any operation) AND when (every condition)."""
    return (
        (not rule.sources or any(source_matches(s, request) for s in rule.sources))
        and (not rule.operations or any(operation_matches(o, request) for o in rule.operations))
        and all(condition_matches(c, request) for c in rule.conditions)
    )


def _field(
    matches: Callable[[str], bool], values: Sequence[str], not_values: Sequence[str]
) -> bool:
    """Istio: values OR'ed (absent: no constraint), then NOT(any of notValues)."""
    return (not values or any(matches(v) for v in values)) and not any(
        matches(v) for v in not_values
    )


def _each(
    matches: Callable[[StringMatch], bool],
    values: Sequence[StringMatch],
    not_values: Sequence[StringMatch],
) -> bool:
    return (not values or any(matches(v) for v in values)) and not any(
        matches(v) for v in not_values
    )


def source_matches(source: SourceMatch, request: Request) -> bool:
    return (
        _each(lambda m: principal_matches(m, request), source.principals, source.not_principals)
        and _each(
            lambda m: request_principal_matches(m, request),
            source.request_principals,
            source.not_request_principals,
        )
        and _each(lambda m: namespace_matches(m, request), source.namespaces, source.not_namespaces)
        and _field(lambda c: ip_in(request.source_ip, c), source.ip_blocks, source.not_ip_blocks)
        and _field(
            lambda c: ip_in(request.remote_ip or request.source_ip, c),
            source.remote_ip_blocks,
            source.not_remote_ip_blocks,
        )
    )


def operation_matches(op: OperationMatch, request: Request) -> bool:
    # On a TCP connection Envoy's network RBAC filter has no headers: host, method and path
    # matchers see nothing (the IR keeps HTTP fields off TCP ports anyway).
    host, method, path = (
        (request.host, request.method, request.path) if request.is_http else ("", "", "")
    )
    return (
        _each(lambda m: host_matches(m, host), op.hosts, op.not_hosts)
        and _field(lambda v: v == method, op.methods, op.not_methods)
        and _each(lambda m: path_matches(m, path), op.paths, op.not_paths)
    )


def condition_matches(cond: Condition, request: Request) -> bool:
    key = cond.key
    matcher = _CONDITIONS.get(key)
    if matcher is None:
        for prefix, bracketed in _BRACKETED:
            if key.startswith(prefix):
                name = key[len(prefix) :]
                values, not_values = cond.values, cond.not_values
                return _field(partial(bracketed, name, request=request), values, not_values)
        raise ValueError(f"condition key {key!r} is not a documented key")  # config checked
    return _field(lambda v: matcher(v, request), cond.values, cond.not_values)


# --- matchers ------------------------------------------------------------------------------


def string_matches(m: StringMatch, value: str) -> bool:
    """An Envoy StringMatcher as Istio builds it: "*" is the regex `.+` (non-empty)."""
    if m.kind == "exact":
        return value == m.value
    if m.kind == "prefix":
        return value.startswith(m.value)
    if m.kind == "suffix":
        return value.endswith(m.value)
    if m.kind == "presence":
        return value != ""
    return path_matches(m, value)


def _written(m: StringMatch) -> str:
    """The value as the user wrote it (Istio derives several matchers from that text)."""
    return {
        "exact": m.value,
        "prefix": f"{m.value}*",
        "suffix": f"*{m.value}",
        "presence": "*",
        "template": m.value,
    }[m.kind]


def _peer_uri(request: Request) -> str | None:
    return SPIFFE + request.source_principal if request.source_principal else None


def principal_matches(m: StringMatch, request: Request) -> bool:
    uri = _peer_uri(request)
    if uri is None:
        return False  # Envoy's authenticated matcher: no peer certificate, no match
    if m.kind == "suffix":  # Istio: regex `spiffe://.*<suffix>`
        return uri.startswith(SPIFFE) and uri[len(SPIFFE) :].endswith(m.value)
    if m.kind == "presence":
        return True  # regex `.+` on a non-empty SAN
    return string_matches(StringMatch(m.kind, SPIFFE + m.value), uri)


def namespace_matches(m: StringMatch, request: Request) -> bool:
    uri = _peer_uri(request)
    if uri is None:
        return False
    pattern = ".*".join(re.escape(part) for part in _written(m).split("*"))
    return re.fullmatch(f".*/ns/{pattern}/.*", uri) is not None


def host_matches(m: StringMatch, host: str) -> bool:
    """`:authority`, case-insensitive (Istio HostMatcher); "*" is present_match."""
    if m.kind == "presence":
        return host != ""
    return string_matches(StringMatch(m.kind, m.value.lower()), host.lower())


def url_path(path: str) -> str:
    """Envoy's url_path: the :path without query string and fragment."""
    return path.split("?", 1)[0].split("#", 1)[0]


def path_matches(m: StringMatch, path: str) -> bool:
    path = url_path(path)
    if m.kind == "template":
        return re.fullmatch(template_regex(m.value), path) is not None
    return string_matches(m, path)


def template_regex(template: str) -> str:
    """Envoy uri_template as Istio writes it (`{*}` → `*`, `{**}` → `**`), as a regex."""
    parts = []
    for segment in template[1:].split("/"):
        if segment == "{*}":
            parts.append(f"[{_PCHAR}]+")
        elif segment == "{**}":
            parts.append(f"[{_PCHAR}/]*")
        else:
            parts.append(re.escape(segment))
    return "/" + "/".join(parts)


def ip_in(address: str, block: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(block, strict=False)
    except ValueError:
        return False  # no (or no parseable) address: Envoy's CIDR matcher does not match


def _split_principal(value: str) -> tuple[str, str]:
    issuer, _, subject = value.rpartition("/")
    return issuer, subject


def request_principal_matches(m: StringMatch, request: Request) -> bool:
    """Istio's requestPrincipalGenerator: the written value split into iss and sub matchers."""
    if not request.request_principal:
        return False
    iss, sub = _split_principal(request.request_principal)
    value = _written(m)
    found = "/" in value
    want_iss, want_sub = value.rsplit("/", 1) if found else (value, "")
    if value == "*":
        return iss != "" and sub != ""
    if value.startswith("*"):
        if found:
            iss_ok = iss != "" if want_iss == "*" else iss.endswith(want_iss[1:])
            return iss_ok and sub == want_sub
        return iss != "" and sub.endswith(value[1:])
    if value.endswith("*"):
        if found:
            sub_ok = sub != "" if want_sub == "*" else sub.startswith(want_sub[:-1])
            return iss == want_iss and sub_ok
        return iss.startswith(value[:-1]) and sub != ""
    return iss == want_iss and sub == want_sub


def _claim(request: Request, path: Sequence[str]) -> object:
    if not request.request_principal:
        return None  # no jwt_authn metadata at all
    value: object = request.claims
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    if len(path) == 1 and path[0] in SPACE_DELIMITED_CLAIMS and isinstance(value, str):
        return [part for part in value.split(" ") if part]
    return value


def _claim_matches(value: object, written: str) -> bool:
    """A claim that is a string, or a list with a string element, matching `written`."""
    m = string_match(written)
    if isinstance(value, str):
        return string_matches(m, value)
    if isinstance(value, list):
        return any(isinstance(v, str) and string_matches(m, v) for v in value)
    return False


def header_values(request: Request, name: str) -> tuple[str, ...]:
    """Every value of a header, one per occurrence (none: absent). Envoy's RBAC header
    matcher matches when any one value does: `x-tag: a` and `x-tag: b` match "a" and "b",
    never "a,b" (measured on Envoy 1.40 by the differential test)."""
    if not request.is_http:
        return ()
    name = name.lower()
    pseudo = {":authority": request.host, ":method": request.method, ":path": request.path}
    if name in pseudo:
        return (pseudo[name],) if pseudo[name] else ()
    return tuple(v for n, v in request.headers if n.lower() == name)


def _header_matches(name: str, written: str, request: Request) -> bool:
    values = header_values(request, name)
    if written == "*":
        return bool(values)  # present_match, an empty value included
    return any(string_matches(string_match(written), value) for value in values)


def _service_account_matches(written: str, request: Request) -> bool:
    uri = _peer_uri(request)
    if uri is None:
        return False
    namespace, _, name = written.partition("/")
    pattern = f"spiffe://.+/ns/{re.escape(namespace)}/(.+/|)sa/{re.escape(name)}(/.+)?"
    return re.fullmatch(pattern, uri) is not None


_CONDITIONS: dict[str, Callable[[str, Request], bool]] = {
    "source.ip": lambda v, r: ip_in(r.source_ip, v),
    "remote.ip": lambda v, r: ip_in(r.remote_ip or r.source_ip, v),
    "destination.ip": lambda v, r: ip_in(r.destination_ip, v),
    "destination.port": lambda v, r: int(v) == r.destination_port,
    "source.namespace": lambda v, r: namespace_matches(string_match(v), r),
    "source.principal": lambda v, r: principal_matches(string_match(v), r),
    "source.serviceAccount": _service_account_matches,
    "request.auth.principal": lambda v, r: request_principal_matches(string_match(v), r),
    "request.auth.audiences": lambda v, r: _claim_matches(_claim(r, ("aud",)), v),
    "request.auth.presenter": lambda v, r: _claim_matches(_claim(r, ("azp",)), v),
    "connection.sni": lambda v, r: string_matches(string_match(v), r.sni),
}


def _claim_path(name: str) -> tuple[str, ...]:
    return tuple(part for part in re.findall(r"\[([^\[\]]+)\]", name))


def _bracket_header(name: str, written: str, request: Request) -> bool:
    return _header_matches(name.strip("[]"), written, request)


def _bracket_claim(name: str, written: str, request: Request) -> bool:
    return _claim_matches(_claim(request, _claim_path(name)), written)


def _envoy_filter_metadata(name: str, written: str, request: Request) -> bool:
    del name, written, request
    return False  # no filter before RBAC writes dynamic metadata on a meshward sidecar


_BRACKETED: tuple[tuple[str, Callable[..., bool]], ...] = (
    ("request.headers", _bracket_header),
    ("request.auth.claims", _bracket_claim),
    ("experimental.envoy.filters.", _envoy_filter_metadata),
)
