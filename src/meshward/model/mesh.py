"""The model stage entry point: a valid ConfigSet plus pod addresses → the frozen MeshModel.

Called by the control plane and the runner (via `meshward.model.build`) after config/ has
loaded a set without errors and `meshward.model.addressing.allocate` has placed the pods.
Pure: no I/O. Returns the model and the model-level findings (MW02xx); the config set's own
diagnostics are not repeated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from meshward.config.resources import ConfigSet
from meshward.diagnostics import Diagnostic, has_errors
from meshward.errors import ConfigError
from meshward.model import (
    authz,
    extauthz,
    gateway,
    ir,
    mesh_routes,
    peer_authn,
    pods,
    proxies,
    request_authn,
    service_entries,
    services,
    sidecar_scope,
    upstream_tls,
)


def build(
    config: ConfigSet,
    addresses: Mapping[ir.PodKey, ir.PodAddress],
    network: ir.Network = ir.LOOPBACK,
) -> tuple[ir.MeshModel, tuple[Diagnostic, ...]]:
    """Build the mesh model. Raises ConfigError if `config` has error-level diagnostics.

    `network` says how the runner placed the pods; in netns mode services carry their VIPs
    and every proxy captures (virtual listeners, MeshConfig outboundTrafficPolicy).

    Pods missing from `addresses` (see `meshward.model.replicas` and `allocate`) are left out
    with an MW0211 info: a config newer than the addresses still builds.
    """
    if has_errors(config.diagnostics):
        raise ConfigError("the config set has errors; it cannot become a model")
    mesh = config.mesh
    # Outside workloads are hosts on the outside network, not pods: the model never sees them.
    workloads = tuple(w for w in config.workloads if not w.outside)
    ir_services, service_findings = services.build(config.services, workloads, addresses)
    if network.mode == "netns":
        ir_services = tuple(
            dataclasses.replace(s, vip=network.vip(s.namespace, s.name)) for s in ir_services
        )
    ir_pods = pods.build(workloads, ir_services, mesh.trust_domain, addresses)
    pa = peer_authn.index(config.peer_authentications, mesh.root_namespace)
    rules = tuple(sorted(config.destination_rules, key=lambda r: r.meta.order))
    providers = extauthz.resolve(mesh, ir_services)
    policies = authz.index(
        config.authorization_policies,
        mesh.root_namespace,
        mesh.trust_domain,
        providers.usable,
        (p.name for p in mesh.extension_providers),
    )
    taken = gateway.listen_ports(ir_pods, config.gateways, ir_services)
    registry = service_entries.Registry(
        config.service_entries, network, service_entries.outside_dns(config.workloads, network)
    )
    sidecars = proxies.build(
        ir_pods,
        ir_services,
        pa,
        rules,
        mesh.trust_domain,
        policies,
        config.request_authentications,
        mesh.root_namespace,
        taken,
        capture=network.mode == "netns",
        outbound_policy=mesh.outbound_traffic_policy,
        registry=registry,
        sidecars=config.sidecars,
    )
    all_proxies, gateway_findings = gateway.build(
        sidecars, ir_services, config.gateways, config.virtual_services, mesh, policies, registry
    )
    all_proxies, route_findings = mesh_routes.build(
        all_proxies, ir_services, config.virtual_services, registry
    )
    model = ir.MeshModel(
        trust_domain=mesh.trust_domain,
        root_namespace=mesh.root_namespace,
        cert_ttl_seconds=mesh.cert_ttl_seconds,
        pods=ir_pods,
        services=ir_services,
        proxies=all_proxies,
        network=network,
        outbound_policy=mesh.outbound_traffic_policy,
        external_hosts=service_entries.hosts(config.service_entries, network),
    )
    selectable = [(p.key.namespace, p.labels) for p in ir_pods if p.has_sidecar]
    findings = (
        *pods.unplaced(workloads, addresses),
        *pods.diagnose(workloads),
        *service_findings,
        *peer_authn.diagnose(pa, ir_pods),
        *sidecar_scope.diagnose(config.sidecars, ir_pods),
        *upstream_tls.diagnose(
            rules, ir_services, ir_pods, (h for e in config.service_entries for h in e.hosts)
        ),
        *providers.findings,
        *gateway_findings,
        *route_findings,
        *authz.diagnose(policies, ir_pods, config.request_authentications),
        *request_authn.diagnose(config.request_authentications, mesh.root_namespace, selectable),
    )
    return model, findings
