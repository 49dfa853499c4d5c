"""The sidecar access log: one JSON line per HTTP request or TCP connection, on Envoy's stdout.

Called by listener.py for every HCM and TCP proxy. Every TCP connection is logged. A JSON line
per HTTP request costs a sidecar 5 to 7 µs of CPU per request, the largest difference measured
against a hand-written Envoy pair (bench/dataplane.py, bench/accesslog.py, bench/README.md),
so HTTP logs are filtered. The outbound HTTP listener logs only failed requests
(`failures_only`): the server sidecar has the record. Inbound (`inbound_filter`), the server
logs every denial, failure, verifier probe, AUDIT match and dry-run denial, and samples the
remaining successful requests (1% by default): security audit needs the denials, which stay
complete; `meshward authz preview` replays the sample and says so. The agent keeps each Envoy's
stdout in the pod's sidecar log; the verifier reads it to prove which identity a server
authenticated (`peer`), and later the audit store and `authz explain` will read the same keys.
The keys are a contract (verify/access_log.py): add keys freely, never rename one.

Authorization (xds/rbac.py) adds what a denial and a dry-run need to explain themselves:
`details` (HTTP) or `termination` (TCP) carry Envoy's `rbac_access_denied_matched_policy[<rule
id>]` (`[none]`: an ALLOW engine matched no rule); `rbac` is the RBAC filter's whole
dynamic-metadata namespace, in which every engine writes under its stat prefix
(`meshward_deny_enforced_effective_policy_id`, `meshward_dryrun_<ns>_<name>_shadow_engine_result`
...); `audit` is true when an AUDIT rule matched. `denial` and `shadow_decisions` read them;
they are the only code that needs to know the key names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.type.matcher.v3 import value_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import struct_pb2

from meshward.xds import core, ext_authz, rbac

STDOUT_LOGGER = "envoy.access_loggers.stdout"
MARKER = "meshward-access"

Direction = Literal["inbound", "outbound"]

# Envoy command operators (access-log "format strings" reference). %START_TIME(%s.%3f)% is
# seconds since the epoch, so readers compare it with time.time() directly.
_COMMON = {
    "log": MARKER,
    "start": "%START_TIME(%s.%3f)%",
    "peer": "%DOWNSTREAM_PEER_URI_SAN%",
    "tls": "%DOWNSTREAM_TLS_VERSION%",
    "local": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "remote": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "termination": "%CONNECTION_TERMINATION_DETAILS%",
    # Set by an RBAC engine with action LOG (AUDIT) in Envoy's shared namespace.
    "audit": "%DYNAMIC_METADATA(envoy.common:access_log_hint)%",
}
_HTTP = {
    "protocol": "%PROTOCOL%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "authority": "%REQ(:AUTHORITY)%",
    "code": "%RESPONSE_CODE%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "probe": "%REQ(X-MESHWARD-PROBE)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "rbac": f"%DYNAMIC_METADATA({rbac.HTTP_RBAC})%",
}
_TCP = {
    "rbac": f"%DYNAMIC_METADATA({rbac.NETWORK_RBAC})%",
}


# Envoy requires a runtime key on every RuntimeUInt32; nothing sets it, so the default holds.
_MIN_FAILED_STATUS = base_pb2.RuntimeUInt32(
    default_value=400, runtime_key="meshward.access_log.min_failed_status"
)


def failures_only() -> accesslog_pb2.AccessLogFilter:
    """Requests that failed: HTTP status >= 400, or any response flag set (no route, upstream
    connect failure or reset, ...; an empty `response_flag_filter` matches any flag)."""
    status = accesslog_pb2.StatusCodeFilter()
    status.comparison.op = accesslog_pb2.ComparisonFilter.GE
    status.comparison.value.CopyFrom(_MIN_FAILED_STATUS)
    either = accesslog_pb2.AccessLogFilter()
    either.or_filter.filters.add().status_code_filter.CopyFrom(status)
    either.or_filter.filters.add().response_flag_filter.SetInParent()
    return either


# Successful ordinary inbound requests are sampled at this percentage (see `inbound_filter`);
# `meshward authz preview` states it. Envoy reads the runtime key first, so an operator can
# change it on a running sidecar (admin `/runtime_modify`) without a config push.
INBOUND_SAMPLED_PERCENT = 1
INBOUND_SAMPLING_RUNTIME_KEY = "meshward.access_log.inbound_sampled_percent"
PROBE_HEADER = "x-meshward-probe"
# Set by an RBAC engine with action LOG (AUDIT) when one of its rules matched.
_AUDIT_HINT = ("envoy.common", "access_log_hint")
_SHADOW_DENIED = "denied"


def _metadata_filter(
    namespace: str, key: str, value: value_pb2.ValueMatcher
) -> accesslog_pb2.MetadataFilter:
    found = accesslog_pb2.MetadataFilter()
    found.matcher.filter = namespace
    found.matcher.path.add(key=key)
    found.matcher.value.CopyFrom(value)
    # Envoy's default logs a request whose metadata lacks the key: every request would match.
    found.match_if_key_not_found.value = False
    return found


def inbound_filter(
    dry_run_prefixes: Sequence[str] = (), *, sampled_percent: int = INBOUND_SAMPLED_PERCENT
) -> accesslog_pb2.AccessLogFilter:
    """Which inbound HTTP requests the server sidecar logs. Always: a denial or any failure
    (status >= 400 — an RBAC denial is a 403 local reply — or any response flag), a verifier
    probe (`X-Meshward-Probe`), a request an AUDIT rule matched, and a request one of the
    port's dry-run policies (their RBAC stat prefixes) would deny. Of the rest, successful
    ordinary requests, `sampled_percent`% at random: writing a JSON line for each cost the
    server sidecar ~7 µs of CPU per request, the main gap to a hand-written Envoy pair
    (bench/accesslog.py, bench/README.md)."""
    either = accesslog_pb2.AccessLogFilter()
    filters = either.or_filter.filters
    filters.extend(failures_only().or_filter.filters)
    filters.add().header_filter.header.CopyFrom(
        route_components_pb2.HeaderMatcher(name=PROBE_HEADER, present_match=True)
    )
    filters.add().metadata_filter.CopyFrom(
        _metadata_filter(*_AUDIT_HINT, value_pb2.ValueMatcher(bool_match=True))
    )
    for prefix in dry_run_prefixes:
        would_deny = value_pb2.ValueMatcher()
        would_deny.string_match.exact = _SHADOW_DENIED
        filters.add().metadata_filter.CopyFrom(
            _metadata_filter(rbac.HTTP_RBAC, prefix + _SHADOW_RESULT, would_deny)
        )
    sampled = filters.add().runtime_filter
    sampled.runtime_key = INBOUND_SAMPLING_RUNTIME_KEY
    sampled.percent_sampled.numerator = sampled_percent
    sampled.percent_sampled.denominator = percent_pb2.FractionalPercent.HUNDRED
    # Without it Envoy samples by x-request-id, which a client can choose to dodge the log.
    sampled.use_independent_randomness = True
    return either


def access_log(
    direction: Direction,
    *,
    http: bool,
    log_filter: accesslog_pb2.AccessLogFilter | None = None,
) -> accesslog_pb2.AccessLog:
    """The stdout JSON access log; with `log_filter`, only the entries it selects
    (`failures_only`, `inbound_filter`)."""
    fields = {"direction": direction, **_COMMON, **(_HTTP if http else _TCP)}
    log_format = struct_pb2.Struct()
    log_format.update(fields)
    stdout = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=log_format)
    )
    log = accesslog_pb2.AccessLog(name=STDOUT_LOGGER, typed_config=core.pack(stdout))
    if log_filter is not None:
        log.filter.CopyFrom(log_filter)
    return log


# --- reading entries -------------------------------------------------------------------------

_DENIED = re.compile(r"rbac_access_denied_matched_policy\[(?P<policy>.*)\]")
_RULE_ID = re.compile(r"ns\[(?P<ns>[^\]]*)\]-policy\[(?P<name>[^\]]*)\]-rule\[(?P<rule>\d+)\]")
_SHADOW_RESULT = "shadow_engine_result"
_SHADOW_POLICY = "shadow_effective_policy_id"
_CUSTOM_MATCHED = rbac.engine_stat_prefix("CUSTOM") + "enforced_effective_policy_id"
# Envoy's response-code details when the ext_authz filter denied (the provider said no, or
# could not answer and failOpen is off).
_EXT_AUTHZ_DENIALS = ("ext_authz_denied", "ext_authz_error")
_CUSTOM_SENT = ext_authz.enabled_metadata_key()


def parse_rule_id(rule_id: str) -> tuple[str, int] | None:
    """`ns[<ns>]-policy[<name>]-rule[<i>]` → ("<ns>/<name>", i), else None."""
    found = _RULE_ID.fullmatch(rule_id)
    if found is None:
        return None
    return f"{found['ns']}/{found['name']}", int(found["rule"])


def denial(entry: Mapping[str, Any]) -> tuple[str, str, int | None] | None:
    """(policy "ns/name", action, rule index) of an authorization denial, or None if the
    entry is not one. A request no ALLOW rule matched gives ("", "ALLOW", None). The action
    is "CUSTOM" when the CUSTOM engine (fail closed) denied an HTTP request, or when a
    provider denied it or could not be asked (`ext_authz_denied`/`ext_authz_error`: the rule
    is the CUSTOM rule that sent it there), else "DENY"; on TCP Envoy records no more than
    the rule, so a CUSTOM denial reads as "DENY" there."""
    if entry.get("details") in _EXT_AUTHZ_DENIALS:
        metadata = entry.get("rbac")
        marked = metadata.get(_CUSTOM_SENT) if isinstance(metadata, Mapping) else None
        parsed = parse_rule_id(str(marked or ""))
        return (parsed[0], "CUSTOM", parsed[1]) if parsed else ("", "CUSTOM", None)
    for key in ("details", "termination"):
        found = _DENIED.fullmatch(str(entry.get(key) or ""))
        if found is None:
            continue
        policy = found["policy"]
        if policy == "none":
            return "", "ALLOW", None
        parsed = parse_rule_id(policy)
        if parsed is None:
            return policy, "DENY", None
        metadata = entry.get("rbac")
        custom = isinstance(metadata, Mapping) and metadata.get(_CUSTOM_MATCHED) == policy
        return parsed[0], "CUSTOM" if custom else "DENY", parsed[1]
    return None


@dataclass(frozen=True, slots=True)
class ShadowDecision:
    """What one dry-run policy would have done with the request: `would_allow` is the shadow
    engine's result; `rule` is the rule that matched (None when none did — a dry-run ALLOW
    that matched nothing would deny, a dry-run DENY that matched nothing would allow)."""

    policy: str
    rule: int | None
    would_allow: bool


def shadow_decisions(entry: Mapping[str, Any]) -> tuple[ShadowDecision, ...]:
    """Every dry-run policy's decision on this request, by policy (from the `rbac` key)."""
    metadata = entry.get("rbac")
    if not isinstance(metadata, Mapping):
        return ()
    decisions: list[ShadowDecision] = []
    for key, result in metadata.items():
        if not (isinstance(key, str) and key.endswith(_SHADOW_RESULT)):
            continue
        prefix = key[: -len(_SHADOW_RESULT)]
        policy = rbac.policy_of_dry_run_prefix(prefix)
        if policy is None:
            continue
        rule: int | None = None
        parsed = parse_rule_id(str(metadata.get(prefix + _SHADOW_POLICY) or ""))
        if parsed is not None:
            policy, rule = parsed
        decisions.append(ShadowDecision(policy, rule, would_allow=result == "allowed"))
    return tuple(sorted(decisions, key=lambda d: d.policy))
