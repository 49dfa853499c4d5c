"""Scale: the outbound view is computed once per service port and shared, with the same value.

model/upstream_tls.Upstreams decides each pod port's mTLS once and each service port's
endpoints once per TLS setting; proxies of one caller class share one outbound tuple. These
tests pin that the shared computation equals the per-caller definition (Istio's semantics,
written out plainly below), that equal values really are one object, and that the work no
longer grows with callers x services.
"""

from __future__ import annotations

import pytest
from model_cases import addresses, config_set, peer, rule, service, workload

from meshward.config import resources as cfg
from meshward.model import build, ir, peer_authn, proxies, upstream_tls


def _reference_outbound(
    caller: ir.Pod, model: ir.MeshModel, config: cfg.ConfigSet
) -> tuple[ir.OutboundService, ...]:
    """The outbound view of one caller by the definition: every service port, every
    endpoint's mode decided for this caller, TCP binds picked in service order."""
    pa = peer_authn.index(config.peer_authentications, model.root_namespace)
    rules = sorted(config.destination_rules, key=lambda r: r.meta.order)
    pods = {p.key: p for p in model.pods}
    used = {p.port for p in caller.ports} | set(ir.RESERVED_PORTS)
    outbound = []
    for svc in sorted(model.services, key=lambda s: (s.namespace, s.name)):
        found = upstream_tls.rule_for(
            rules,
            caller_namespace=caller.key.namespace,
            caller_labels=caller.labels,
            service_namespace=svc.namespace,
            fqdn=svc.fqdn,
            root_namespace=model.root_namespace,
        )
        sans = tuple(sorted({i.uri for k in svc.pods if (i := pods[k].identity) is not None}))
        for port in sorted(svc.ports, key=lambda p: p.port):
            decision = upstream_tls.decide(found, port.port)
            endpoints = tuple(
                ir.UpstreamEndpoint(
                    pods[k].address.pod_ip,
                    port.target_port,
                    k,
                    upstream_tls.endpoint_mtls(
                        decision.tls,
                        pods[k].has_sidecar,
                        peer_authn.decide(pa, k.namespace, pods[k].labels, port.target_port).mode,
                    ),
                )
                for k in svc.pods
            )
            http = ir.is_http(port.protocol)
            bind = None
            if not http:
                local = port.port
                if local in used:
                    local = proxies.FIRST_FALLBACK_PORT
                    while local in used:
                        local += 1
                used.add(local)
                bind = (caller.address.pod_ip, local)
            outbound.append(
                ir.OutboundService(
                    namespace=svc.namespace,
                    name=svc.name,
                    port=port.port,
                    protocol=port.protocol,
                    endpoints=endpoints,
                    tls=decision.tls,
                    tls_source=decision.source,
                    subject_alt_names=sans,
                    http_domains=proxies.http_domains(svc, port.port, caller.key.namespace)
                    if http
                    else (),
                    tcp_bind=bind,
                )
            )
    return tuple(outbound)


# Meshes where callers differ in every way the outbound view depends on: namespace (short
# Host names, rule lookup order), workloadSelector rules that pick some callers only, TCP
# ports (per-caller binds), legacy endpoints, per-port PeerAuthentication of the destination.
MESHES: dict[str, cfg.ConfigSet] = {
    "namespaces-and-selector-rules": config_set(
        workload("web", "front", {"app": "web", "tier": "edge"}),
        workload("batch", "front", {"app": "batch"}),
        workload("api", "core", ports=[("http", 8000), ("http-admin", 9000)], replicas=2),
        workload("db", "core", ports=[("redis", 6379)]),
        workload("old", "core", {"app": "api"}, sidecar=False),
        service("api", "core", ports=[("http", 80, 8000), ("http-admin", 9000, 9000)]),
        service("db", "core", ports=[("redis", 6379, 6379)]),
        service("web", "front", ports=[("http", 8080, 8000)]),
        peer("core", "core", "STRICT"),
        peer("api", "core", None, {"app": "api"}, {9000: "DISABLE"}),
        rule("edge", "front", "api.core", "DISABLE", selector={"tier": "edge"}),
        rule("admin", "core", "api", port_level={9000: "ISTIO_MUTUAL"}),
        rule("all", "meshward-system", "*", "ISTIO_MUTUAL", order=1),
    ),
    "tcp-binds-collide": config_set(
        workload("a", "x", ports=[("redis", 6379)]),
        workload("b", "x", ports=[("tcp", 7000)]),
        workload("c", "y", ports=[("http", 8000)]),
        service("a", "x", ports=[("redis", 6379, 6379)]),
        service("b", "x", ports=[("tcp", 7000, 7000), ("tcp-two", 6379, 7000)]),
        service("c", "y", ports=[("http", 80, 8000)]),
    ),
}


@pytest.mark.parametrize("case", sorted(MESHES))
def test_outbound_equals_per_caller_definition(case: str) -> None:
    config = MESHES[case]
    model, _ = build(config, addresses(config))
    assert model.proxies
    for proxy in model.proxies:
        assert proxy.outbound == _reference_outbound(proxy.pod, model, config), proxy.node_id


def _mesh(size: int) -> cfg.ConfigSet:
    """`size` workloads (one HTTP port) in 4 namespaces, a service per two workloads."""
    resources: list[cfg.Workload | cfg.Service | cfg.PeerAuthentication] = [
        peer("ns", f"ns-{n}", "STRICT") for n in range(4)
    ]
    for i in range(size):
        resources.append(workload(f"w-{i}", f"ns-{i // 2 % 4}", {"app": f"s-{i // 2}"}))
    for j in range(size // 2):
        resources.append(service(f"s-{j}", f"ns-{j % 4}", ports=[("http", 80, 8000)]))
    return config_set(*resources)


def test_equal_outbound_values_are_one_object() -> None:
    config = _mesh(40)
    model, _ = build(config, addresses(config))
    # HTTP only: one outbound tuple per caller namespace, shared by every caller in it.
    assert len({id(p.outbound) for p in model.proxies}) == 4
    by_value: dict[ir.OutboundService, int] = {}
    for proxy in model.proxies:
        for svc in proxy.outbound:
            assert by_value.setdefault(svc, id(svc)) == id(svc)
    # Each service port is seen from its own namespace (short names) or from another.
    assert len(by_value) == 2 * 20
    assert len({id(s.endpoints) for s in by_value}) == 20


@pytest.mark.parametrize("size", [20, 80])
def test_peer_authentication_decided_once_per_pod_port(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _mesh(size)
    calls: list[tuple[str, int]] = []
    decide = peer_authn.decide

    def counting(
        idx: peer_authn.PeerAuthnIndex, namespace: str, labels: cfg.Labels, port: int
    ) -> peer_authn.Decision:
        calls.append((namespace, port))
        return decide(idx, namespace, labels, port)

    monkeypatch.setattr(peer_authn, "decide", counting)
    model, _ = build(config, addresses(config))
    assert len(model.proxies) == size
    # Once for each inbound port, once for each endpoint pod port: O(pods), not
    # O(callers x services).
    assert len(calls) == size + size
