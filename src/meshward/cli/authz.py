"""`meshward authz explain | check | preview`: authorization you can read.

- explain: evaluates the configured policies in Python (model/authz_eval.py, the same IR the
  sidecars are programmed from) for one hypothetical request and prints the decision, the
  deciding policy and rule, the dry-run results and the effective mTLS mode; for a
  ServiceEntry host, the egress gateway's decision (cli/authz_gateway.py).
- check: reads a sidecar's live Envoy configuration (admin /config_dump) and lists the RBAC
  policies actually in force per port, next to what the control plane intends.
- preview: replays the requests the sidecars recorded (inbound access log) against the
  config with a candidate policy added, and lists what it would newly deny — before anything
  is applied.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshward.cli import authz_gateway
from meshward.cli.lifecycle import print_diagnostics
from meshward.config import load
from meshward.config.store import merge, read_paths, read_store, write_store
from meshward.diagnostics import has_errors
from meshward.jwks import resolve, validate
from meshward.model import build
from meshward.model.authz_eval import Decision, Request, evaluate
from meshward.model.ir import InboundPort, MeshModel, OutboundService, Pod, is_http
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json
from meshward.verify import access_log
from meshward.xds import ext_authz
from meshward.xds.access_log import INBOUND_SAMPLED_PERCENT


def _model(state: StateDir, config_dir: Path | None = None) -> MeshModel | None:
    mesh = read_mesh(state)
    config = load([config_dir or state.config])
    if mesh is None:
        print(f"error: no mesh running from {state.root}", file=sys.stderr)
        return None
    if has_errors(config.diagnostics):
        print_diagnostics(config.diagnostics)
        return None
    model, diagnostics = build(config, mesh.addresses(), mesh.model_network())
    if has_errors(diagnostics):
        print_diagnostics(diagnostics)
        return None
    return model


# --- explain ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    service: OutboundService
    pod: Pod
    port: InboundPort


def _targets(model: MeshModel, to: str) -> list[Target] | str:
    """Resolve `name[.ns[.svc.cluster.local]][:port]` to the pods and inbound ports behind it."""
    host, _, port_text = to.partition(":")
    parts = host.split(".")
    name, namespace = parts[0], parts[1] if len(parts) > 1 else None
    if not model.proxies:
        return "the mesh has no sidecars"
    services = [
        s
        for s in model.proxies[0].outbound
        if s.name == name and (namespace is None or s.namespace == namespace)
    ]
    if port_text:
        services = [s for s in services if str(s.port) == port_text]
    if not services:
        return f"no service port matches {to!r}"
    if len({(s.namespace, s.name) for s in services}) > 1:
        return f"{to!r} is ambiguous: add the namespace (name.namespace)"
    service = services[0]
    pods = {p.key: p for p in model.pods}
    proxies = {p.pod.key: p for p in model.proxies}
    found = []
    for endpoint in service.endpoints:
        proxy = proxies.get(endpoint.pod)
        if proxy is None:
            continue
        port = next((i for i in proxy.inbound if i.port == endpoint.port), None)
        if port is not None:
            found.append(Target(service, pods[endpoint.pod], port))
    if not found and any(e.pod in proxies and proxies[e.pod].gateway for e in service.endpoints):
        return (
            f"{service.fqdn}:{service.port} is a gateway's Service: name the host the call is "
            "for (--to <ServiceEntry host>) to see the gateway's decision"
        )
    if not found:
        return f"{service.fqdn}:{service.port} has no sidecar endpoints (no policy applies)"
    return found


def _caller(
    model: MeshModel, args: argparse.Namespace, target: Target
) -> tuple[str, str, str] | str:
    """(principal or "", source ip, description) of the caller, or an error."""
    if args.principal:
        principal = args.principal.removeprefix("spiffe://")
        return principal, args.source_ip or "127.0.0.1", f"principal {principal}"
    if args.plaintext or not args.source:
        return "", args.source_ip or "127.0.0.1", "a plaintext client outside the mesh"
    pods = [
        p
        for p in model.pods
        if args.source in (p.key.workload, p.key.pod_name)
        and (args.source_namespace is None or p.key.namespace == args.source_namespace)
    ]
    if not pods:
        return f"no workload {args.source!r}" + (
            f" in namespace {args.source_namespace}" if args.source_namespace else ""
        )
    pod = pods[0]
    endpoint = next(e for e in target.service.endpoints if e.pod == target.pod.key)
    if pod.identity is None or not endpoint.mtls:
        why = "it has no sidecar" if pod.identity is None else target.service.tls_source
        return "", pod.address.pod_ip, f"{pod.key} in plaintext ({why})"
    return pod.identity.principal, pod.address.pod_ip, f"{pod.key} as {pod.identity.uri}"


def _request(args: argparse.Namespace, target: Target, principal: str, ip: str) -> Request:
    headers = []
    for item in args.header or ():
        key, _, value = item.partition("=")
        headers.append((key.strip().lower(), value.strip()))
    return Request(
        source_principal=principal,
        source_ip=ip,
        remote_ip=ip,
        destination_ip=target.pod.address.pod_ip,
        destination_port=target.port.port,
        sni="",
        host=f"{target.service.fqdn}:{target.service.port}",
        method=args.method,
        path=args.path,
        headers=tuple(headers),
        is_http=is_http(target.port.protocol),
    )


def explain_request(
    state: StateDir,
    *,
    source: str,
    source_namespace: str,
    to: str,
    path: str = "/",
    headers: Sequence[str] = (),
    jwt: str | None = None,
) -> int:
    """`meshward authz explain` for one request from a workload (the demo's explanations)."""
    return explain(
        argparse.Namespace(
            state_dir=state.root,
            to=to,
            source=source,
            source_namespace=source_namespace,
            principal=None,
            plaintext=False,
            method="GET",
            path=path,
            header=list(headers) or None,
            source_ip=None,
            exit_code=False,
            jwt=jwt,
        )
    )


def explain(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    model = _model(state)
    if model is None:
        return 1
    external = authz_gateway.targets(model, args)
    if external is not None:
        return _explain_external(external, args)
    targets = _targets(model, args.to)
    if isinstance(targets, str):
        print(f"error: {targets}", file=sys.stderr)
        return 1
    denied = False
    seen: set[str] = set()
    for target in targets:
        caller = _caller(model, args, target)
        if isinstance(caller, str):
            print(f"error: {caller}", file=sys.stderr)
            return 1
        principal, ip, who = caller
        request = _request(args, target, principal, ip)
        token_lines: list[str] = []
        if getattr(args, "jwt", None):
            checked = _with_token(model, state, target, request, args.jwt)
            if isinstance(checked, list):
                lines = _explain_head(target, who, request) + checked
                print("\n".join(lines) + "\n")
                denied = True
                continue
            request, token_lines = checked
        lines, refused = _explain_one(target, who, principal, request)
        lines[3:3] = token_lines
        text = "\n".join(lines[1:])
        if text in seen:  # replicas with the same policies give the same answer
            continue
        seen.add(text)
        print("\n".join(lines) + "\n")
        denied = denied or refused
    return 1 if denied and args.exit_code else 0


def _explain_external(
    targets: list[authz_gateway.GatewayTarget] | str, args: argparse.Namespace
) -> int:
    """An external host: the egress gateway's decision (or why none is made)."""
    if isinstance(targets, str):
        print(f"error: {targets}", file=sys.stderr)
        return 1
    denied = False
    for target in targets:
        lines = list(target.lines)
        refused = target.refused
        if target.authz is not None and target.request is not None:
            decision = evaluate(target.authz, target.request)
            lines += _decision_lines(decision, http=target.request.is_http)
            refused = not decision.allowed
        else:
            lines.append(target.outcome)
        print("\n".join(lines) + "\n")
        denied = denied or refused
    return 1 if denied and args.exit_code else 0


def _explain_head(target: Target, who: str, request: Request) -> list[str]:
    port = target.port
    verb = f"{request.method} {request.path}" if request.is_http else "TCP connection"
    return [
        f"{verb} → {target.service.fqdn}:{target.service.port} "
        f"(pod {target.pod.key}, port {port.port} {port.protocol})",
        f"  caller:   {who}",
        f"  mTLS:     {port.mtls} ({port.mtls_source})",
    ]


def _with_token(
    model: MeshModel, state: StateDir, target: Target, request: Request, token: str
) -> tuple[Request, list[str]] | list[str]:
    """The request with the token's identity (and the lines saying so), or the lines of a
    refusal (401): the token is checked like the sidecar's jwt_authn does (jwks/validate.py)
    against the key sets the control plane fetched (control-plane.json)."""
    proxy = next((p for p in model.proxies if p.pod.key == target.pod.key), None)
    if proxy is None or not proxy.jwt_rules or not request.is_http:
        return request, [
            "  jwt:      not checked: no RequestAuthentication selects this "
            "workload (or the port is TCP), so the token is no identity"
        ]
    published = {
        source["source"]: source.get("jwks") or ""
        for source in (read_json(state.control_plane) or {}).get("jwks") or []
    }
    resolved = resolve.resolve(
        dataclasses.replace(model, proxies=(proxy,)), lambda url: published.get(url, "")
    )
    verdict = validate.check(token, resolved.proxies[0].jwt_rules, time.time())
    if not verdict.valid:
        return [
            f"  jwt:      INVALID: {verdict.reason}",
            "  decision: REFUSED (401) by jwt_authn, before any AuthorizationPolicy",
        ]
    claims = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(verdict.claims.items()))
    lines = [
        f"  jwt:      valid ({verdict.reason})",
        f"  principal: {verdict.principal}",
        f"  claims:   {claims}",
    ]
    return dataclasses.replace(
        request, request_principal=verdict.principal, claims=dict(verdict.claims)
    ), lines


def _explain_one(
    target: Target, who: str, principal: str, request: Request
) -> tuple[list[str], bool]:
    port = target.port
    lines = _explain_head(target, who, request)
    if port.mtls == "STRICT" and not principal:
        lines.append("  decision: REFUSED at the TLS handshake: STRICT requires a mesh certificate")
        return lines, True
    decision = evaluate(port.authz, request)
    lines += _decision_lines(decision, http=request.is_http)
    return lines, not decision.allowed


def _decision_lines(decision: Decision, *, http: bool) -> list[str]:
    refusal = "DENY (403)" if http else "DENY (connection closed)"
    verdict = "ALLOW" if decision.allowed else refusal
    if decision.provider:
        verdict = (
            f"CUSTOM provider {decision.provider!r} would be consulted; its denial wins, "
            f"else {verdict}"
        )
    lines = [f"  decision: {verdict}"]
    if decision.policy:
        rule = f" rule[{decision.rule}]" if decision.rule is not None else ""
        lines.append(f"  by:       {decision.action} policy {decision.policy}{rule}")
    lines.append(f"  why:      {decision.reason}")
    for shadow in decision.shadow:
        outcome = "would ALLOW" if shadow.would_allow else "would DENY"
        rule = f" rule[{shadow.rule}]" if shadow.rule is not None else ""
        lines.append(f"  dry-run:  {shadow.action} {shadow.policy}{rule} {outcome}")
    for audited in decision.audited:
        lines.append(f"  audit:    {audited}")
    return lines


# --- check -----------------------------------------------------------------------------------


RBAC_TYPES = (
    "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
    "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC",
)


def _rbac_engines(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("@type") in RBAC_TYPES:
            yield node
            return
        for value in node.values():
            yield from _rbac_engines(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rbac_engines(value)


def live_policies(pod_ip: str) -> dict[str, list[tuple[str, str, list[str]]]]:
    """{listener name: [(action, "enforced"|"dry-run"|"provider", [policy names])...]} from
    Envoy admin; "provider": CUSTOM rules whose requests an ext_authz provider decides."""
    url = f"http://{pod_ip}:15000/config_dump?resource=dynamic_listeners"
    with urllib.request.urlopen(url, timeout=5) as response:
        dump = json.load(response)
    found: dict[str, list[tuple[str, str, list[str]]]] = {}
    for config in dump.get("configs", []):
        listener = (config.get("active_state") or {}).get("listener") or {}
        name = str(listener.get("name", ""))
        if not name.startswith("inbound|"):
            continue
        engines = found.setdefault(name, [])
        for engine in _rbac_engines(listener):
            for key, mode in (("rules", "enforced"), ("shadow_rules", "dry-run")):
                rules = engine.get(key)
                if rules is not None:
                    shown = (rules.get("action", "ALLOW"), mode)
                    # The CUSTOM shadow engine marks the requests a provider decides.
                    if engine.get("shadow_rules_stat_prefix") == ext_authz.SHADOW_STAT_PREFIX:
                        shown = ("CUSTOM", "provider")
                    entry = (*shown, sorted(rules.get("policies", {})))
                    if entry not in engines:
                        engines.append(entry)
    return found


def check(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    model = _model(state)
    mesh = read_mesh(state)
    if model is None or mesh is None:
        return 1
    pods = mesh.find(args.workload, args.namespace)
    if not pods:
        print(f"error: no workload {args.workload!r}", file=sys.stderr)
        return 1
    mismatch = False
    for pod in pods:
        if not pod.sidecar:
            print(f"{pod.namespace}/{pod.pod}: no sidecar, no policy can be enforced")
            continue
        proxy = model.proxy(pod.node_id)
        try:
            live = live_policies(pod.pod_ip)
        except OSError as error:
            print(f"error: {pod.namespace}/{pod.pod}: Envoy admin not reachable: {error}")
            return 1
        print(f"{pod.namespace}/{pod.pod} (live Envoy configuration)")
        for port in proxy.inbound if proxy else ():
            engines = live.get(f"inbound|{port.port}", [])
            expected = _expected_names(port)
            actual = sorted({name for _, _, names in engines for name in names})
            print(f"  port {port.port} ({port.protocol}, {port.mtls})")
            if not engines:
                print("    no RBAC filter: every request that passes mTLS is allowed")
            for action, mode, names in engines:
                print(
                    f"    {action:5} {mode:8} {', '.join(names) or '(no rules: matches nothing)'}"
                )
            if actual != expected:
                mismatch = True
                print(f"    NOT IN SYNC: the control plane intends {expected or 'no policies'}")
    return 1 if mismatch else 0


def _expected_names(port: InboundPort) -> list[str]:
    # A policy without rules is programmed as one never-matching Envoy policy named rule[0].
    return sorted(
        {
            name
            for p in port.authz.policies
            for name in ([p.rule_id(r.index) for r in p.rules] or [p.rule_id(0)])
        }
    )


# --- preview ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    pod: str
    port: int
    entry: dict[str, Any]


def recorded_requests(state: StateDir, model: MeshModel, limit: int) -> list[Recorded]:
    """The last `limit` inbound requests each sidecar logged (its own record)."""
    found = []
    for proxy in model.proxies:
        key = proxy.pod.key
        path = state.sidecar_log(key.namespace, key.pod_name)
        entries = [e for e in access_log.entries(path) if e.get("direction") == "inbound"]
        for entry in entries[-limit:]:
            local = str(entry.get("local") or "")
            port = local.rsplit(":", 1)[-1]
            if port.isdigit():
                found.append(Recorded(str(key), int(port), entry))
    return found


def _replay(entry: dict[str, Any], port: InboundPort) -> Request:
    peer = str(entry.get("peer") or "")
    remote = str(entry.get("remote") or "").rsplit(":", 1)[0]
    local = str(entry.get("local") or "").rsplit(":", 1)
    method = entry.get("method")
    return Request(
        source_principal=peer.removeprefix("spiffe://") if peer not in ("", "-") else "",
        source_ip=remote,
        remote_ip=remote,
        destination_ip=local[0],
        destination_port=port.port,
        sni="",
        host=str(entry.get("authority") or ""),
        method=str(method or "") if method not in (None, "-") else "",
        path=str(entry.get("path") or "") if entry.get("path") not in (None, "-") else "",
        headers=(),
        is_http=is_http(port.protocol),
    )


def preview(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    current = _model(state)
    if current is None:
        return 1
    incoming = load(args.paths)
    print_diagnostics(incoming.diagnostics)
    if has_errors(incoming.diagnostics):
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        candidate_dir = Path(scratch) / "config"
        write_store(candidate_dir, merge(read_store(state.config), read_paths(args.paths)))
        candidate = _model(state, candidate_dir)
    if candidate is None:
        return 1
    recorded = recorded_requests(state, current, args.limit)
    ports_now = _ports(current)
    ports_next = _ports(candidate)
    newly_denied, newly_allowed = [], []
    for item in recorded:
        before_port, after_port = (
            ports_now.get((item.pod, item.port)),
            ports_next.get((item.pod, item.port)),
        )
        if before_port is None or after_port is None:
            continue
        before = evaluate(before_port.authz, _replay(item.entry, before_port))
        after = evaluate(after_port.authz, _replay(item.entry, after_port))
        if before.allowed and not after.allowed:
            newly_denied.append((item, after))
        elif after.allowed and not before.allowed:
            newly_allowed.append((item, after))
    print(f"replayed {len(recorded)} recorded requests against {', '.join(map(str, args.paths))}")
    # The sidecars keep every denial, failure, probe and TCP connection, but only a sample of
    # successful HTTP requests (xds/access_log.py `inbound_filter`): say what was replayed.
    print(
        f"(successful HTTP requests are sampled at {INBOUND_SAMPLED_PERCENT}%; denied and failed"
        " requests and TCP connections are all recorded)"
    )
    _print_changes("would be DENIED (allowed today)", newly_denied)
    _print_changes("would be ALLOWED (denied today)", newly_allowed)
    if not newly_denied and not newly_allowed:
        print("no recorded request changes its decision")
    return 1 if newly_denied and args.exit_code else 0


def _ports(model: MeshModel) -> dict[tuple[str, int], InboundPort]:
    return {(str(p.pod.key), port.port): port for p in model.proxies for port in p.inbound}


def _print_changes(title: str, changes: Sequence[tuple[Recorded, Decision]]) -> None:
    if not changes:
        return
    print(f"\n{len(changes)} request(s) {title}:")
    for item, decision in changes:
        entry = item.entry
        peer = entry.get("peer") or "plaintext"
        what = f"{entry.get('method') or 'TCP'} {entry.get('path') or ''}".strip()
        by = f"{decision.action} {decision.policy}" + (
            f" rule[{decision.rule}]" if decision.rule is not None else ""
        )
        print(f"  {item.pod}:{item.port}  {what}  from {peer}  → {by}: {decision.reason}")
