"""`security.istio.io/v1` (and v1beta1) AuthorizationPolicy → `resources.AuthorizationPolicy`.

Called by `meshward.config.kind` (with the document's `metadata.annotations`, for
`istio.io/dry-run`). Follows the Istio API reference
(istio.io/latest/docs/reference/config/security/authorization-policy/ and ".../conditions/")
and the checks Istio's validation webhook makes (pkg/config/validation, pkg/config/security):
every problem it rejects is a coded error here, plus a few Istio lets through silently but
that cannot do what the user meant (fail closed, say why):

- `targetRef`/`targetRefs` (Gateway API attachment) is refused (MW0142): meshward has no
  gateways to attach to, and ignoring it would apply the policy to nothing.
- `*` is a wildcard only as the whole value, a prefix or a suffix; Istio matches a `*` in the
  middle literally, which is never what was meant (MW0147).
- principals must look like Istio principals; a `spiffe://` prefix never matches because
  Istio adds it itself (MW0131, with the hint to drop it).
- path templates (`{*}`, `{**}`) must be whole segments, `{**}` the last operator, and every
  literal segment must be valid for Envoy's uri_template matcher, so Envoy never NACKs one.

A policy with any error is dropped whole (the loader keeps errors from being applied).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import cast

from meshward.config import document, names
from meshward.config import selector as workload_selector
from meshward.config.fields import Fields, describe
from meshward.config.report import Report
from meshward.config.resources import (
    AuthorizationPolicy,
    AuthzAction,
    AuthzCondition,
    AuthzOperation,
    AuthzRuleSpec,
    AuthzSource,
    Labels,
    Meta,
)

ACTIONS: tuple[AuthzAction, ...] = ("ALLOW", "DENY", "AUDIT", "CUSTOM")
DRY_RUN_ANNOTATION = "istio.io/dry-run"

# Istio parses the annotation with Go's strconv.ParseBool (pilot authz builder `isDryRun`).
_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}

# The documented `when` keys (Authorization Policy Conditions page; Istio model.go).
EXACT_KEYS = (
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
)
BRACKET_KEYS = ("request.headers", "request.auth.claims", "experimental.envoy.filters.")
# Keys Istio once had and now rejects, with its reason (pkg/config/security ValidateAttribute).
_REPLACED_KEYS = {
    "destination.namespace": "replaced by the policy's metadata.namespace",
    "destination.labels": "replaced by the workload selector",
    "destination.name": "only supported in the retired v1alpha1 RBAC API",
    "destination.user": "only supported in the retired v1alpha1 RBAC API",
}
_IP_KEYS = ("source.ip", "remote.ip", "destination.ip")
# Fields and keys Istio's validation refuses with CUSTOM (no identity is passed to ext_authz).
_CUSTOM_FORBIDDEN_SOURCE = (
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "serviceAccounts",
    "notServiceAccounts",
)
_CUSTOM_FORBIDDEN_KEYS = ("source.namespace", "source.serviceAccount", "source.principal")

_PRINCIPAL = re.compile(r"^[^/*]+/ns/[^/*]+/sa/[^/*]+$")
_NAMESPACE_PART = re.compile(r"^[a-z0-9-]+$")
# Envoy uri_template literal characters: RFC 3986 pchar without `*` (uri_template_internal.cc).
_TEMPLATE_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")
_BRACKETS = re.compile(r"^(\[[^\[\]]+\])+$")

Value = tuple[str, int]
"""A value as written and its line."""


def parse(
    spec: Fields, meta: Meta, labels: Labels, annotations: document.Mapping | None
) -> AuthorizationPolicy | None:
    """The AuthorizationPolicy, or None if any field was reported as an error."""
    del labels
    dry_run = _dry_run(annotations, spec.report)
    workload_selector.refuse_target_ref(spec, "MW0142")
    selector = workload_selector.parse(spec, "selector")
    action = cast(AuthzAction, spec.choice("action", ACTIONS) or "ALLOW")
    provider = _provider(spec, action)
    rule_items = spec.items("rules")
    rules = tuple(_rule(item, action) for item in rule_items or ())
    if action in ("DENY", "CUSTOM") and not rules:
        spec.disallow(
            "rules" if spec.has("rules") else "action",
            f"a {action} policy without rules is never triggered; add `rules: [{{}}]` to "
            "match every request",
            code="MW0144",
        )
    if dry_run and action not in ("ALLOW", "DENY"):
        spec.disallow(
            "action", f"{DRY_RUN_ANNOTATION} is supported for ALLOW and DENY only", code="MW0141"
        )
    spec.finish()
    if spec.report.failed:
        return None
    return AuthorizationPolicy(meta, selector, action, provider, rules, dry_run)


def _dry_run(annotations: document.Mapping | None, report: Report) -> bool:
    entry = annotations.get(DRY_RUN_ANNOTATION) if annotations is not None else None
    if entry is None or not isinstance(entry.value, document.Scalar):
        return False
    value = entry.value.value
    if not isinstance(value, str):
        return False  # metadata already reported the non-string annotation (MW0108)
    if value not in _BOOLS:
        report.add(
            "MW0140",
            entry.line,
            f"metadata.annotations.{DRY_RUN_ANNOTATION}",
            f'{value!r} is not a boolean; use "true" or "false"',
        )
        return False
    return _BOOLS[value]


def _provider(spec: Fields, action: AuthzAction) -> str:
    provider = spec.mapping("provider")
    name = ""
    if provider is not None:
        name = provider.string("name") or ""
        provider.finish()
        if action != "CUSTOM":
            spec.disallow(
                "provider", f"provider is only for action CUSTOM, not {action}", code="MW0139"
            )
    elif action == "CUSTOM":
        spec.disallow("action", "a CUSTOM policy needs provider.name", code="MW0139")
    if provider is not None and action == "CUSTOM" and not name:
        provider.disallow("name", "a CUSTOM policy needs provider.name", code="MW0139")
    return name


def _rule(rule: Fields, action: AuthzAction) -> AuthzRuleSpec:
    sources = tuple(_source(source, action) for source in _clauses(rule, "from", "source"))
    operations = tuple(_operation(operation) for operation in _clauses(rule, "to", "operation"))
    conditions = tuple(
        c for item in rule.items("when") or () if (c := _condition(item, action)) is not None
    )
    rule.finish()
    return AuthzRuleSpec(sources, operations, conditions)


def _clauses(rule: Fields, key: str, inner: str) -> tuple[Fields, ...]:
    """`from[].source` or `to[].operation`: each item must hold a non-empty inner mapping."""
    items = rule.items(key)
    if items is None:
        return ()
    if not items and rule.has(key):
        rule.disallow(key, f"`{key}` must not be empty; leave it out to match all", "MW0137")
    found = []
    for item in items:
        clause = item.mapping(inner)
        if clause is None and not item.has(inner):
            item.disallow(inner, f"{item.path} needs `{inner}`", code="MW0137")
        item.finish()
        if clause is not None:
            found.append(clause)
    return tuple(found)


def _values(fields: Fields, key: str, *, ints: bool = False) -> tuple[Value, ...]:
    """A list of strings (and integers when `ints`), each with its line; () when absent.

    An empty string is never a meaningful match value (Istio `CheckEmptyValues`, MW0145).
    """
    entry = fields.take(key)
    if entry is None:
        return ()
    if not isinstance(entry.value, document.Sequence):
        fields.wrong_type(entry, "a list")
        return ()
    values: list[Value] = []
    for index, item in enumerate(entry.value.items):
        path = f"{fields.field(key)}[{index}]"
        raw = item.value if isinstance(item, document.Scalar) else None
        if isinstance(raw, str) or (ints and type(raw) is int):
            text = str(raw)
            if text == "":
                fields.report.add("MW0145", item.line, path, "empty value not allowed")
            else:
                values.append((text, item.line))
        else:
            expected = "a string or an integer" if ints else "a string"
            fields.report.add(
                "MW0108", item.line, path, f"expected {expected}, got {describe(item)}"
            )
    return tuple(values)


Check = Callable[[str], tuple[str, str] | None]
"""A value check: None when valid, else (code, message)."""


def _checked(fields: Fields, key: str, check: Check, *, ints: bool = False) -> tuple[str, ...]:
    """The values of `key`, each checked; every problem is reported at the value's line."""
    values = _values(fields, key, ints=ints)
    for index, (value, line) in enumerate(values):
        problem = check(value)
        if problem is not None:
            fields.report.add(problem[0], line, f"{fields.field(key)}[{index}]", problem[1])
    return tuple(value for value, _ in values)


def _source(source: Fields, action: AuthzAction) -> AuthzSource:
    def read(key: str, check: Check) -> tuple[str, ...]:
        return _checked(source, key, check)

    result = AuthzSource(
        principals=read("principals", check_principal),
        not_principals=read("notPrincipals", check_principal),
        request_principals=read("requestPrincipals", check_request_principal),
        not_request_principals=read("notRequestPrincipals", check_request_principal),
        namespaces=read("namespaces", check_namespace),
        not_namespaces=read("notNamespaces", check_namespace),
        service_accounts=read("serviceAccounts", check_service_account),
        not_service_accounts=read("notServiceAccounts", check_service_account),
        ip_blocks=read("ipBlocks", check_cidr),
        not_ip_blocks=read("notIpBlocks", check_cidr),
        remote_ip_blocks=read("remoteIpBlocks", check_cidr),
        not_remote_ip_blocks=read("notRemoteIpBlocks", check_cidr),
    )
    # Checked only while the policy is otherwise valid: values already refused would make
    # the clause look empty and add noise to the real error.
    if result == AuthzSource() and not source.report.failed:
        source.report.add("MW0137", source.line, source.path, "a source needs at least one field")
    if (result.service_accounts or result.not_service_accounts) and (
        result.principals or result.not_principals or result.namespaces or result.not_namespaces
    ):
        source.report.add(
            "MW0146",
            source.line,
            source.path,
            "serviceAccounts cannot be combined with principals or namespaces (Istio)",
        )
    if action == "CUSTOM":
        for key in _CUSTOM_FORBIDDEN_SOURCE:
            if source.has(key):
                source.disallow(key, f"{key} is not supported with action CUSTOM", "MW0143")
    source.finish()
    return result


def _operation(operation: Fields) -> AuthzOperation:
    def read(key: str, check: Check) -> tuple[str, ...]:
        return _checked(operation, key, check)

    result = AuthzOperation(
        hosts=read("hosts", check_wildcard),
        not_hosts=read("notHosts", check_wildcard),
        ports=_ports(operation, "ports"),
        not_ports=_ports(operation, "notPorts"),
        methods=read("methods", check_method),
        not_methods=read("notMethods", check_method),
        paths=read("paths", check_path),
        not_paths=read("notPaths", check_path),
    )
    if result == AuthzOperation() and not operation.report.failed:
        operation.report.add(
            "MW0137", operation.line, operation.path, "an operation needs at least one field"
        )
    operation.finish()
    return result


def _ports(operation: Fields, key: str) -> tuple[int, ...]:
    values = _checked(operation, key, check_port, ints=True)
    return tuple(int(v) for v in values if check_port(v) is None)


def _condition(item: Fields, action: AuthzAction) -> AuthzCondition | None:
    key = item.string("key", required=True)
    values = _values(item, "values", ints=True)
    not_values = _values(item, "notValues", ints=True)
    item.finish()
    if key is None or key == "":
        return None
    problem = check_key(key)
    if problem is not None:
        item.disallow("key", problem[1], code=problem[0])
        return None
    if not values and not not_values:
        item.disallow("key", f"condition {key} needs `values` or `notValues`", code="MW0138")
    if action == "CUSTOM" and (key in _CUSTOM_FORBIDDEN_KEYS or key.startswith("request.auth.")):
        item.disallow("key", f"condition {key} is not supported with action CUSTOM", "MW0143")
    check = condition_check(key)
    for field_key, given in (("values", values), ("notValues", not_values)):
        for index, (value, line) in enumerate(given):
            problem = check(value)
            if problem is not None:
                item.report.add(problem[0], line, f"{item.field(field_key)}[{index}]", problem[1])
    return AuthzCondition(key, tuple(v for v, _ in values), tuple(v for v, _ in not_values))


# --- value checks (public: the model and tests name them) ----------------------------------


def check_wildcard(value: str) -> tuple[str, str] | None:
    """`*` only as the whole value, one leading or one trailing (Istio string matching)."""
    if "*" not in value or value == "*":
        return None
    inner = value[1:] if value.startswith("*") else value[:-1] if value.endswith("*") else value
    if "*" in inner:
        return (
            "MW0147",
            f"{value!r}: `*` is a wildcard only as the whole value, a prefix or a suffix "
            "(Istio matches it literally elsewhere)",
        )
    return None


def check_principal(value: str) -> tuple[str, str] | None:
    if value.startswith("spiffe://"):
        return (
            "MW0131",
            f"{value!r}: write principals without the spiffe:// scheme, e.g. "
            f"{value.removeprefix('spiffe://')!r} (Istio adds it)",
        )
    problem = check_wildcard(value)
    if problem is not None or "*" in value:
        return problem
    if not _PRINCIPAL.match(value):
        return (
            "MW0131",
            f"{value!r} is not <trust-domain>/ns/<namespace>/sa/<service-account>",
        )
    return None


def check_request_principal(value: str) -> tuple[str, str] | None:
    problem = check_wildcard(value)
    if problem is not None or "*" in value:
        return problem
    issuer, slash, subject = value.rpartition("/")
    if not slash or not issuer or not subject:
        return ("MW0132", f"{value!r} is not <issuer>/<subject>")
    return None


def check_namespace(value: str) -> tuple[str, str] | None:
    problem = check_wildcard(value)
    if problem is not None or value == "*":
        return problem
    # Istio turns namespaces into a principal regex; a DNS label keeps it literal.
    if not _NAMESPACE_PART.match(value.strip("*")):
        return ("MW0111", f"{value!r} is not a namespace name (DNS-1123 label)")
    return None


def check_service_account(value: str) -> tuple[str, str] | None:
    namespace, slash, name = value.partition("/")
    if (
        not slash
        or not names.is_dns_label(namespace)
        or not names.is_dns_subdomain(name)
        or "/" in name
    ):
        return ("MW0136", f"{value!r} is not <namespace>/<service-account>")
    return None


def check_cidr(value: str) -> tuple[str, str] | None:
    try:
        if "%" in value:
            raise ValueError("zone")
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return ("MW0133", f"{value!r} is not an IP address or CIDR block")
    return None


def check_port(value: str) -> tuple[str, str] | None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        return ("MW0134", f"{value!r} is not a port number 1-65535")
    return None


def check_method(value: str) -> tuple[str, str] | None:
    if "*" in value and value != "*":
        return ("MW0147", f"{value!r}: methods take `*` only as the whole value")
    if value != value.upper():
        # A warning (catalog level): Envoy compares :method exactly, so `get` never matches.
        return ("MW0148", f"{value!r}: methods match case-sensitively; write {value.upper()!r}")
    return None


def is_path_template(value: str) -> bool:
    return "{*}" in value or "{**}" in value


def check_path(value: str) -> tuple[str, str] | None:
    if is_path_template(value):
        return _check_template(value)
    problem = check_wildcard(value)
    if problem is not None:
        return problem
    if not value.startswith(("/", "*")):
        return ("MW0135", f"{value!r}: a path starts with / (or is a * wildcard)")
    return None


def _check_template(value: str) -> tuple[str, str] | None:
    """Envoy uri_template rules, stricter where Envoy would accept a surprising match."""
    if not value.startswith("/"):
        return ("MW0135", f"{value!r}: a path template starts with /")
    segments = value[1:].split("/")
    seen_any = False
    for index, segment in enumerate(segments):
        if segment in ("{*}", "{**}"):
            if seen_any:
                return ("MW0135", f"{value!r}: {{**}} must be the last operator")
            seen_any = segment == "{**}"
        elif segment == "" and index == len(segments) - 1 and index > 0:
            continue  # a trailing slash
        elif not _TEMPLATE_LITERAL.match(segment):
            return (
                "MW0135",
                f"{value!r}: segment {segment!r}: {{*}} and {{**}} must be whole segments, "
                "and other segments plain path characters (no *, {, } or empty segments)",
            )
    return None


def check_key(key: str) -> tuple[str, str] | None:
    """None for a documented `when` key; else (code, message) naming the documented ones."""
    if key in EXACT_KEYS:
        return None
    for prefix in BRACKET_KEYS:
        if key.startswith(prefix):
            name = key.removeprefix(prefix)
            if prefix.endswith("."):  # experimental.envoy.filters.<filter>[<key>]
                filter_name, bracket, rest = name.partition("[")
                name = bracket + rest if filter_name else ""
            if _BRACKETS.match(name) and (prefix != "request.headers" or name.count("[") == 1):
                return None
            return (
                "MW0149",
                f"{key!r}: write the name in brackets, e.g. {prefix.rstrip('.')}[name]",
            )
    for replaced, reason in _REPLACED_KEYS.items():
        if key.startswith(replaced):
            return ("MW0130", f"{key!r} is no longer supported: {reason}")
    documented = ", ".join((*EXACT_KEYS, *(f"{p.rstrip('.')}[...]" for p in BRACKET_KEYS)))
    return ("MW0130", f"unknown condition key {key!r}; documented keys: {documented}")


def condition_check(key: str) -> Check:
    """The value check for one (documented) `when` key."""
    if key in _IP_KEYS:
        return check_cidr
    by_key: dict[str, Check] = {
        "destination.port": check_port,
        "source.principal": check_principal,
        "source.namespace": check_namespace,
        "source.serviceAccount": check_service_account,
        "request.auth.principal": check_request_principal,
    }
    return by_key.get(key, check_wildcard)
