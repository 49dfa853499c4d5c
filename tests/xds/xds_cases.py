"""Hand-built ProxyModel values for the xds/ tests (golden cases and the traffic test).

The model layer normally builds these; here they are written out so that xds/ is tested
against exactly the IR it is given.
"""

from __future__ import annotations

import dataclasses

from meshward.config import load_text
from meshward.identity import SpiffeId
from meshward.model import ir, service_entries

TRUST_DOMAIN = "cluster.local"


def pod(
    workload: str,
    pod_ip: str,
    app_ip: str,
    *,
    namespace: str = "default",
    sidecar: bool = True,
    ports: tuple[ir.PodPort, ...] = (),
) -> ir.Pod:
    return ir.Pod(
        key=ir.PodKey(namespace, workload, 0),
        labels=(("app", workload),),
        service_account=workload,
        identity=SpiffeId(TRUST_DOMAIN, namespace, workload) if sidecar else None,
        address=ir.PodAddress(pod_ip=pod_ip, app_ip=app_ip),
        ports=ports,
    )


def endpoint(target: ir.Pod, port: int, *, mtls: bool) -> ir.UpstreamEndpoint:
    return ir.UpstreamEndpoint(address=target.address.pod_ip, port=port, pod=target.key, mtls=mtls)


def service(
    name: str,
    port: int,
    protocol: ir.Protocol,
    endpoints: tuple[ir.UpstreamEndpoint, ...],
    *,
    namespace: str = "default",
    tls: ir.UpstreamTls = "AUTO",
    sans: tuple[str, ...] = (),
    domains: tuple[str, ...] | None = None,
    tcp_bind: tuple[str, int] | None = None,
    vip: str = "",
    origination: ir.Origination | None = None,
) -> ir.OutboundService:
    fqdn = f"{name}.{namespace}.{ir.DNS_SUFFIX}"
    if domains is None:
        domains = (
            (name, f"{name}:{port}", f"{name}.{namespace}", f"{fqdn}", f"{fqdn}:{port}")
            if protocol != "TCP"
            else ()
        )
    return ir.OutboundService(
        namespace=namespace,
        name=name,
        port=port,
        protocol=protocol,
        endpoints=endpoints,
        tls=tls,
        tls_source="default (auto mTLS)" if tls == "AUTO" else f"DestinationRule {namespace}/dr",
        subject_alt_names=sans,
        http_domains=domains,
        tcp_bind=tcp_bind,
        vip=vip,
        origination=origination,
    )


def proxy(
    client: ir.Pod,
    inbound: tuple[ir.InboundPort, ...] = (),
    outbound: tuple[ir.OutboundService, ...] = (),
    *,
    outbound_http_port: int = ir.OUTBOUND_HTTP_PORT,
    capture: bool = False,
    outbound_policy: ir.OutboundPolicy = "ALLOW_ANY",
) -> ir.ProxyModel:
    return ir.ProxyModel(
        node_id=ir.node_id(client.key, client.address.pod_ip),
        pod=client,
        trust_domain=TRUST_DOMAIN,
        inbound=inbound,
        outbound=outbound,
        outbound_http_port=outbound_http_port,
        capture=capture,
        outbound_policy=outbound_policy,
    )


def inbound(port: int, protocol: ir.Protocol, mtls: ir.EffectiveMtls) -> ir.InboundPort:
    return ir.InboundPort(port=port, protocol=protocol, mtls=mtls, mtls_source="test")


_CLIENT = pod("client", "127.0.10.1", "127.0.10.2")
_WEB = pod("web", "127.0.11.1", "127.0.11.2")
_WEB2 = pod("web", "127.0.11.3", "127.0.11.4")
_LEGACY = pod("legacy", "127.0.12.1", "127.0.12.1", sidecar=False)
_DB = pod("db", "127.0.13.1", "127.0.13.2", namespace="data")
_DB2 = pod("cache", "127.0.14.1", "127.0.14.2", namespace="data")
_NS_WEB = pod("web", "198.18.9.2", "198.18.9.2")
_NS_DB = pod("db", "198.18.9.3", "198.18.9.3", namespace="data")
_WEB_SAN = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/web"
_DB_SAN = f"spiffe://{TRUST_DOMAIN}/ns/data/sa/db"

CASES: dict[str, ir.ProxyModel] = {
    # STRICT HTTP and gRPC inbound; mTLS HTTP and gRPC outbound.
    "strict_http": proxy(
        _WEB,
        inbound=(inbound(8080, "HTTP", "STRICT"), inbound(9090, "GRPC", "STRICT")),
        outbound=(
            service("web", 8080, "HTTP", (endpoint(_WEB, 8080, mtls=True),), sans=(_WEB_SAN,)),
            service("rpc", 9090, "GRPC", (endpoint(_WEB, 9090, mtls=True),), sans=(_WEB_SAN,)),
        ),
    ),
    # PERMISSIVE TCP inbound; its own service reached through a fallback local port.
    "permissive_tcp": proxy(
        _DB,
        inbound=(inbound(5432, "TCP", "PERMISSIVE"),),
        outbound=(
            service(
                "db",
                5432,
                "TCP",
                (endpoint(_DB, 5432, mtls=True),),
                namespace="data",
                sans=(_DB_SAN,),
                tcp_bind=("127.0.13.1", 20000),
            ),
        ),
    ),
    # Plaintext inbound, HTTP and TCP.
    "disable": proxy(
        _WEB,
        inbound=(inbound(8080, "HTTP", "DISABLE"), inbound(7000, "TCP", "DISABLE")),
    ),
    # One service with two sidecar pods (mTLS) and one legacy pod (plaintext).
    "mixed_endpoints": proxy(
        _CLIENT,
        outbound=(
            service(
                "web",
                8080,
                "HTTP",
                (
                    endpoint(_WEB, 8080, mtls=True),
                    endpoint(_WEB2, 8080, mtls=True),
                    endpoint(_LEGACY, 8080, mtls=False),
                ),
                sans=(_WEB_SAN,),
            ),
        ),
    ),
    # A DestinationRule with tls DISABLE: every endpoint plaintext although all have sidecars.
    "dr_disable": proxy(
        _CLIENT,
        outbound=(
            service(
                "web",
                8080,
                "HTTP",
                (endpoint(_WEB, 8080, mtls=False), endpoint(_WEB2, 8080, mtls=False)),
                tls="DISABLE",
                sans=(_WEB_SAN,),
            ),
        ),
    ),
    # A service that selects no pods: a valid cluster with no endpoints (503).
    "empty_service": proxy(
        _CLIENT,
        outbound=(
            service("nobody", 8080, "HTTP", ()),
            service("nothing", 6379, "TCP", (), tcp_bind=("127.0.10.1", 6379)),
        ),
    ),
    # Two TCP services on one port: the model moved the second to a fallback port (20000+).
    "tcp_port_reallocation": proxy(
        _CLIENT,
        outbound=(
            service(
                "db",
                5432,
                "TCP",
                (endpoint(_DB, 5432, mtls=True),),
                namespace="data",
                sans=(_DB_SAN,),
                tcp_bind=("127.0.10.1", 5432),
            ),
            service(
                "cache",
                5432,
                "TCP",
                (endpoint(_DB2, 5432, mtls=True),),
                namespace="data",
                sans=(f"spiffe://{TRUST_DOMAIN}/ns/data/sa/cache",),
                tcp_bind=("127.0.10.1", 20000),
            ),
        ),
    ),
    # netns mode: captured traffic on the virtual listeners. STRICT HTTP and PERMISSIVE TCP
    # inbound chains matched by destination port; per-VIP outbound chains; unknown
    # destinations pass through (ALLOW_ANY) or go to the black hole (REGISTRY_ONLY).
    **{
        f"captured_{policy.lower()}": proxy(
            _NS_WEB,
            inbound=(inbound(8080, "HTTP", "STRICT"), inbound(6379, "TCP", "PERMISSIVE")),
            outbound=(
                service(
                    "web",
                    80,
                    "HTTP",
                    (endpoint(_NS_WEB, 8080, mtls=True),),
                    sans=(_WEB_SAN,),
                    vip="198.18.255.2",
                ),
                service(
                    "db",
                    5432,
                    "TCP",
                    (endpoint(_NS_DB, 5432, mtls=True),),
                    namespace="data",
                    sans=(_DB_SAN,),
                    vip="198.18.255.1",
                ),
            ),
            capture=True,
            outbound_policy=policy,
        )
        for policy in ("ALLOW_ANY", "REGISTRY_ONLY")
    },
    # netns mode, a client-only pod (no inbound port): virtualInbound still has a chain (the
    # black hole) — Envoy rejects a listener with none.
    "captured_client_only": proxy(
        _NS_WEB,
        inbound=(),
        outbound=(
            service(
                "db",
                5432,
                "TCP",
                (endpoint(_NS_DB, 5432, mtls=True),),
                namespace="data",
                sans=(_DB_SAN,),
                vip="198.18.255.1",
            ),
        ),
        capture=True,
        outbound_policy="REGISTRY_ONLY",
    ),
    # DestinationRule SIMPLE to a legacy HTTPS pod: CA file, SANs by type, the rule's SNI.
    "originate_simple": proxy(
        _CLIENT,
        outbound=(
            service(
                "legacy",
                8443,
                "HTTP",
                (endpoint(_LEGACY, 8443, mtls=False),),
                tls="SIMPLE",
                origination=ir.Origination(
                    mode="SIMPLE",
                    sni="api.partner.example",
                    subject_alt_names=("api.partner.example", "127.0.12.1", "spiffe://p/api"),
                    ca_file="/etc/ssl/certs/ca-certificates.crt",
                ),
            ),
        ),
    ),
    # DestinationRule MUTUAL by credentialName (SDS) over TCP, and SIMPLE insecureSkipVerify.
    "originate_mutual_credential": proxy(
        _CLIENT,
        outbound=(
            service(
                "legacy",
                9443,
                "TCP",
                (endpoint(_LEGACY, 9443, mtls=False),),
                tls="MUTUAL",
                tcp_bind=("127.0.10.1", 9443),
                origination=ir.Origination(
                    mode="MUTUAL",
                    sni="legacy.default.svc.cluster.local",
                    validation=ir.credential_sds_name("partner-cacert"),
                    certificate=ir.credential_sds_name("partner"),
                    credential="partner",
                ),
            ),
            service(
                "legacy",
                8443,
                "HTTP",
                (endpoint(_LEGACY, 8443, mtls=False),),
                tls="SIMPLE",
                origination=ir.Origination(
                    mode="SIMPLE", sni="legacy.default.svc.cluster.local", insecure=True
                ),
            ),
        ),
    ),
}

# ServiceEntries (model/service_entries.py) as a sidecar sees them, from real YAML: STATIC HTTP
# by Host, DNS TCP on a CIDR, DNS TLS, NONE TLS on a wildcard host (no VIP: SNI chains on
# two ports, ORIGINAL_DST) — captured under REGISTRY_ONLY, and
# through loopback mode's HTTP proxy and local TCP ports (REGISTRY_ONLY too).
SERVICE_ENTRIES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: weather, namespace: default}
spec:
  hosts: [api.weather.example]
  addresses: [240.240.0.7]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 198.19.9.20, ports: {http: 8080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ledger, namespace: default}
spec:
  hosts: [ledger.example]
  addresses: [10.99.0.0/16]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 198.19.9.21}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bank, namespace: default}
spec:
  hosts: [bank.example, api.bank.example]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wildcard, namespace: default}
spec:
  hosts: ["*.tls.example"]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8443, name: https, protocol: HTTPS}]
  resolution: NONE
"""


def _external(network: ir.Network) -> tuple[ir.OutboundService, ...]:
    config = load_text(SERVICE_ENTRIES, "se.yaml")
    assert config.diagnostics == ()
    return service_entries.Registry(config.service_entries, network).outbound("default")


_NETNS = ir.Network(
    "netns",
    (
        (("default", "api.bank.example"), "198.18.255.9"),
        (("default", "bank.example"), "198.18.255.8"),
    ),
)
CASES["external_captured"] = proxy(
    _NS_WEB,
    inbound=(inbound(8080, "HTTP", "STRICT"),),
    outbound=_external(_NETNS),
    capture=True,
    outbound_policy="REGISTRY_ONLY",
)
# Under REGISTRY_ONLY the HTTP proxy's routes end with Istio's `block_all` (502).
CASES["external_loopback"] = proxy(
    _CLIENT,
    outbound=tuple(
        s if ir.is_http(s.protocol) else dataclasses.replace(s, tcp_bind=("127.0.10.1", 20000 + i))
        for i, s in enumerate(_external(ir.LOOPBACK))
    ),
    outbound_policy="REGISTRY_ONLY",
)
