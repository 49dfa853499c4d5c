"""`meshward authz explain --to <external host>`: the egress gateway's decision.

Called by cli/authz.py's `explain` before it looks for mesh services. A ServiceEntry host
has no inbound sidecar: when the caller's `mesh` VirtualService routes it to an egress
gateway, the AuthorizationPolicies that decide are the gateway's, on the gateway port the
call arrives at (model/gateway_hops.py finds the hop and the filter chain). What they see of
the caller depends on that hop, as on the wire: its principal only when the sidecar sends
mesh mTLS (a DestinationRule ISTIO_MUTUAL for the gateway's Service port); plaintext and the
app's own TLS (passthrough) carry no identity. A host the caller reaches without a gateway
leaves from its own sidecar, where no AuthorizationPolicy applies (Istio's are inbound).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from meshward.model import gateway_hops
from meshward.model.authorization import PortAuthz
from meshward.model.authz_eval import Request
from meshward.model.ir import MeshModel, OutboundService, ProxyModel, is_http


@dataclass(frozen=True, slots=True)
class GatewayTarget:
    """One external host port as the caller reaches it: the lines saying how, and the
    gateway port's policies with the request they see (`authz` None: nothing evaluates it,
    and `outcome` says what happens instead)."""

    lines: tuple[str, ...]
    authz: PortAuthz | None = None
    request: Request | None = None
    outcome: str = ""
    refused: bool = False


def targets(model: MeshModel, args: argparse.Namespace) -> list[GatewayTarget] | str | None:
    """The external host ports `args.to` names as the caller sees them, an error, or None
    when `args.to` is no ServiceEntry host of the caller (a mesh service: cli/authz.py)."""
    host, _, port_text = args.to.partition(":")
    caller = _caller(model, args)
    if caller is None:
        return None
    services = [
        s
        for s in caller.outbound
        if s.external is not None and s.name == host and port_text in ("", str(s.port))
    ]
    if not services:
        return None
    principal = args.principal.removeprefix("spiffe://") if args.principal else None
    if args.plaintext:
        principal = ""
    found: list[GatewayTarget] = []
    for service in services:
        head = _head(args, service, caller)
        hops = gateway_hops.gateway_hops(model, caller, service)
        if not hops:
            found.append(
                GatewayTarget(
                    (
                        *head,
                        "  path:     the caller's sidecar sends it out itself (no gateway route)",
                    ),
                    outcome="  decision: ALLOW: no AuthorizationPolicy applies to outbound calls "
                    "(Istio's are inbound); route it through an egress gateway to decide",
                )
            )
        for hop in hops:
            found.append(_at_gateway(head, hop, service, caller, args, principal))
    return found


def _caller(model: MeshModel, args: argparse.Namespace) -> ProxyModel | None:
    """The --from workload's sidecar, else (a principal or plaintext) the first sidecar: its
    routes stand for every caller's."""
    sidecars = [p for p in model.proxies if p.gateway is None]
    if args.source:
        sidecars = [
            p
            for p in sidecars
            if args.source in (p.pod.key.workload, p.pod.key.pod_name)
            and (args.source_namespace is None or p.pod.key.namespace == args.source_namespace)
        ]
    return sidecars[0] if sidecars else None


def _head(args: argparse.Namespace, service: OutboundService, caller: ProxyModel) -> list[str]:
    http = is_http(service.protocol)
    verb = f"{args.method} {args.path}" if http else "TCP connection"
    assert service.external is not None
    if args.source:
        who = f"{caller.pod.key}"
    else:
        who = f"{'a plaintext client' if args.plaintext else f'principal {args.principal}'}"
        who += f", routed as {caller.pod.key}'s sidecar routes it"
    return [
        f"{verb} → {service.name}:{service.port} ({service.external.source}, {service.protocol})",
        f"  caller:   {who}",
    ]


def _at_gateway(
    head: list[str],
    hop: gateway_hops.GatewayHop,
    service: OutboundService,
    caller: ProxyModel,
    args: argparse.Namespace,
    principal: str | None,
) -> GatewayTarget:
    gateway = f"{hop.gateway.pod.key}:{hop.listener.port}"
    if hop.endpoint.mtls:
        how = f"mesh mTLS, SNI {hop.to_gateway.mesh_sni} ({hop.to_gateway.tls_source})"
    elif is_http(service.protocol):
        how = "plaintext (auto-mTLS never wraps traffic to a gateway pod; no DestinationRule)"
    else:
        how = f"the app's own TLS, SNI {service.name}: no caller identity behind it"
    lines = [*head, f"  via:      gateway {gateway} ({hop.to_gateway.fqdn}), {how}"]
    chain = gateway_hops.chain_for(hop, service)
    if chain is None:
        return GatewayTarget(
            tuple(lines),
            outcome=f"  decision: REFUSED: no server on gateway port {hop.listener.port} takes "
            "it (`meshward analyze`: MW0526)",
            refused=True,
        )
    mode = f" {chain.tls.mode}" if chain.tls is not None else ""
    names = ", ".join(chain.server_names) or "any SNI"
    lines.append(f"  server:   {chain.kind}{mode} ({names}); the gateway's policies decide")
    headers = []
    for item in args.header or ():
        key, _, value = item.partition("=")
        headers.append((key.strip().lower(), value.strip()))
    request = gateway_hops.gateway_request(
        hop,
        chain,
        service,
        caller,
        method=args.method,
        path=args.path,
        headers=tuple(headers),
        principal=principal,
    )
    seen = request.source_principal or "no identity"
    lines.append(f"  identity: {seen}")
    return GatewayTarget(tuple(lines), hop.listener.authz, request)
