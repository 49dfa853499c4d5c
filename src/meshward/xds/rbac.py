"""AuthorizationPolicies of one inbound port as Envoy RBAC filters (HTTP and network).

Called by listener.py (inbound HTTP connection managers and inbound TCP chains) and by the
differential test, which runs the same filters in a real Envoy against the Python evaluator.
Input is the compiled `PortAuthz` (model/authorization.py): everything port- and
protocol-specific is already decided there; this module only maps it, following Istio's
translator (istio/istio pilot/pkg/security/authz: builder, model, matcher) matcher for
matcher, so a policy written for Istio is enforced here the same way.

One RBAC engine (filter) per action, in the order `_ENFORCED` gives; one Envoy policy per
rule named `ns[<ns>]-policy[<name>]-rule[<i>]`, so Envoy's response-code details
(`rbac_access_denied_matched_policy[...]`) name the deciding rule. Dry-run policies get one
shadow-only filter each, with their own `shadow_rules_stat_prefix`, so shadow metrics and the
access log's dynamic metadata are per policy (see `xds/access_log.py` for the reader).

A rule is AND(OR over `from` as principals, OR over `to` as permissions); a `when` condition
joins the principal side or the permission side by its key, as Istio splits them. A value
this translator cannot express (an HTTP-only field on a TCP port, a malformed CIDR or port,
an unknown key — all normally removed by model/ already) follows Istio's rule: in an ALLOW
engine the whole rule is dropped (allows less); in the others the value is ignored (denies
or audits more).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar, overload

from envoy.config.core.v3 import address_pb2, extension_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, regex_pb2, string_pb2, value_pb2
from google.protobuf import wrappers_pb2

from meshward.model import authorization
from meshward.xds import core, ext_authz

HTTP_RBAC = "envoy.filters.http.rbac"  # also the dynamic-metadata namespace it writes
NETWORK_RBAC = "envoy.filters.network.rbac"
# Filter instance names: `meshward.authz.<action>`, `meshward.authz.dryrun.<ns>.<name>`. The
# dynamic-metadata namespace stays the filter type's name whatever the instance is called.
FILTER_PREFIX = "meshward.authz."
URI_TEMPLATE_MATCHER = "envoy.path.match.uri_template.uri_template_matcher"
# requestPrincipals and request.auth.* read the JWT payload the jwt_authn filter stores as
# dynamic metadata (Istio's form: filter `envoy.filters.http.jwt_authn`, key `payload`).
JWT_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD = "payload"
DRY_RUN_STAT_PREFIX = "meshward_dryrun_"

_Action = rbac_pb2.RBAC.Action
# CUSTOM with a provider (`PortAuthz.ext_authz`): a shadow engine marks the requests its rules
# match and the ext_authz filter after it consults the provider for those (ext_authz.py).
# CUSTOM without one fails closed: a request its rules would send to the provider is denied
# (Istio does the same for a CUSTOM provider it cannot use, builder.go).
_ENGINE_ACTION: MappingProxyType[authorization.AuthzAction, int] = MappingProxyType(
    {"CUSTOM": _Action.DENY, "DENY": _Action.DENY, "ALLOW": _Action.ALLOW, "AUDIT": _Action.LOG}
)
# Filter order. Filters that never change a decision go first so that they see every
# request, denied ones included: dry-run (shadow) filters, then AUDIT (RBAC action LOG; Istio
# also puts it first, builder.go). Then the deciding engines in Istio's evaluation order:
# CUSTOM, DENY, ALLOW — a request reaches ALLOW only if no CUSTOM or DENY rule matched, and no
# ALLOW engine at all means allow.
_ENFORCED: tuple[authorization.AuthzAction, ...] = ("AUDIT", "CUSTOM", "DENY", "ALLOW")

# Istio's never-matching policy, for a policy without rules (an ALLOW one then allows
# nothing, so an ALLOW engine holding only it denies everything). Envoy requires at least one
# permission and one principal per policy.
_NEVER = rbac_pb2.Policy(
    permissions=[rbac_pb2.Permission(not_rule=rbac_pb2.Permission(any=True))],
    principals=[rbac_pb2.Principal(not_id=rbac_pb2.Principal(any=True))],
)

_T = TypeVar("_T")
_V = TypeVar("_V")


class _UntranslatableError(Exception):
    """A value this translator cannot express for this port (internal; see module doc)."""


# --- public API ---------------------------------------------------------------------------


@overload
def rbac_filters_for(
    authz: authorization.PortAuthz, *, http: Literal[True], stat_prefix: str = ...
) -> list[hcm_pb2.HttpFilter]: ...
@overload
def rbac_filters_for(
    authz: authorization.PortAuthz, *, http: Literal[False], stat_prefix: str = ...
) -> list[listener_components_pb2.Filter]: ...
def rbac_filters_for(
    authz: authorization.PortAuthz, *, http: bool, stat_prefix: str = "inbound"
) -> list[hcm_pb2.HttpFilter] | list[listener_components_pb2.Filter]:
    """The RBAC filters enforcing `authz` on one inbound port, in filter-chain order.

    `http`: HTTP filters for the port's connection manager (insert before the router);
    otherwise network filters (insert before tcp_proxy). `stat_prefix` scopes the network
    filters' counters (HTTP counters live under the connection manager's own prefix). No
    policy → no filter (allow all)."""
    return http_filters(authz) if http else network_filters(authz, stat_prefix=stat_prefix)


def http_filters(authz: authorization.PortAuthz) -> list[hcm_pb2.HttpFilter]:
    """`envoy.filters.http.rbac` filters. Counters (measured on Envoy 1.40):
    `http.<hcm prefix>.rbac.<engine prefix>.[shadow_]allowed|denied` and per rule
    `http.<hcm prefix>.rbac.<engine prefix>.policy.<rule id>.[shadow_]allowed|denied` (in
    Prometheus the rule id is the tag `envoy_rbac_policy_name`)."""
    filters: list[hcm_pb2.HttpFilter] = []
    for engine in _engines(authz, http=True):
        config = http_rbac_pb2.RBAC(track_per_rule_stats=True)
        if engine.shadow:
            config.shadow_rules.CopyFrom(engine.rules)
            config.shadow_rules_stat_prefix = engine.stat_prefix
        else:
            config.rules.CopyFrom(engine.rules)
            config.rules_stat_prefix = engine.stat_prefix
        filters.append(hcm_pb2.HttpFilter(name=engine.name, typed_config=core.pack(config)))
        if engine.consults is not None:
            filters.append(ext_authz.http_filter(engine.consults))
    return filters


def network_filters(
    authz: authorization.PortAuthz, *, stat_prefix: str = "inbound"
) -> list[listener_components_pb2.Filter]:
    """`envoy.filters.network.rbac` filters; counters `<stat_prefix>.meshward_<action>_.rbac.*`
    and, for dry-run policies, `<stat_prefix>.meshward_dryrun_.rbac.<policy prefix>shadow_*`."""
    filters: list[listener_components_pb2.Filter] = []
    for engine in _engines(authz, http=False):
        config = network_rbac_pb2.RBAC()
        if engine.shadow:
            config.shadow_rules.CopyFrom(engine.rules)
            config.shadow_rules_stat_prefix = engine.stat_prefix
            shared = engine.stat_prefix if engine.consults else DRY_RUN_STAT_PREFIX
            config.stat_prefix = f"{stat_prefix}.{shared}"
        else:
            config.rules.CopyFrom(engine.rules)
            config.stat_prefix = f"{stat_prefix}.{engine.stat_prefix}"
        filters.append(
            listener_components_pb2.Filter(name=engine.name, typed_config=core.pack(config))
        )
        if engine.consults is not None:
            filters.append(ext_authz.network_filter(engine.consults, stat_prefix=stat_prefix))
    return filters


def engine_stat_prefix(action: authorization.AuthzAction) -> str:
    """`meshward_<action>_`: the enforced engine's stat prefix, which also prefixes the
    dynamic-metadata keys it writes (`meshward_deny_enforced_effective_policy_id`)."""
    return f"meshward_{action.lower()}_"


def dry_run_stat_prefix(policy: authorization.AuthzPolicy) -> str:
    """`meshward_dryrun_<ns>_<name>_`: stats-name-safe (no `.`, which Envoy reads as a level).
    Namespaces are DNS labels (no `.` or `_`) and names DNS subdomains (no `_`), so the first
    `_` after the fixed part ends the namespace and `_` in the name stands for `.`."""
    return f"{DRY_RUN_STAT_PREFIX}{_stat_safe(policy.namespace)}_{_stat_safe(policy.name)}_"


def policy_of_dry_run_prefix(prefix: str) -> str | None:
    """The policy `ns/name` of a `dry_run_stat_prefix`, or None if `prefix` is not one."""
    if not (prefix.startswith(DRY_RUN_STAT_PREFIX) and prefix.endswith("_")):
        return None
    namespace, _, name = prefix[len(DRY_RUN_STAT_PREFIX) : -1].partition("_")
    return f"{namespace}/{name.replace('_', '.')}" if namespace and name else None


# --- engines --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Engine:
    """One RBAC filter: enforced rules, or (`shadow`, a dry-run policy) shadow rules only."""

    name: str
    rules: rbac_pb2.RBAC
    shadow: bool
    stat_prefix: str
    consults: authorization.ExtAuthz | None = None


def _engines(authz: authorization.PortAuthz, *, http: bool) -> list[_Engine]:
    engines = [
        _Engine(
            name=f"{FILTER_PREFIX}dryrun.{policy.namespace}.{policy.name}",
            rules=_rbac((policy,), policy.action, http=http),
            shadow=True,
            stat_prefix=dry_run_stat_prefix(policy),
        )
        for action in authorization.ACTION_ORDER
        for policy in authz.of(action, dry_run=True)
    ]
    for action in _ENFORCED:
        policies = authz.of(action)
        if policies and action == "CUSTOM" and authz.ext_authz is not None:
            # The CUSTOM rules only mark the requests the provider must see (ext_authz.py).
            engines.append(
                _Engine(
                    name=f"{FILTER_PREFIX}custom",
                    rules=_rbac(policies, action, http=http),
                    shadow=True,
                    stat_prefix=ext_authz.SHADOW_STAT_PREFIX,
                    consults=authz.ext_authz,
                )
            )
        elif policies:
            engines.append(
                _Engine(
                    name=f"{FILTER_PREFIX}{action.lower()}",
                    rules=_rbac(policies, action, http=http),
                    shadow=False,
                    stat_prefix=engine_stat_prefix(action),
                )
            )
    return engines


def _rbac(
    policies: Sequence[authorization.AuthzPolicy], action: authorization.AuthzAction, *, http: bool
) -> rbac_pb2.RBAC:
    config = rbac_pb2.RBAC(action=_ENGINE_ACTION[action])
    for policy in policies:
        for rule in policy.rules:
            translated = _Rule(http=http, strict=action == "ALLOW").policy(rule)
            if translated is not None:
                config.policies[policy.rule_id(rule.index)].CopyFrom(translated)
        if not policy.rules:
            config.policies[policy.rule_id(0)].CopyFrom(_NEVER)
    if not config.policies:
        # Every rule was dropped (ALLOW on a port where none can apply): the policy is still
        # in force and allows nothing, exactly like one without rules.
        config.policies[policies[0].rule_id(0)].CopyFrom(_NEVER)
    return config


# --- rules ----------------------------------------------------------------------------------

_PERMISSION_KEYS = frozenset({"destination.ip", "destination.port", "connection.sni"})
_ENVOY_FILTER_KEY = "experimental.envoy.filters."


def _is_permission_key(key: str) -> bool:
    """Istio (model.go New): these `when` keys are properties of the request's destination and
    join the permissions; every other key describes the caller and joins the principals."""
    return key in _PERMISSION_KEYS or key.startswith(_ENVOY_FILTER_KEY)


@dataclass(frozen=True, slots=True)
class _Rule:
    """Translates one rule. `strict` (ALLOW): an untranslatable value drops the rule."""

    http: bool
    strict: bool

    def policy(self, rule: authorization.AuthzRule) -> rbac_pb2.Policy | None:
        try:
            permission_side = [
                part
                for c in rule.conditions
                if _is_permission_key(c.key)
                for part in self._permission_field(c.values, c.not_values, self._condition_rule(c))
            ]
            principal_side = [
                part
                for c in rule.conditions
                if not _is_permission_key(c.key)
                for part in self._principal_field(c.values, c.not_values, self._condition_id(c))
            ]
            permissions = [
                _all_rules([*self._operation(op), *permission_side]) for op in rule.operations
            ] or [_all_rules(permission_side)]
            principals = [
                _all_ids([*self._source(source), *principal_side]) for source in rule.sources
            ] or [_all_ids(principal_side)]
        except _UntranslatableError:
            return None
        return rbac_pb2.Policy(permissions=permissions, principals=principals)

    # Field order follows Istio's (model.go New) so configs read alike side by side.
    def _source(self, source: authorization.SourceMatch) -> list[rbac_pb2.Principal]:
        return [
            *self._principal_field(source.principals, source.not_principals, _principal_id),
            *self._principal_field(
                source.request_principals,
                source.not_request_principals,
                lambda m: self._request_principal(_written(m)),
            ),
            *self._principal_field(source.namespaces, source.not_namespaces, _namespace_id),
            *self._principal_field(
                source.remote_ip_blocks, source.not_remote_ip_blocks, _remote_ip_id
            ),
            *self._principal_field(source.ip_blocks, source.not_ip_blocks, _direct_ip_id),
        ]

    def _operation(self, operation: authorization.OperationMatch) -> list[rbac_pb2.Permission]:
        return [
            *self._permission_field(operation.hosts, operation.not_hosts, self._host_rule),
            *self._permission_field(operation.methods, operation.not_methods, self._method_rule),
            *self._permission_field(operation.paths, operation.not_paths, self._path_rule),
        ]

    def _permission_field(
        self,
        values: Iterable[_V],
        not_values: Iterable[_V],
        make: Callable[[_V], rbac_pb2.Permission],
    ) -> list[rbac_pb2.Permission]:
        """[OR(values), NOT(OR(not_values))], each only if it has a member (Istio's shape)."""
        parts: list[rbac_pb2.Permission] = []
        matched = self._each(values, make)
        if matched:
            parts.append(rbac_pb2.Permission(or_rules=rbac_pb2.Permission.Set(rules=matched)))
        excluded = self._each(not_values, make)
        if excluded:
            either = rbac_pb2.Permission(or_rules=rbac_pb2.Permission.Set(rules=excluded))
            parts.append(rbac_pb2.Permission(not_rule=either))
        return parts

    def _principal_field(
        self,
        values: Iterable[_V],
        not_values: Iterable[_V],
        make: Callable[[_V], rbac_pb2.Principal],
    ) -> list[rbac_pb2.Principal]:
        parts: list[rbac_pb2.Principal] = []
        matched = self._each(values, make)
        if matched:
            parts.append(rbac_pb2.Principal(or_ids=rbac_pb2.Principal.Set(ids=matched)))
        excluded = self._each(not_values, make)
        if excluded:
            either = rbac_pb2.Principal(or_ids=rbac_pb2.Principal.Set(ids=excluded))
            parts.append(rbac_pb2.Principal(not_id=either))
        return parts

    def _each(self, values: Iterable[_V], make: Callable[[_V], _T]) -> list[_T]:
        """Istio's checkError (model.go): in an ALLOW engine an untranslatable value drops the
        rule (allows less); elsewhere it is skipped (denies or audits more)."""
        out: list[_T] = []
        for value in values:
            try:
                out.append(make(value))
            except _UntranslatableError:
                if self.strict:
                    raise
        return out

    def _http_only(self, what: str) -> None:
        if not self.http:
            raise _UntranslatableError(f"{what} is HTTP only")

    # --- operations (HTTP only) ---
    def _host_rule(self, match: authorization.StringMatch) -> rbac_pb2.Permission:
        # Hosts compare case-insensitively (Istio matcher.HostMatcher): DNS names are.
        self._http_only("hosts")
        return rbac_pb2.Permission(header=_header(":authority", match, ignore_case=True))

    def _method_rule(self, method: str) -> rbac_pb2.Permission:
        self._http_only("methods")
        return rbac_pb2.Permission(header=_header(":method", _written_match(method)))

    def _path_rule(self, match: authorization.StringMatch) -> rbac_pb2.Permission:
        """`url_path` is the path without query or fragment (Istio paths never see the query);
        a `{*}`/`{**}` template is Envoy's uri_template matcher (`*`, `**`)."""
        self._http_only("paths")
        if match.kind == "template":
            template = match.value.replace("{**}", "**").replace("{*}", "*")
            config = uri_template_match_pb2.UriTemplateMatchConfig(path_template=template)
            return rbac_pb2.Permission(
                uri_template=extension_pb2.TypedExtensionConfig(
                    name=URI_TEMPLATE_MATCHER, typed_config=core.pack(config)
                )
            )
        return rbac_pb2.Permission(url_path=path_pb2.PathMatcher(path=_string(match)))

    def _request_principal(self, written: str) -> rbac_pb2.Principal:
        """`<iss>/<sub>` (split at the last `/`: issuers are URLs) against the JWT payload,
        with Istio's wildcard rules (generator.go requestPrincipalGenerator)."""
        self._http_only("requestPrincipals")
        issuer, slash, subject = written.rpartition("/")
        if not slash:
            issuer, subject = written, ""
        anything = _regex(".+")
        if written == "*":
            match_iss, match_sub = anything, anything
        elif written.startswith("*"):
            if slash:
                match_iss = anything if issuer == "*" else _suffix(issuer[1:])
                match_sub = string_pb2.StringMatcher(exact=subject)
            else:
                match_iss, match_sub = anything, _suffix(written[1:])
        elif written.endswith("*"):
            if slash:
                match_iss = string_pb2.StringMatcher(exact=issuer)
                match_sub = anything if subject == "*" else _prefix(subject[:-1])
            else:
                match_iss, match_sub = _prefix(written[:-1]), anything
        else:
            match_iss = string_pb2.StringMatcher(exact=issuer)
            match_sub = string_pb2.StringMatcher(exact=subject)
        claims = [
            rbac_pb2.Principal(
                sourced_metadata=_jwt_metadata(
                    ("iss",), value_pb2.ValueMatcher(string_match=match_iss)
                )
            ),
            rbac_pb2.Principal(
                sourced_metadata=_jwt_metadata(
                    ("sub",), value_pb2.ValueMatcher(string_match=match_sub)
                )
            ),
        ]
        return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=claims))

    # --- conditions ---
    def _condition_rule(
        self, condition: authorization.Condition
    ) -> Callable[[str], rbac_pb2.Permission]:
        key = condition.key
        if key == "destination.ip":
            return lambda v: rbac_pb2.Permission(destination_ip=_cidr(v))
        if key == "destination.port":
            return lambda v: rbac_pb2.Permission(destination_port=_port(v))
        if key == "connection.sni":
            return lambda v: rbac_pb2.Permission(requested_server_name=_string(_written_match(v)))
        return lambda v: rbac_pb2.Permission(sourced_metadata=_envoy_filter_metadata(key, v))

    def _condition_id(
        self, condition: authorization.Condition
    ) -> Callable[[str], rbac_pb2.Principal]:
        key = condition.key
        simple: dict[str, Callable[[str], rbac_pb2.Principal]] = {
            "source.ip": _direct_ip_id,
            "remote.ip": _remote_ip_id,
            "source.namespace": lambda v: _namespace_id(_written_match(v)),
            "source.principal": lambda v: _principal_id(_written_match(v)),
            "request.auth.principal": self._request_principal,
            "request.auth.audiences": lambda v: self._claim_id(("aud",), v),
            "request.auth.presenter": lambda v: self._claim_id(("azp",), v),
        }
        if key in simple:
            return simple[key]
        if key.startswith("request.headers[") and key.endswith("]"):
            name = key[len("request.headers[") : -1]
            return lambda v: self._header_id(name, v)
        if key.startswith("request.auth.claims["):
            written_claims = key[len("request.auth.claims") :]
            return lambda v: self._claim_id(_bracketed(written_claims), v)
        return _unknown_key

    def _header_id(self, name: str, written: str) -> rbac_pb2.Principal:
        self._http_only("request.headers")
        if not name:
            raise _UntranslatableError("empty header name")
        return rbac_pb2.Principal(header=_header(name, _written_match(written)))

    def _claim_id(self, claims: tuple[str, ...], written: str) -> rbac_pb2.Principal:
        """A claim matches if it is the string or a list holding it (Istio's extended JWT
        matcher: or_match of list_match.one_of and the plain value)."""
        self._http_only("request.auth.*")
        if not claims or not all(claims):
            raise _UntranslatableError("empty claim name")
        value = value_pb2.ValueMatcher(string_match=_string(_written_match(written)))
        either = value_pb2.ValueMatcher(
            or_match=value_pb2.OrMatcher(
                value_matchers=[
                    value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=value)),
                    value,
                ]
            )
        )
        return rbac_pb2.Principal(sourced_metadata=_jwt_metadata(claims, either))


def _all_rules(parts: list[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    rules = parts or [rbac_pb2.Permission(any=True)]
    return rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(rules=rules))


def _all_ids(parts: list[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    ids = parts or [rbac_pb2.Principal(any=True)]
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=ids))


def _unknown_key(_value: str) -> rbac_pb2.Principal:
    raise _UntranslatableError("unknown condition key")


# --- principals -----------------------------------------------------------------------------


def _principal_id(match: authorization.StringMatch) -> rbac_pb2.Principal:
    """Istio principals have no scheme; the certificate's URI SAN has `spiffe://`."""
    return _authenticated(_string(match, prefix="spiffe://"))


def _namespace_id(match: authorization.StringMatch) -> rbac_pb2.Principal:
    """A namespace is the `/ns/<ns>/` segment of the caller's SPIFFE ID (Istio
    srcNamespaceGenerator: `.*/ns/<ns>/.*`, `*` standing for `.*`)."""
    value = _escape(match.value)
    segment = {
        "exact": value,
        "prefix": f"{value}.*",
        "suffix": f".*{value}",
        "presence": ".*",
    }.get(match.kind)
    if segment is None:
        raise _UntranslatableError(f"namespace match {match.kind}")
    return _authenticated(_regex(f".*/ns/{segment}/.*"))


def _authenticated(name: string_pb2.StringMatcher) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=name))


def _direct_ip_id(cidr: str) -> rbac_pb2.Principal:
    """ipBlocks / source.ip: the peer address of the connection (Envoy direct_remote_ip)."""
    return rbac_pb2.Principal(direct_remote_ip=_cidr(cidr))


def _remote_ip_id(cidr: str) -> rbac_pb2.Principal:
    """remoteIpBlocks / remote.ip: the original client (X-Forwarded-For or PROXY protocol,
    as the connection manager decided; Envoy remote_ip)."""
    return rbac_pb2.Principal(remote_ip=_cidr(cidr))


# --- matchers -------------------------------------------------------------------------------


def _written(match: authorization.StringMatch) -> str:
    """A StringMatch back in Istio's written form (`*`, `x*`, `*x`, `x`)."""
    return {
        "presence": "*",
        "prefix": f"{match.value}*",
        "suffix": f"*{match.value}",
    }.get(match.kind, match.value)


def _written_match(written: str) -> authorization.StringMatch:
    """Istio string matching for a value as written: `*` presence, `*x` suffix, `x*` prefix."""
    if written == "*":
        return authorization.StringMatch("presence")
    if written.startswith("*"):
        return authorization.StringMatch("suffix", written[1:])
    if written.endswith("*"):
        return authorization.StringMatch("prefix", written[:-1])
    return authorization.StringMatch("exact", written)


def _string(
    match: authorization.StringMatch, *, prefix: str = "", ignore_case: bool = False
) -> string_pb2.StringMatcher:
    """Istio matcher.StringMatcherWithPrefix: presence is `.+` (not `.*`: a present value is
    non-empty), and with a fixed prefix a suffix match becomes `<prefix>.*<suffix>`."""
    if match.kind == "presence":
        return _regex(".+")
    if match.kind == "exact":
        return string_pb2.StringMatcher(exact=prefix + match.value, ignore_case=ignore_case)
    if match.kind == "prefix" and prefix + match.value:
        return string_pb2.StringMatcher(prefix=prefix + match.value, ignore_case=ignore_case)
    if match.kind == "suffix" and prefix:
        return _regex(f"{_escape(prefix)}.*{_escape(match.value)}", ignore_case=ignore_case)
    if match.kind == "suffix" and match.value:
        return string_pb2.StringMatcher(suffix=match.value, ignore_case=ignore_case)
    if match.kind in ("prefix", "suffix"):
        return _regex(".*")  # an empty prefix or suffix: anything (Envoy rejects empty ones)
    raise _UntranslatableError(f"{match.kind} match outside paths")


def _prefix(value: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(prefix=value) if value else _regex(".*")


def _suffix(value: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(suffix=value) if value else _regex(".*")


def _regex(pattern: str, *, ignore_case: bool = False) -> string_pb2.StringMatcher:
    """A full-string RE2 match (Envoy safe_regex; RE2 is the default engine)."""
    if ignore_case:
        pattern = f"(?i){pattern}"
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))


def _header(
    name: str, match: authorization.StringMatch, *, ignore_case: bool = False
) -> route_components_pb2.HeaderMatcher:
    """Istio matcher.HeaderMatcher: `*` is present_match (a header may be present and empty);
    otherwise a string match; a repeated header matches if any one value does (Envoy 1.40)."""
    if match.kind == "presence":
        return route_components_pb2.HeaderMatcher(name=name, present_match=True)
    return route_components_pb2.HeaderMatcher(
        name=name, string_match=_string(match, ignore_case=ignore_case)
    )


def _cidr(written: str) -> address_pb2.CidrRange:
    """`10.0.0.1` (a /32, or /128 for IPv6) or `10.0.0.0/16`, host bits cleared."""
    try:
        network = ipaddress.ip_network(written.strip(), strict=False)
    except ValueError as error:
        raise _UntranslatableError(f"bad CIDR {written!r}") from error
    return address_pb2.CidrRange(
        address_prefix=str(network.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
    )


def _port(written: str) -> int:
    if not written.isdigit() or not 0 <= int(written) <= 65535:
        raise _UntranslatableError(f"bad port {written!r}")
    return int(written)


def _jwt_metadata(
    claims: tuple[str, ...], value: value_pb2.ValueMatcher
) -> rbac_pb2.SourcedMetadata:
    path = [metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in (JWT_PAYLOAD, *claims)]
    return _dynamic(metadata_pb2.MetadataMatcher(filter=JWT_FILTER, path=path, value=value))


def _dynamic(matcher: metadata_pb2.MetadataMatcher) -> rbac_pb2.SourcedMetadata:
    """The request's dynamic metadata (`sourced_metadata`: the plain `metadata` field of
    Permission and Principal is deprecated in Envoy 1.40)."""
    return rbac_pb2.SourcedMetadata(
        metadata_matcher=matcher, metadata_source=rbac_pb2.MetadataSource.DYNAMIC
    )


def _envoy_filter_metadata(key: str, written: str) -> rbac_pb2.SourcedMetadata:
    """`experimental.envoy.filters.a.b[c]`: dynamic metadata `c` of filter `envoy.filters.a.b`;
    a value written `[v]` matches a list holding `v` (Istio envoyFilterGenerator)."""
    filter_name, _, rest = key[len("experimental.") :].partition("[")
    if not rest.endswith("]") or not rest[:-1]:
        raise _UntranslatableError(f"bad key {key!r}")
    string = value_pb2.ValueMatcher
    if written.startswith("[") and written.endswith("]"):
        inner = string(string_match=_string(_written_match(written[1:-1])))
        value = string(list_match=value_pb2.ListMatcher(one_of=inner))
    else:
        value = string(string_match=_string(_written_match(written)))
    path = [metadata_pb2.MetadataMatcher.PathSegment(key=rest[:-1])]
    return _dynamic(metadata_pb2.MetadataMatcher(filter=filter_name, path=path, value=value))


def _bracketed(text: str) -> tuple[str, ...]:
    """`[a][b]` → ("a", "b") (Istio extractNameInNestedBrackets)."""
    names = re.findall(r"\[([^\[\]]*)\]", text)
    if "".join(f"[{n}]" for n in names) != text:
        raise _UntranslatableError(f"bad claim key {text!r}")
    return tuple(names)


def _escape(text: str) -> str:
    """`text` as a literal inside an RE2 pattern: only metacharacters get a backslash (unlike
    `re.escape`, which also escapes `-`), so patterns read like Istio's."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _stat_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", name)
