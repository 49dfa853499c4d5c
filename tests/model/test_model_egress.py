"""ServiceEntry and Sidecar in the model, from YAML: which outbound services each proxy sees
(exportTo, Sidecar egress hosts and the Sidecar precedence), its outbound policy, the external
upstreams, and the names netns pods resolve."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from meshward.config import load_text
from meshward.diagnostics import Diagnostic
from meshward.model import allocate, build, ir, replicas, service_entries
from meshward.xds import cluster, listener

_MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: egress.test}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: front}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {selector: {app: db}, ports: [{name: tcp, port: 5432}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: weather, namespace: front}
spec:
  hosts: [api.weather.example]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 9000}]
  resolution: STATIC
  endpoints: [{address: 198.19.1.3}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: front}
spec:
  hosts: [private.example]
  addresses: [240.0.0.9]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
  exportTo: ["."]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: front}
spec:
  egress: [{hosts: ["./*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: locked, namespace: front}
spec:
  workloadSelector: {labels: {app: locked}}
  egress: [{hosts: ["*/api.weather.example"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
_WORKLOADS = [("front", "web"), ("front", "locked"), ("data", "db"), ("other", "cli")]


def _build(
    extra: str = "", network: ir.Network = ir.LOOPBACK
) -> tuple[ir.MeshModel, tuple[Diagnostic, ...]]:
    docs = [_MESH, extra] if extra else [_MESH]
    for namespace, name in _WORKLOADS:
        docs.append(
            "apiVersion: meshward.io/v1alpha1\nkind: Workload\n"
            f"metadata: {{name: {name}, namespace: {namespace}, labels: {{app: {name}}}}}\n"
            "spec: {command: [x], ports: [{name: http, port: 8000}, {name: tcp, port: 5432}]}\n"
        )
    config = load_text("---\n".join(docs), "egress.yaml")
    assert config.diagnostics == ()
    return build(config, allocate(replicas(config.workloads), {}), network)


def _model(extra: str = "", network: ir.Network = ir.LOOPBACK) -> ir.MeshModel:
    return _build(extra, network)[0]


def _seen(model: ir.MeshModel) -> dict[str, tuple[tuple[str, ...], str]]:
    return {
        str(p.pod.key): (tuple(s.cluster_name for s in p.outbound), p.outbound_policy)
        for p in model.proxies
    }


def test_sidecar_scope_and_export_to() -> None:
    web, weather = "outbound|80||web.front.svc.cluster.local", "outbound|80||api.weather.example"
    db, private = "outbound|5432||db.data.svc.cluster.local", "outbound|443||private.example"
    assert _seen(_model()) == {
        # The namespace default `./*`: its own namespace's services and entries only.
        "front/web-0": ((web, weather, private), "ALLOW_ANY"),
        # The selector Sidecar wins over the default: one host, and its own policy.
        "front/locked-0": ((weather,), "REGISTRY_ONLY"),
        # No Sidecar: everything exported to the namespace (`private` is exportTo ".").
        "data/db-0": ((db, web, weather), "ALLOW_ANY"),
        "other/cli-0": ((db, web, weather), "ALLOW_ANY"),
    }


def test_root_namespace_sidecar_is_the_mesh_default() -> None:
    root = (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata: {name: default, namespace: meshward-system}\n"
        'spec: {egress: [{hosts: ["data/*"]}], outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n'
    )
    seen = _seen(_model(root))
    db = "outbound|5432||db.data.svc.cluster.local"
    assert (seen["data/db-0"], seen["other/cli-0"]) == (((db,), "REGISTRY_ONLY"),) * 2
    assert seen["front/web-0"][1] == "ALLOW_ANY"  # the namespace's own default wins


def test_external_upstreams_and_netns_names() -> None:
    network = ir.Network(
        "netns",
        (
            (("data", "db"), "198.18.255.1"),
            (("front", "api.weather.example"), "198.18.255.3"),
            (("front", "web"), "198.18.255.2"),
        ),
    )
    model = _model(network=network)
    web = next(p for p in model.proxies if p.pod.key.workload == "web")
    external = {s.name: (s.vip, s.http_domains, s.tls, s.external) for s in web.outbound[1:]}
    assert external == {
        "api.weather.example": (
            "198.18.255.3",
            ("api.weather.example", "api.weather.example:80"),
            "DISABLE",
            ir.ExternalUpstream(
                "ServiceEntry front/weather", "STATIC", "MESH_EXTERNAL", (("198.19.1.3", 9000),)
            ),
        ),
        "private.example": (
            "240.0.0.9",
            (),
            "DISABLE",
            ir.ExternalUpstream(
                "ServiceEntry front/private", "NONE", "MESH_EXTERNAL", (), tls_port=True
            ),
        ),
    }
    assert model.external_hosts == (
        ir.ExternalHost("front", "api.weather.example", "198.18.255.3"),
        ir.ExternalHost("front", "private.example", "240.0.0.9", ("front",)),
    )


def test_resolution_none_without_an_address_gets_no_vip() -> None:
    # Istio's autoAllocateIPs skips NONE: the upstream is the address the app dialled, so a
    # VIP would be dialled and lead nowhere. Its TLS port is matched by SNI instead.
    entry = (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: open, namespace: front}\n"
        "spec: {hosts: [open.example], ports: [{number: 443, name: tls, protocol: TLS}], "
        "resolution: NONE}\n"
    )
    config = load_text(entry, "open.yaml")
    assert service_entries.auto_allocated(config.service_entries) == []
    # Even with a VIP on record (a runner from before), the entry does not use it.
    network = ir.Network("netns", ((("front", "open.example"), "198.18.255.7"),))
    model = _model(entry, network)
    web = next(p for p in model.proxies if p.pod.key.workload == "web")
    found = next(s for s in web.outbound if s.name == "open.example")
    assert (found.vip, listener.sni_routed(found)) == ("", True)
    assert [h.host for h in model.external_hosts] == ["private.example"]


def test_none_resolution_has_no_endpoints_in_loopback_mode() -> None:
    web = next(p for p in _model().proxies if p.pod.key.workload == "web")
    private = next(s for s in web.outbound if s.name == "private.example")
    assert private.external is not None
    assert (private.external.resolution, private.external.endpoints) == ("STATIC", ())


def test_sidecars_that_apply_to_nobody_are_reported() -> None:
    extra = (
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata: {name: second, namespace: front}\n"
        'spec: {egress: [{hosts: ["*/*"]}]}\n'
        "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        "metadata: {name: nobody, namespace: front}\n"
        "spec: {workloadSelector: {labels: {app: gone}}}\n"
    )
    _, findings = _build(extra)
    assert [
        (d.code, d.resource, d.location.field) for d in findings if d.code in ("MW0241", "MW0242")
    ] == [
        ("MW0242", "Sidecar front/second", "spec"),
        ("MW0241", "Sidecar front/nobody", "spec.workloadSelector"),
    ]


def test_destination_rule_originates_tls_to_a_service_entry_host() -> None:
    """Istio's egress TLS origination at the sidecar: the app speaks HTTP to port 80, the
    entry sends it to 443, the rule makes it TLS with the host as SNI and the pinned CA."""
    rule = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: weather-tls, namespace: front}\n"
        "spec:\n  host: api.weather.example\n"
        "  trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /etc/weather-ca.pem}}\n"
    )
    web = next(p for p in _model(rule).proxies if p.pod.key.workload == "web")
    weather = next(s for s in web.outbound if s.name == "api.weather.example")
    assert (weather.tls, weather.tls_source, weather.origination) == (
        "SIMPLE",
        "DestinationRule front/weather-tls",
        ir.Origination(mode="SIMPLE", sni="api.weather.example", ca_file="/etc/weather-ca.pem"),
    )
    made = cluster.outbound_cluster(weather)
    context = tls_pb2.UpstreamTlsContext()
    made.transport_socket.typed_config.Unpack(context)
    assert (
        made.type,
        context.sni,
        context.common_tls_context.validation_context.trusted_ca.filename,
    ) == (
        cluster_pb2.Cluster.STATIC,
        "api.weather.example",
        "/etc/weather-ca.pem",
    )
    # Without a rule the same port leaves as the app sent it.
    plain = next(
        s
        for s in next(p for p in _model().proxies if p.pod.key.workload == "web").outbound
        if s.name == "api.weather.example"
    )
    assert (plain.origination, cluster.outbound_cluster(plain).HasField("transport_socket")) == (
        None,
        False,
    )


_OUTSIDE_DNS = """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: maps, namespace: partners}
spec: {outside: true, replicas: 2, hostnames: [api.maps.example, Tiles.Maps.Example], command: [x]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: maps, namespace: front}
spec:
  hosts: [api.maps.example]
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: 9443}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tiles, namespace: front}
spec:
  hosts: [tiles.example]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints: [{address: tiles.maps.example}, {address: cdn.example}]
"""


def test_outside_hostnames_are_the_outside_worlds_dns() -> None:
    maps = (
        (ir.PodKey("partners", "maps", 0), "127.0.250.2"),
        (
            ir.PodKey("partners", "maps", 1),
            "127.0.250.3",
        ),
    )
    model = _model(_OUTSIDE_DNS, ir.Network(outside=maps))
    web = next(p for p in model.proxies if p.pod.key.workload == "web")
    upstreams = {s.name: s.external for s in web.outbound if s.external is not None}
    # Every name known (the host itself, no endpoints given): resolved here, STATIC.
    maps_up = upstreams["api.maps.example"]
    assert maps_up is not None
    assert (maps_up.resolution, maps_up.endpoints) == (
        "STATIC",
        (("127.0.250.2", 9443), ("127.0.250.3", 9443)),
    )
    # One name the outside world's DNS does not know: Envoy resolves them all, as written.
    tiles = upstreams["tiles.example"]
    assert tiles is not None
    assert (tiles.resolution, tiles.endpoints) == (
        "DNS",
        (("tiles.maps.example", 443), ("cdn.example", 443)),
    )


def test_hostnames_belong_to_outside_workloads() -> None:
    text = (
        "apiVersion: meshward.io/v1alpha1\nkind: Workload\nmetadata: {name: w}\n"
        "spec: {command: [x], hostnames: [api.example, '*.example', 10.0.0.1]}\n"
    )
    found = [
        (d.code, d.location.field if d.location else "")
        for d in load_text(text, "w.yaml").diagnostics
    ]
    assert found == [
        ("MW0189", "spec.hostnames"),
        ("MW0189", "spec.hostnames"),
        ("MW0189", "spec.hostnames"),
    ]
