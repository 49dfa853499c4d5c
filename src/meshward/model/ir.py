"""The model IR: the frozen contract between model/ (builds it) and xds/ (translates it).

It knows neither YAML nor Envoy. Everything a translator needs is already decided here:
the effective mTLS mode of every inbound port (PeerAuthentication precedence), whether each
upstream endpoint gets mTLS (auto-mTLS overridden by DestinationRule), which SPIFFE IDs a
client accepts from a service, and where every listener binds. Translators only map.

Naming follows Istio where Istio has a name: cluster `outbound|<port>||<fqdn>`,
`inbound|<port>||`, node id `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshward.config import networking
from meshward.config.resources import GatewayRole, Labels
from meshward.identity import SpiffeId
from meshward.model.authorization import NO_AUTHZ, PortAuthz
from meshward.model.request_authn import JwtRule

Protocol = Literal["HTTP", "HTTP2", "GRPC", "TCP"]
EffectiveMtls = Literal["STRICT", "PERMISSIVE", "DISABLE"]
UpstreamTls = Literal["AUTO", "ISTIO_MUTUAL", "DISABLE", "SIMPLE", "MUTUAL"]
NetworkModeName = Literal["loopback", "netns"]
OutboundPolicy = Literal["ALLOW_ANY", "REGISTRY_ONLY"]

DNS_SUFFIX = (
    "svc.cluster.local"  # Istio keeps cluster.local as DNS suffix whatever the trust domain
)
ADMIN_PORT = 15000  # Envoy admin, bound on the pod address
OUTBOUND_HTTP_PORT = 15001  # outbound HTTP listener: apps reach HTTP services by name through it
# netns mode (Istio's ports): captured outbound TCP arrives on 15001, inbound on 15006.
VIRTUAL_OUTBOUND_PORT = 15001
VIRTUAL_INBOUND_PORT = 15006
RESERVED_PORTS = frozenset(
    {ADMIN_PORT, OUTBOUND_HTTP_PORT, VIRTUAL_INBOUND_PORT, 15010, 15012, 15020, 15021, 15090}
)


def is_http(protocol: Protocol) -> bool:
    return protocol != "TCP"


@dataclass(frozen=True, slots=True, order=True)
class PodKey:
    """One replica of one workload: pod name is `<workload>-<replica>`."""

    namespace: str
    workload: str
    replica: int

    @property
    def pod_name(self) -> str:
        return f"{self.workload}-{self.replica}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod_name}"


@dataclass(frozen=True, slots=True)
class PodAddress:
    """Where a pod lives. In loopback mode each pod has its own 127/8 addresses.

    `pod_ip`: what peers connect to (the sidecar's inbound listeners, or the app itself for a
    legacy workload). `app_ip`: where the app process binds (equal to pod_ip without sidecar).
    """

    pod_ip: str
    app_ip: str


@dataclass(frozen=True, slots=True)
class PodPort:
    name: str
    port: int
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class Pod:
    key: PodKey
    labels: Labels
    service_account: str
    identity: SpiffeId | None  # None for a legacy workload (sidecar: false)
    address: PodAddress
    ports: tuple[PodPort, ...]
    gateway: GatewayRole = ""  # "ingress"/"egress": a gateway pod (its Envoy alone, no app)

    @property
    def has_sidecar(self) -> bool:
        return self.identity is not None


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target_port: int
    protocol: Protocol


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    pods: tuple[PodKey, ...]  # the pods its selector picks, sorted
    vip: str = ""  # its virtual IP in netns mode (captured, never routed); "" in loopback

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{DNS_SUFFIX}"


@dataclass(frozen=True, slots=True)
class InboundPort:
    """A sidecar inbound listener on `pod_ip:port`, forwarding to `app_ip:port`.

    `mtls_source` says which policy decided the mode, for status and explain output, e.g.
    `PeerAuthentication foo/strict (port 8000)` or `default (no PeerAuthentication)`.
    `authz`: the AuthorizationPolicies in force on this port (model/authorization.py).
    """

    port: int
    protocol: Protocol
    mtls: EffectiveMtls
    mtls_source: str
    authz: PortAuthz = NO_AUTHZ

    @property
    def cluster_name(self) -> str:
        return f"inbound|{self.port}||"


@dataclass(frozen=True, slots=True)
class UpstreamEndpoint:
    """One destination pod port, with the TLS decision already made for it."""

    address: str
    port: int
    pod: PodKey
    mtls: bool  # originate Istio mTLS to this endpoint (else plaintext)


ExternalResolution = Literal["NONE", "STATIC", "DNS"]


@dataclass(frozen=True, slots=True)
class ExternalUpstream:
    """The upstream side of a ServiceEntry port (istio.io "Service Entry"): how its endpoints
    are found (`resolution`: STATIC addresses, DNS names resolved by Envoy, or NONE: the
    address the app dialled) and where they are. No mTLS is originated to MESH_EXTERNAL: the
    app's own bytes (plaintext or its own TLS) leave the sidecar unchanged."""

    source: str  # `ServiceEntry ns/name`
    resolution: ExternalResolution
    location: Literal["MESH_EXTERNAL", "MESH_INTERNAL"]
    endpoints: tuple[tuple[str, int], ...]  # (address or DNS name, port)
    tls_port: bool = False  # a TLS/HTTPS port: routed by SNI when it has no address


@dataclass(frozen=True, slots=True)
class ExternalHost:
    """One ServiceEntry host as pods resolve it: netns mode writes `host` at `vip` into the
    hosts files of the namespaces it is exported to (`export_to` () = every namespace)."""

    namespace: str
    host: str
    vip: str
    export_to: tuple[str, ...] = ()

    def visible_from(self, namespace: str) -> bool:
        return not self.export_to or namespace in self.export_to


@dataclass(frozen=True, slots=True)
class Origination:
    """TLS the sidecar originates to a service port (DestinationRule SIMPLE/MUTUAL), decided.

    `sni`: the DestinationRule's sni, else its host (resolved). Trust: `ca_file` (+`crl_file`),
    files Envoy reads, or `validation` (an SDS name: the credential's CA bundle); neither only
    when `insecure` (the config layer refused that otherwise). Client key pair (MUTUAL):
    `cert_file`/`key_file`, or `certificate` (an SDS name: the credential's key and chain).
    `credential` names the secret-store credential the SDS names come from ("" for files).
    """

    mode: UpstreamTls
    sni: str
    subject_alt_names: tuple[str, ...] = ()
    ca_file: str = ""
    crl_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    validation: str = ""
    certificate: str = ""
    credential: str = ""
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """One VirtualService http route on a gateway virtual host or a sidecar's outbound
    service virtual host: the route as written and its destinations resolved to
    (cluster, weight)."""

    source: str  # `VirtualService ns/name http[i]`, for access logs and diagnostics
    route: networking.HttpRoute
    matches: tuple[networking.HttpMatch, ...]  # only those that apply to this gateway/port
    clusters: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class OutboundService:
    """One mesh service port as seen from one sidecar.

    `subject_alt_names`: SPIFFE URIs the client accepts from this service's endpoints (the
    identities of the pods behind it). `tls` + `tls_source` explain the endpoint decisions.
    `http_domains`: Host header values routed here (HTTP only). `tcp_bind`: the local
    listener (address, port) apps use to reach this port (TCP only; None for HTTP).
    """

    namespace: str
    name: str
    port: int
    protocol: Protocol
    endpoints: tuple[UpstreamEndpoint, ...]
    tls: UpstreamTls
    tls_source: str
    subject_alt_names: tuple[str, ...]
    http_domains: tuple[str, ...]
    tcp_bind: tuple[str, int] | None
    vip: str = ""  # netns mode: apps reach it at vip:port, captured by the sidecar
    origination: Origination | None = None  # DestinationRule SIMPLE/MUTUAL (else None)
    # A `mesh`-bound VirtualService routes this port (model/mesh_routes.py): its routes
    # replace the single route to the cluster; () routes nothing (404). None: no VirtualService.
    vs_routes: tuple[GatewayRoute, ...] | None = None
    # The destination's RequestAuthentication rules (merged), when a route matches on
    # claims: the caller's sidecar verifies tokens with them before routing (non-rejecting).
    route_jwt_rules: tuple[JwtRule, ...] = ()
    # A ServiceEntry port: `name` is then the entry's host, and the upstream is this.
    external: ExternalUpstream | None = None
    # A TCP port a `mesh` VirtualService routes by `tls`/`tcp` routes: its (cluster, weight)
    # destinations replace the port's own cluster (model/mesh_routes.py). None: no route.
    tcp_routes: tuple[tuple[str, int], ...] | None = None
    # DestinationRule ISTIO_MUTUAL with `sni`: the SNI of the mesh mTLS (e.g. the host an
    # egress gateway's ISTIO_MUTUAL server matches); "" → Istio's outbound_.<port>_._.<fqdn>.
    mtls_sni: str = ""

    @property
    def fqdn(self) -> str:
        if self.external is not None:
            return self.name  # Istio names a ServiceEntry's clusters by the host itself
        return f"{self.name}.{self.namespace}.{DNS_SUFFIX}"

    @property
    def cluster_name(self) -> str:
        return f"outbound|{self.port}||{self.fqdn}"

    @property
    def mesh_sni(self) -> str:
        """The SNI of the sidecar's mesh mTLS to this port: the DestinationRule's `sni`, else
        Istio's `outbound_.<port>_._.<fqdn>`."""
        return self.mtls_sni or f"outbound_.{self.port}_._.{self.fqdn}"

    @property
    def stream_destinations(self) -> tuple[tuple[str, int], ...]:
        """Where a TCP connection to this port goes: (cluster, weight), VirtualService first."""
        return self.tcp_routes or ((self.cluster_name, 100),)


CREDENTIAL_SDS_PREFIX = "credential/"  # SDS names of secret-store credentials (gateways)


def credential_sds_name(credential: str) -> str:
    """The SDS name under which the agent serves secret-store credential `credential`
    (a gateway's `credentialName`; `<name>-cacert` holds its CA bundle, Istio's convention)."""
    return f"{CREDENTIAL_SDS_PREFIX}{credential}"


GatewayChainKind = Literal["HTTP", "TERMINATE", "TERMINATE_TCP", "PASSTHROUGH", "TCP"]


@dataclass(frozen=True, slots=True)
class ServerTls:
    """How a gateway filter chain terminates TLS (Gateway `servers[].tls`, decided).

    `certificate` and `validation` are SDS secret names ("" when none): the credential's
    key+chain and CA bundle (+CRL), or `default`/`ROOTCA` for ISTIO_MUTUAL. `files` is
    (certificate, key, CA, CRL) paths when the server names files instead of a credential.
    """

    mode: networking.GatewayTlsMode
    certificate: str
    validation: str
    files: tuple[str, str, str, str]
    subject_alt_names: tuple[str, ...]
    min_version: networking.TlsVersion
    max_version: networking.TlsVersion
    cipher_suites: tuple[str, ...]
    credential: str = ""


@dataclass(frozen=True, slots=True)
class GatewayVirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[GatewayRoute, ...]
    require_tls: bool = False  # httpsRedirect: 301 to https for every request


@dataclass(frozen=True, slots=True)
class GatewayChain:
    """One filter chain of a gateway listener.

    HTTP: plaintext HCM over `virtual_hosts`. TERMINATE: TLS per `tls`, then the HCM.
    TERMINATE_TCP (a `TLS` server that is not PASSTHROUGH): TLS per `tls`, then tcp_proxy to
    `clusters` (the bytes inside — e.g. an app's own TLS wrapped in a sidecar's mTLS).
    PASSTHROUGH: SNI `server_names` → tcp_proxy to `clusters`, TLS untouched. TCP: plaintext
    tcp_proxy. `server_names` () matches any SNI (or none).
    """

    name: str
    kind: GatewayChainKind
    server_names: tuple[str, ...] = ()
    tls: ServerTls | None = None
    virtual_hosts: tuple[GatewayVirtualHost, ...] = ()
    clusters: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayListener:
    """All servers of the selected Gateways on one port, merged (pilot gateway.go: one
    listener per port, one filter chain per TLS server, plaintext HTTP servers share one).
    `port` is where the pod listens: the Gateway server port, or the targetPort of the
    Service port it names (`server_port`), as in Istio (model/gateway.py `bound_port`)."""

    port: int
    chains: tuple[GatewayChain, ...]
    authz: PortAuthz = NO_AUTHZ
    server_port: int = 0


@dataclass(frozen=True, slots=True)
class GatewayModel:
    """What makes a gateway pod's Envoy a gateway (ingress or egress), beyond its sidecar parts."""

    listeners: tuple[GatewayListener, ...]
    num_trusted_proxies: int = 0


@dataclass(frozen=True, slots=True)
class ProxyModel:
    """Everything one sidecar's (or gateway pod's) configuration is made from.

    A gateway pod has no inbound ports; its `gateway` holds the Gateway listeners, and it
    keeps the outbound side (clusters with Istio mTLS under its own identity).
    """

    node_id: str
    pod: Pod
    trust_domain: str
    inbound: tuple[InboundPort, ...]
    outbound: tuple[OutboundService, ...]
    admin_port: int = ADMIN_PORT
    outbound_http_port: int = OUTBOUND_HTTP_PORT
    gateway: GatewayModel | None = None
    # RequestAuthentication rules in force on the pod's HTTP inbound ports (merged).
    jwt_rules: tuple[JwtRule, ...] = ()
    # netns mode: the pod's traffic is captured (virtual listeners instead of per-port binds),
    # and unknown destinations pass through (ALLOW_ANY) or are refused (REGISTRY_ONLY).
    capture: bool = False
    outbound_policy: OutboundPolicy = "ALLOW_ANY"

    def outbound_to(self, service: OutboundService) -> OutboundService | None:
        """This proxy's view of the same service port (another proxy's view has other
        local listeners and host forms)."""
        key = (service.namespace, service.name, service.port)
        return next((o for o in self.outbound if (o.namespace, o.name, o.port) == key), None)


@dataclass(frozen=True, slots=True)
class Network:
    """How the runner placed the pods: the network mode and, in netns mode, each service's
    virtual IP (`vips`: ((namespace, name), vip) pairs, sorted)."""

    mode: NetworkModeName = "loopback"
    vips: tuple[tuple[tuple[str, str], str], ...] = ()
    netns_prefix: str = ""  # pods' namespaces are `<prefix>.<namespace>.<pod>` (netns mode)
    # Where the runner placed each `outside: true` replica (either mode): what their
    # `hostnames` resolve to for ServiceEntries with resolution DNS. Sorted.
    outside: tuple[tuple[PodKey, str], ...] = ()

    def vip(self, namespace: str, name: str) -> str:
        return dict(self.vips).get((namespace, name), "")

    def netns(self, pod: PodKey) -> str:
        """The network namespace a pod runs in; "" in loopback mode."""
        if self.mode != "netns" or not self.netns_prefix:
            return ""
        return f"{self.netns_prefix}.{pod.namespace}.{pod.pod_name}"


LOOPBACK = Network()


@dataclass(frozen=True, slots=True)
class MeshModel:
    """The whole mesh: input to every translator, the verifier and `status`."""

    trust_domain: str
    root_namespace: str
    cert_ttl_seconds: int
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    proxies: tuple[ProxyModel, ...]
    network: Network = LOOPBACK
    outbound_policy: OutboundPolicy = "ALLOW_ANY"
    external_hosts: tuple[ExternalHost, ...] = ()

    def proxy(self, node_id: str) -> ProxyModel | None:
        return next((p for p in self.proxies if p.node_id == node_id), None)

    def pod(self, key: PodKey) -> Pod | None:
        return next((p for p in self.pods if p.key == key), None)


def node_id(pod: PodKey, pod_ip: str) -> str:
    """Istio's sidecar node id: `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`."""
    return f"sidecar~{pod_ip}~{pod.pod_name}.{pod.namespace}~{pod.namespace}.{DNS_SUFFIX}"
