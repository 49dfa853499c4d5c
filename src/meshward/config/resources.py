"""Typed config resources: what config/ hands to model/ (the config → model contract).

Parse at the edge: every value here is already validated and narrowed. Resources carry their
`Meta` (kind, namespace, name, file:line) so later stages can attach diagnostics to them.
Field names follow the Istio / Kubernetes API they come from, in snake_case.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# The networking kinds (Gateway, VirtualService) are defined in networking.py.
from meshward.config.networking import Gateway, VirtualService
from meshward.diagnostics import Diagnostic

Labels = tuple[tuple[str, str], ...]
"""Label set or selector as sorted (key, value) pairs; hashable and order-independent."""

MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
OutboundPolicy = Literal["ALLOW_ANY", "REGISTRY_ONLY"]
ClientTlsMode = Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
GatewayRole = Literal["", "ingress", "egress"]


def labels(mapping: Mapping[str, str]) -> Labels:
    """Normalise a mapping into the sorted-pairs form."""
    return tuple(sorted(mapping.items()))


def selector_matches(selector: Labels, target: Labels) -> bool:
    """Kubernetes equality-based selection: every selector pair is present in `target`.

    An empty selector matches everything (callers decide whether that is allowed).
    """
    have = dict(target)
    return all(have.get(key) == value for key, value in selector)


@dataclass(frozen=True, slots=True)
class Meta:
    """Identity and provenance of one resource.

    `order` is the Istio "oldest wins" key: metadata.creationTimestamp when given (RFC 3339
    text sorts chronologically), then position in the input (file order, document order).
    """

    api_version: str
    kind: str
    name: str
    namespace: str
    file: str
    line: int
    order: tuple[str, int]

    @property
    def ref(self) -> str:
        """`Kind namespace/name`, the form diagnostics use."""
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    target_port: int
    app_protocol: str  # "" when not given; protocol is then inferred from the port name


@dataclass(frozen=True, slots=True)
class Service:
    """`v1` Service: a name for the workloads its selector picks."""

    meta: Meta
    selector: Labels
    ports: tuple[ServicePort, ...]


@dataclass(frozen=True, slots=True)
class WorkloadPort:
    name: str
    port: int  # the port the app process listens on (Kubernetes containerPort)


@dataclass(frozen=True, slots=True)
class Workload:
    """`meshward.io/v1alpha1` Workload: an app process (per replica) and its sidecar.

    `sidecar=False` is a legacy workload outside the mesh: no identity, no proxy.
    `gateway="ingress"` (or `"egress"`) makes it a gateway pod: a standalone Envoy with the
    workload's identity, programmed by the Gateways that select its labels, and no app
    process (`command` is ()).
    `outside=True` is not a pod of the mesh at all: a host on the outside network (netns
    mode; docs/netns.md) such as an external API or a legacy client, with no sidecar, no
    service VIPs and no place in the model — for examples of ingress and egress.
    `command`, `args` and env values may use Kubernetes `$(VAR)` expansion.
    """

    meta: Meta
    labels: Labels
    service_account: str
    ports: tuple[WorkloadPort, ...]
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    replicas: int
    sidecar: bool
    gateway: GatewayRole = ""
    outside: bool = False
    # An outside host's DNS names (the outside world's DNS, meshward's stand-in): a
    # ServiceEntry with resolution DNS resolves them to the host's address.
    hostnames: tuple[str, ...] = ()


ExtAuthzKind = Literal["grpc", "http"]


@dataclass(frozen=True, slots=True)
class ExtAuthzProvider:
    """One MeshConfig `extensionProviders` entry of kind envoyExtAuthzGrpc (`kind="grpc"`) or
    envoyExtAuthzHttp (`kind="http"`), Istio's fields in snake_case.

    `service` is the host as written (`name.ns.svc.cluster.local` or `name.ns`); model/
    resolves it to a mesh service port. Header lists keep Istio's written patterns (`x`,
    `x*`, `*x`); `status_on_error` is the status a client gets when the provider cannot be
    reached and `fail_open` is off. `max_request_bytes` is 0 when the body is not sent.
    `line`/`path`: where the entry was written, for model findings.
    """

    name: str
    kind: ExtAuthzKind
    service: str
    port: int
    timeout_ms: int = 600_000  # Istio's default: 10m
    fail_open: bool = False
    status_on_error: int = 403
    path_prefix: str = ""
    include_request_headers: tuple[str, ...] = ()
    include_additional_headers: tuple[tuple[str, str], ...] = ()
    headers_to_upstream_on_allow: tuple[str, ...] = ()
    headers_to_downstream_on_deny: tuple[str, ...] = ()
    headers_to_downstream_on_allow: tuple[str, ...] = ()
    max_request_bytes: int = 0
    allow_partial_message: bool = False
    pack_as_bytes: bool = False
    clear_route_cache: bool = False  # grpc only
    line: int = 0
    path: str = ""


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """`meshward.io/v1alpha1` MeshConfig: mesh-wide settings (at most one per config set)."""

    meta: Meta | None  # None when the config set has none and defaults apply
    trust_domain: str = "cluster.local"
    root_namespace: str = "meshward-system"
    cert_ttl_seconds: int = 24 * 3600
    # Link-local and cloud metadata addresses (169.254.169.254, fd00:ec2::254,
    # 100.100.100.200), "this network" and multicast; loopback stays allowed so a local IdP
    # works. Checked against every address a jwksUri host resolves to.
    jwks_blocked_cidrs: tuple[str, ...] = (
        "0.0.0.0/8",
        "169.254.0.0/16",
        "100.100.100.200/32",
        "224.0.0.0/4",
        "::/128",
        "fe80::/10",
        "fd00:ec2::254/128",
        "ff00::/8",
    )
    jwks_refresh_seconds: int = 20 * 60
    extension_providers: tuple[ExtAuthzProvider, ...] = ()
    # defaultConfig.gatewayTopology.numTrustedProxies: proxies in front of the gateways
    # whose X-Forwarded-For entries are trusted (Istio's default 0: the peer is the client).
    num_trusted_proxies: int = 0
    # Istio MeshConfig.outboundTrafficPolicy.mode; enforced where traffic is captured (netns).
    outbound_traffic_policy: OutboundPolicy = "ALLOW_ANY"

    def provider(self, name: str) -> ExtAuthzProvider | None:
        return next((p for p in self.extension_providers if p.name == name), None)


@dataclass(frozen=True, slots=True)
class PeerAuthentication:
    """`security.istio.io/v1` PeerAuthentication.

    `mode` is None when spec.mtls is absent (same as UNSET: inherit). `port_level` maps a
    workload (target) port to its mode; only allowed with a selector.
    """

    meta: Meta
    selector: Labels | None
    mode: MtlsMode | None
    port_level: tuple[tuple[int, MtlsMode], ...]


@dataclass(frozen=True, slots=True)
class ClientTls:
    """`trafficPolicy.tls` (ClientTLSSettings) when the sidecar originates TLS itself (mode
    SIMPLE or MUTUAL). Paths and names are "" when not given. Validated by config/: the
    server is verified (`ca_certificates` or `credential_name`) unless `insecure_skip_verify`,
    and MUTUAL has a client key pair (files or `credential_name`)."""

    mode: ClientTlsMode
    ca_certificates: str = ""
    ca_crl: str = ""
    client_certificate: str = ""
    private_key: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    sni: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class DestinationRule:
    """`networking.istio.io/v1` DestinationRule, the parts this release uses: client TLS.

    `host` is as written (short names are resolved against the rule's namespace by model/).
    `tls_mode` None means trafficPolicy.tls is absent (auto-mTLS decides). `port_level` maps a
    service port number to its TLS mode (trafficPolicy.portLevelSettings[].tls). `tls` and
    `port_tls` hold the full settings where the mode is SIMPLE or MUTUAL (TLS origination).
    """

    meta: Meta
    host: str
    tls_mode: ClientTlsMode | None
    port_level: tuple[tuple[int, ClientTlsMode], ...]
    workload_selector: Labels | None
    tls: ClientTls | None = None
    port_tls: tuple[tuple[int, ClientTls], ...] = ()
    # ISTIO_MUTUAL's `sni` (rule level, and per port where the port's mode is ISTIO_MUTUAL).
    mtls_sni: str = ""
    port_mtls_sni: tuple[tuple[int, str], ...] = ()


AuthzAction = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]


@dataclass(frozen=True, slots=True)
class AuthzSource:
    """`rules[].from[].source`, values as written (validated: principals, CIDRs, namespaces)."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    request_principals: tuple[str, ...] = ()
    not_request_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()  # "namespace/name"
    not_service_accounts: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()  # "10.0.0.1" or "10.0.0.0/16", IPv4 or IPv6
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthzOperation:
    """`rules[].to[].operation`."""

    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    not_ports: tuple[int, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthzCondition:
    """`rules[].when[]`: a documented key (validated), with values and/or notValues."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthzRuleSpec:
    """One rule: from (OR of sources) AND to (OR of operations) AND when (AND of conditions).
    An empty tuple means the clause is absent (matches everything)."""

    sources: tuple[AuthzSource, ...] = ()
    operations: tuple[AuthzOperation, ...] = ()
    conditions: tuple[AuthzCondition, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy:
    """`security.istio.io/v1` AuthorizationPolicy.

    `selector` None: namespace-wide (mesh-wide in the root namespace). `rules` is () both when
    absent and when empty: an ALLOW policy without rules allows nothing, a DENY or AUDIT policy
    without rules matches nothing (Istio). `dry_run` is the `istio.io/dry-run: "true"`
    annotation. `provider` is spec.provider.name (CUSTOM only).
    """

    meta: Meta
    selector: Labels | None
    action: AuthzAction
    provider: str
    rules: tuple[AuthzRuleSpec, ...]
    dry_run: bool


@dataclass(frozen=True, slots=True)
class JwtRuleSpec:
    """One `jwtRules[]` entry of a RequestAuthentication, values as written (validated).

    `jwks_uri` and `jwks` are "" when absent (with neither, the keys come from OIDC discovery
    on the issuer). `from_headers` holds (name, prefix) pairs, `output_claim_to_headers`
    (header, claim) pairs. `line` is the rule's line, for diagnostics about it.
    """

    issuer: str
    audiences: tuple[str, ...] = ()
    jwks_uri: str = ""
    jwks: str = ""
    from_headers: tuple[tuple[str, str], ...] = ()
    from_params: tuple[str, ...] = ()
    from_cookies: tuple[str, ...] = ()
    output_payload_to_header: str = ""
    forward_original_token: bool = False
    output_claim_to_headers: tuple[tuple[str, str], ...] = ()
    timeout_seconds: float = 5.0
    line: int = 0


@dataclass(frozen=True, slots=True)
class RequestAuthentication:
    """`security.istio.io/v1` RequestAuthentication: which JWTs a workload accepts.

    `selector` None: namespace-wide (mesh-wide in the root namespace). Every policy that
    selects a workload contributes its rules (Istio merges them).
    """

    meta: Meta
    selector: Labels | None
    jwt_rules: tuple[JwtRuleSpec, ...]


AdmissionTemplate = Literal[
    "RequireStrictMtls",
    "AuthorizedCommands",
    "AuthorizedExceptions",
    "RefuseAllowAll",
    "RequireDryRunFirst",
]
Enforcement = Literal["deny", "audit"]


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """`meshward.io/v1alpha1` AdmissionPolicy: one constraint every change must pass.

    Cluster-scoped (meta.namespace is the default and means nothing). `namespaces` empty
    means every namespace; `excluded_namespaces` wins over `namespaces`. Only the parameters
    of `template` are set (validated by config/admission_policy.py); the others keep their
    defaults. See docs/admission.md.
    """

    meta: Meta
    template: AdmissionTemplate
    enforcement: Enforcement
    namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()  # AuthorizedCommands: allowed argv[0] (entry "x*": prefix)
    approvers: tuple[str, ...] = ()  # AuthorizedExceptions
    require_mesh_wide_strict: bool = False  # RequireStrictMtls
    exempt_on_first_up: bool = True  # RequireDryRunFirst


@dataclass(frozen=True, slots=True)
class ExceptionClaim:
    """A resource's `meshward.io/exception` / `meshward.io/exception-approved-by` annotations.

    `resource` is the annotated resource's `Meta.ref`; `reason` or `approved_by` is "" when
    that annotation is absent (at least one is present). admission/ decides what it is worth.
    """

    resource: str
    reason: str
    approved_by: str
    file: str
    line: int


SeResolution = Literal["NONE", "STATIC", "DNS"]
SeLocation = Literal["MESH_EXTERNAL", "MESH_INTERNAL"]


@dataclass(frozen=True, slots=True)
class ServiceEntryPort:
    """`ServiceEntry.ports[]`: `protocol` as written (Istio protocol name, e.g. HTTP, TLS);
    `target_port` 0 means the port number itself."""

    number: int
    protocol: str
    name: str
    target_port: int = 0


@dataclass(frozen=True, slots=True)
class ServiceEntryEndpoint:
    """`ServiceEntry.endpoints[]` (a WorkloadEntry spec): `ports` maps port names to the
    endpoint's own port numbers."""

    address: str
    ports: tuple[tuple[str, int], ...] = ()
    labels: Labels = ()


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """`networking.istio.io/v1` ServiceEntry: names outside (or unregistered) services so that
    sidecars route them and REGISTRY_ONLY lets them through."""

    meta: Meta
    hosts: tuple[str, ...]
    addresses: tuple[str, ...]
    ports: tuple[ServiceEntryPort, ...]
    resolution: SeResolution
    location: SeLocation
    endpoints: tuple[ServiceEntryEndpoint, ...]
    export_to: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SidecarEgressHost:
    """One `Sidecar.egress[].hosts` item, `namespace/dnsName`: namespace `*` (any), `.` (the
    Sidecar's own, resolved by config/) or `~` (none); dnsName `*`, `*.suffix` or a name."""

    namespace: str
    host: str


@dataclass(frozen=True, slots=True)
class Sidecar:
    """`networking.istio.io/v1` Sidecar: which services a workload's proxy sees (egress hosts)
    and its own outbound traffic policy. `workload_selector` None: the namespace default."""

    meta: Meta
    workload_selector: Labels | None
    egress_hosts: tuple[SidecarEgressHost, ...] | None  # None: no egress listed, sees all
    outbound_policy: OutboundPolicy | None


Resource = (
    Service
    | Workload
    | MeshConfig
    | PeerAuthentication
    | DestinationRule
    | AuthorizationPolicy
    | AdmissionPolicy
    | Gateway
    | VirtualService
    | RequestAuthentication
    | ServiceEntry
    | Sidecar
)


@dataclass(frozen=True, slots=True)
class ConfigSet:
    """Everything one load produced: the valid resources and the diagnostics.

    A resource with an error is left out of `resources` (and its error is in `diagnostics`);
    whether the set as a whole may be applied is `not has_errors(diagnostics)`.
    """

    mesh: MeshConfig
    services: tuple[Service, ...]
    workloads: tuple[Workload, ...]
    peer_authentications: tuple[PeerAuthentication, ...]
    destination_rules: tuple[DestinationRule, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    admission_policies: tuple[AdmissionPolicy, ...] = ()
    exceptions: tuple[ExceptionClaim, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    request_authentications: tuple[RequestAuthentication, ...] = ()
    service_entries: tuple[ServiceEntry, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
