"""Authorization probes, derived from each policy in force (not hand-listed).

For every inbound port with policies, and every rule of those policies, the verifier builds
a request that the rule is about (a caller whose identity fits its sources, a method and path
that fit its operations), asks the Python evaluator what must happen (the whole PortAuthz
decides, not the rule alone), then sends that request for real from the caller's sidecar —
or in plaintext from outside the mesh — and checks the answer: allowed gets through, denied
gets 403 (HTTP) or a closed connection (TCP), and the server sidecar's access log names the
deciding policy and rule. Requests a CUSTOM provider decides are probed apart
(`_custom_probe`): the evaluator cannot predict a provider's answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshward.model.authorization import AuthzRule, OperationMatch, StringMatch
from meshward.model.authz_eval import Decision, Request, evaluate
from meshward.model.ir import (
    LOOPBACK,
    InboundPort,
    MeshModel,
    Network,
    OutboundService,
    ProxyModel,
    is_http,
)
from meshward.state.layout import StateDir
from meshward.verify import access_log, dial
from meshward.verify.probe import ProbeResult
from meshward.xds.access_log import denial, shadow_decisions
from meshward.xds.ext_authz import enabled_metadata_key

CUSTOM_MATCHED_KEY = enabled_metadata_key()

PROBES_PER_PORT = 6


@dataclass(frozen=True, slots=True)
class Caller:
    proxy: ProxyModel | None  # None: a plaintext client outside the mesh (the verifier)
    principal: str

    @property
    def name(self) -> str:
        return str(self.proxy.pod.key) if self.proxy else "outside the mesh (plaintext)"


@dataclass(frozen=True, slots=True)
class Plan:
    caller: Caller
    request: Request
    decision: Decision
    network: Network = LOOPBACK  # how the caller's app reaches the service (verify/dial.py)


def authz_probes(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    results = []
    for proxy in model.proxies:
        for port in proxy.inbound:
            if not port.authz.policies:
                continue
            service = service_for(model, proxy, port)
            if service is None:
                continue
            log = state.sidecar_log(proxy.pod.key.namespace, proxy.pod.key.pod_name)
            # A mesh caller's request is balanced over the service's replicas: the record
            # may be in any of their logs (this proxy's first).
            logs = [log] + [
                state.sidecar_log(e.pod.namespace, e.pod.pod_name)
                for e in service.endpoints
                if e.pod != proxy.pod.key
            ]
            for plan in _plans(model, proxy, port, service):
                results.append(_probe(plan, proxy, port, service, logs))
            if is_http(port.protocol):
                results += _dry_run_probes(model, proxy, port, service, log)
            if port.authz.ext_authz is not None and is_http(port.protocol):
                results += _custom_probe(model, proxy, port, service, log)
    return results


def _custom_probe(
    model: MeshModel, server: ProxyModel, port: InboundPort, service: OutboundService, log: Path
) -> list[ProbeResult]:
    """CUSTOM with a provider: one request its rules match, sent with no credentials from a
    mesh caller. The provider must be consulted, and a denial must reach the caller with the
    provider's own status (Envoy `ext_authz_denied`), not a stand-in; a provider that cannot
    be reached (`ext_authz_error`) fails the probe, as the port then fails closed."""
    provider = port.authz.ext_authz
    assert provider is not None
    plan = next(
        (
            p
            for p in _candidate_plans(model, server, port, service)
            if p.decision.provider and p.caller.proxy is not None
        ),
        None,
    )
    if plan is None:
        return []
    probe_id = uuid.uuid4().hex
    status = _send_http(plan, server, port, service, probe_id)
    entry = access_log.wait_for([log], _has_probe_id(probe_id))
    details = str(entry.get("details") or "") if entry else ""
    rbac = entry.get("rbac") if entry else None
    consulted = isinstance(rbac, dict) and CUSTOM_MATCHED_KEY in rbac
    if details == "ext_authz_denied":
        seen = f"HTTP {status}, the provider's denial ({details})"
        ok = status is not None and str(status) == str(entry.get("code") if entry else "")
    elif consulted and not details.startswith("ext_authz"):
        seen, ok = f"HTTP {status}; the provider allowed it ({details})", status is not None
    else:
        seen, ok = f"HTTP {status}; {details or 'no access-log record'}", False
    what = f"{plan.request.method} {plan.request.path}"
    return [
        ProbeResult(
            "authz-custom",
            f"{plan.caller.name} → {server.pod.key}:{port.port} ({service.name}) {what}",
            f"provider {provider.name} consulted; a denial returns the provider's status",
            seen,
            ok,
        )
    ]


def _has_probe_id(probe_id: str) -> access_log.Match:
    def match(entry: access_log.Entry) -> bool:
        return entry.get("probe") == probe_id

    return match


def _dry_run_probes(
    model: MeshModel, server: ProxyModel, port: InboundPort, service: OutboundService, log: Path
) -> list[ProbeResult]:
    """A dry-run policy never changes the answer, and its would-be decision is recorded: for
    each dry-run policy, one request its rules would deny (or allow) is sent for real."""
    results = []
    for policy in port.authz.policies:
        if not policy.dry_run:
            continue
        plan = next(
            (
                p
                for p in _candidate_plans(model, server, port, service)
                if any(r.policy == policy.ref and not r.would_allow for r in p.decision.shadow)
            ),
            None,
        )
        if plan is None:
            continue
        probe_id = uuid.uuid4().hex
        status = _send_http(plan, server, port, service, probe_id)
        entry = access_log.wait_for([log], _has_probe_id(probe_id))
        shadows = shadow_decisions(entry) if entry else ()
        recorded = [d for d in shadows if d.policy == policy.ref]
        enforced_ok = (status == 403) == (not plan.decision.allowed)
        ok = status is not None and enforced_ok and any(not d.would_allow for d in recorded)
        what = f"{plan.request.method} {plan.request.path}"
        results.append(
            ProbeResult(
                "authz-dry-run",
                f"{plan.caller.name} → {server.pod.key}:{port.port} ({service.name}) {what}",
                f"{policy.ref} (dry run) would deny; not enforced; recorded in the access log",
                f"HTTP {status}; access log: "
                + (
                    ", ".join(
                        f"{d.policy} would {'allow' if d.would_allow else 'deny'}" for d in recorded
                    )
                    or "no shadow decision recorded"
                ),
                ok,
            )
        )
    return results


def service_for(model: MeshModel, proxy: ProxyModel, port: InboundPort) -> OutboundService | None:
    """The mesh service port that `port` of `proxy` serves (None if no service fronts it)."""
    if not model.proxies:
        return None
    return next(
        (
            s
            for s in model.proxies[0].outbound
            if any(e.pod == proxy.pod.key and e.port == port.port for e in s.endpoints)
        ),
        None,
    )


def _callers(model: MeshModel, port: InboundPort, service: OutboundService) -> list[Caller]:
    callers = []
    for proxy in model.proxies:
        mine = proxy.outbound_to(service)
        endpoint_mtls = all(e.mtls for e in mine.endpoints) if mine else False
        if proxy.pod.identity is not None and endpoint_mtls:
            callers.append(Caller(proxy, proxy.pod.identity.principal))
    if port.mtls != "STRICT":
        callers.append(Caller(None, ""))
    return callers


def _candidate_plans(
    model: MeshModel, proxy: ProxyModel, port: InboundPort, service: OutboundService
) -> Iterator[Plan]:
    """Every caller with every request some rule on the port is about, evaluated."""
    callers = _callers(model, port, service)
    host = f"{service.fqdn}:{service.port}"
    for policy in port.authz.policies:
        for rule in policy.rules or (AuthzRule(index=-1),):
            for method, path in _witnesses(rule):
                for caller in callers:
                    request = Request(
                        source_principal=caller.principal,
                        source_ip=caller.proxy.pod.address.pod_ip if caller.proxy else "127.0.0.1",
                        remote_ip=caller.proxy.pod.address.pod_ip if caller.proxy else "127.0.0.1",
                        destination_ip=proxy.pod.address.pod_ip,
                        destination_port=port.port,
                        sni="",
                        host=host,
                        method=method,
                        path=path,
                        headers=(),
                        is_http=is_http(port.protocol),
                    )
                    yield Plan(caller, request, evaluate(port.authz, request), model.network)


def _plans(
    model: MeshModel, proxy: ProxyModel, port: InboundPort, service: OutboundService
) -> list[Plan]:
    """Requests with distinct outcomes (allowed or denied, by which rule), a few per port."""
    chosen: list[Plan] = []
    for plan in _candidate_plans(model, proxy, port, service):
        if plan.decision.provider:
            continue  # a provider's answer cannot be predicted: _custom_probe covers it
        outcome_seen = any(
            p.decision.allowed == plan.decision.allowed
            and p.decision.rule_id == plan.decision.rule_id
            for p in chosen
        )
        if outcome_seen:
            continue
        chosen.append(plan)
        if len(chosen) >= PROBES_PER_PORT:
            break
    return chosen


def _witnesses(rule: AuthzRule) -> Iterator[tuple[str, str]]:
    """(method, path) pairs the rule's operations are about, plus a neutral one."""
    for operation in rule.operations:
        yield _method(operation), _path(operation)
    yield "GET", "/"


def _method(operation: OperationMatch) -> str:
    return operation.methods[0] if operation.methods else "GET"


def _path(operation: OperationMatch) -> str:
    if not operation.paths:
        return "/"
    return _example(operation.paths[0])


def _example(match: StringMatch) -> str:
    if match.kind == "exact":
        return match.value
    if match.kind == "prefix":
        return match.value + "probe"
    if match.kind == "suffix":
        return "/probe" + match.value
    if match.kind == "template":
        return match.value.replace("{**}", "a/b").replace("{*}", "a")
    return "/"


def _probe(
    plan: Plan,
    server: ProxyModel,
    port: InboundPort,
    service: OutboundService,
    logs: list[Path],
) -> ProbeResult:
    decision = plan.decision
    what = f"{plan.request.method} {plan.request.path}" if plan.request.is_http else "TCP"
    target = f"{plan.caller.name} → {server.pod.key}:{port.port} ({service.name}) {what}"
    rule = f" rule[{decision.rule}]" if decision.rule is not None else ""
    if decision.allowed:
        expected = f"allowed by {decision.policy}{rule}" if decision.policy else "allowed"
    elif decision.policy:
        expected = f"denied by {decision.action} {decision.policy}{rule}"
    else:
        expected = "denied: no ALLOW rule matched"
    probe_id = uuid.uuid4().hex
    if plan.request.is_http:
        status = _send_http(plan, server, port, service, probe_id)
        entry = access_log.wait_for(logs, lambda e: e.get("probe") == probe_id)
        if status is None:
            return ProbeResult("authz", target, expected, "no HTTP answer", False)
        if decision.allowed:
            ok = status != 403
            return ProbeResult("authz", target, expected, f"HTTP {status}", ok)
        named = denial(entry) if entry else None
        ok = status == 403 and named is not None and _names(named, decision)
        seen = f"HTTP {status}; access log: {_describe(named)}"
        return ProbeResult("authz", target, expected, seen, ok)
    started = time.time() - 1
    opened = _send_tcp(plan, server, port, service)
    if decision.allowed:
        return ProbeResult("authz", target, expected, opened, opened.startswith("open"))
    if opened.startswith("open"):
        return ProbeResult("authz", target, expected, opened, False)
    peer = f"spiffe://{plan.caller.principal}" if plan.caller.principal else None

    def ours(entry: access_log.Entry) -> bool:
        local = str(entry.get("local") or "")
        return (
            float(entry.get("start") or 0) >= started
            and local.endswith(f":{port.port}")
            and (entry.get("peer") or None) == peer
            and denial(entry) is not None
        )

    entry = access_log.wait_for(logs, ours)
    named = denial(entry) if entry else None
    ok = named is not None and _names(named, decision)
    return ProbeResult("authz", target, expected, f"{opened}; access log: {_describe(named)}", ok)


def _names(named: tuple[str, str, int | None], decision: Decision) -> bool:
    policy, _action, rule = named
    if not decision.policy:  # default deny: Envoy names no policy ("[none]")
        return policy == ""
    return policy == decision.policy and rule == decision.rule


def _describe(named: tuple[str, str, int | None] | None) -> str:
    if named is None:
        return "no denial recorded"
    policy, action, rule = named
    if not policy:
        return "denied, no ALLOW rule matched"
    return f"denied by {action} {policy}" + (f" rule[{rule}]" if rule is not None else "")


def _route(
    plan: Plan, server: ProxyModel, port: InboundPort, service: OutboundService
) -> dial.Route | None:
    caller = plan.caller
    if caller.proxy is not None:
        return dial.via_sidecar(plan.network, caller.proxy, service)
    return dial.direct((server.pod.address.pod_ip, port.port))


def _send_http(
    plan: Plan, server: ProxyModel, port: InboundPort, service: OutboundService, probe_id: str
) -> int | None:
    route = _route(plan, server, port, service)
    if route is None:
        return None
    host, path = plan.request.host, plan.request.path
    return dial.http_request(route, plan.request.method, host, path, {"X-Meshward-Probe": probe_id})


def _send_tcp(plan: Plan, server: ProxyModel, port: InboundPort, service: OutboundService) -> str:
    """ "open" if the connection was accepted and stayed usable, else what happened."""
    route = _route(plan, server, port, service)
    if route is None:
        return "no local port for the service"
    return dial.tcp_exchange(route)
