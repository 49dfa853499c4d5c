"""Authorization IR: AuthorizationPolicies compiled for one inbound port (part of model/ir).

Built by model/ (authz compile), read by xds/ (RBAC filters), the Python evaluator
(`meshward authz explain`, `authz preview`) and the verifier — all from the same values, so
what the CLI explains is what Envoy enforces (the differential test holds them to it).

Everything port- and protocol-specific is already decided here (Istio semantics):
- only the policies that select this pod (workload selector, its namespace, or the root
  namespace) are present, in evaluation order CUSTOM, DENY, ALLOW, then AUDIT, each by
  (namespace, name);
- `to.ports`/`notPorts` and `destination.port` are evaluated against this port: an operation
  or condition that cannot match here is removed (and a rule left with nothing that can match
  is removed), so translators never see ports;
- on a TCP port, HTTP-only fields (hosts, methods, paths, requestPrincipals, request.headers
  and request.auth.* conditions) cannot be evaluated: an ALLOW rule using them is dropped
  (allows less), a DENY/AUDIT/CUSTOM rule has them removed (denies more). `rule.index` keeps
  the rule's position in the policy so names stay `ns[<ns>]-policy[<name>]-rule[<i>]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AuthzAction = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]
ExtAuthzKind = Literal["grpc", "http"]
MatchKind = Literal["exact", "prefix", "suffix", "presence", "template"]

# Evaluation order (Istio): CUSTOM first, then DENY, then ALLOW; AUDIT only records.
ACTION_ORDER: tuple[AuthzAction, ...] = ("CUSTOM", "DENY", "ALLOW", "AUDIT")


@dataclass(frozen=True, slots=True)
class StringMatch:
    """Istio string matching: "*" → presence, "abc*" → prefix, "*abc" → suffix, else exact;
    paths with `{*}`/`{**}` → template (Envoy uri_template syntax)."""

    kind: MatchKind
    value: str = ""


@dataclass(frozen=True, slots=True)
class SourceMatch:
    """All given fields must match (AND); within a field any value may (OR); `not_*` fields
    must all fail to match. Principals are Istio principals `<td>/ns/<ns>/sa/<sa>` (no
    scheme); serviceAccounts are already folded into principals. CIDRs are normalised."""

    principals: tuple[StringMatch, ...] = ()
    not_principals: tuple[StringMatch, ...] = ()
    request_principals: tuple[StringMatch, ...] = ()
    not_request_principals: tuple[StringMatch, ...] = ()
    namespaces: tuple[StringMatch, ...] = ()
    not_namespaces: tuple[StringMatch, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OperationMatch:
    """Ports are gone (decided for the port). Hosts match case-insensitively (Istio)."""

    hosts: tuple[StringMatch, ...] = ()
    not_hosts: tuple[StringMatch, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[StringMatch, ...] = ()
    not_paths: tuple[StringMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class Condition:
    """A `when` condition with a documented key; values use StringMatch semantics where
    Istio does (headers, claims, principals, namespaces), CIDRs for ip keys."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthzRule:
    """`sources` OR'ed, `operations` OR'ed, `conditions` AND'ed; an empty tuple matches all.
    `index` is the rule's position in the policy as written."""

    index: int
    sources: tuple[SourceMatch, ...] = ()
    operations: tuple[OperationMatch, ...] = ()
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthzPolicy:
    """One policy as it applies to one port. `rules` empty: ALLOW allows nothing, the other
    actions match nothing. `dry_run`: evaluated and recorded (shadow), never enforced.
    CUSTOM: requests its rules match go to `PortAuthz.ext_authz`; with no usable provider
    it fails closed (its rules deny)."""

    namespace: str
    name: str
    action: AuthzAction
    rules: tuple[AuthzRule, ...]
    dry_run: bool = False
    provider: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rule_id(self, index: int) -> str:
        """Envoy RBAC policy name of one rule (Istio's form)."""
        return f"ns[{self.namespace}]-policy[{self.name}]-rule[{index}]"


@dataclass(frozen=True, slots=True)
class ExtAuthz:
    """An external authorization provider (MeshConfig `extensionProviders`) resolved to a
    mesh service port: `cluster` is that port's outbound cluster, which every sidecar has,
    with the same auto-mTLS decision as any other call to it. Header lists are Istio string
    matches on lowercase names; `status_on_error` is sent when the provider cannot answer
    and `fail_open` is off; `max_request_bytes` 0 means the body is not sent."""

    name: str
    kind: ExtAuthzKind
    cluster: str
    authority: str
    timeout_ms: int
    fail_open: bool = False
    status_on_error: int = 403
    path_prefix: str = ""
    include_request_headers: tuple[StringMatch, ...] = ()
    include_additional_headers: tuple[tuple[str, str], ...] = ()
    headers_to_upstream_on_allow: tuple[StringMatch, ...] = ()
    headers_to_downstream_on_deny: tuple[StringMatch, ...] = ()
    headers_to_downstream_on_allow: tuple[StringMatch, ...] = ()
    max_request_bytes: int = 0
    allow_partial_message: bool = False
    pack_as_bytes: bool = False
    clear_route_cache: bool = False


@dataclass(frozen=True, slots=True)
class PortAuthz:
    """The policies in force on one inbound port, in evaluation order.

    `ext_authz`: the provider the port's CUSTOM policies consult, for requests their rules
    match. None with CUSTOM policies present means none can be consulted (unknown or invalid
    provider, several providers on one workload, an HTTP provider on a TCP port): they fail
    closed and their rules deny. With it set, every CUSTOM policy here names it
    (model/authz.py decides)."""

    policies: tuple[AuthzPolicy, ...] = ()
    ext_authz: ExtAuthz | None = None

    def of(self, action: AuthzAction, *, dry_run: bool = False) -> tuple[AuthzPolicy, ...]:
        return tuple(p for p in self.policies if p.action == action and p.dry_run == dry_run)


NO_AUTHZ = PortAuthz()
