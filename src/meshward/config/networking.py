"""Typed networking resources: `networking.istio.io/v1` Gateway and VirtualService.

Part of the config → model contract (re-exported by `meshward.config.resources`); parsed by
`meshward.config.gateway` and `meshward.config.virtual_service`, read by
`meshward.model.gateway`. Field names follow the Istio API reference
(istio.io/latest/docs/reference/config/networking/gateway/ and .../virtual-service/) in
snake_case; values are already validated and narrowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from meshward.config.resources import Labels, Meta

ServerProtocol = Literal["HTTP", "HTTPS", "HTTP2", "GRPC", "TLS", "TCP"]
GatewayTlsMode = Literal["SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "PASSTHROUGH", "ISTIO_MUTUAL"]
TlsVersion = Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]
MatchKind = Literal["exact", "prefix", "regex"]


@dataclass(frozen=True, slots=True)
class GatewayTls:
    """`servers[].tls` (ServerTLSSettings). File paths are "" when not given; a server uses
    either `credential_name` (meshward's secret store) or the file paths, never both."""

    mode: GatewayTlsMode
    https_redirect: bool = False
    credential_name: str = ""
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    ca_crl: str = ""
    subject_alt_names: tuple[str, ...] = ()
    min_protocol_version: TlsVersion = "TLS_AUTO"
    max_protocol_version: TlsVersion = "TLS_AUTO"
    cipher_suites: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayHost:
    """One `servers[].hosts` entry `namespace/dnsName`: `namespace` is "*" (any), or a
    namespace name ("." is resolved to the Gateway's own namespace by the parser)."""

    namespace: str
    dns_name: str


@dataclass(frozen=True, slots=True)
class GatewayServer:
    """`servers[]`: one port, the hosts it serves and its TLS settings.

    `tls` is None for a plaintext server (HTTP, TCP) that sets nothing; an HTTP server with
    only `tls.httpsRedirect` has `tls.https_redirect` and mode SIMPLE (ignored for HTTP).
    """

    port: int
    port_name: str
    protocol: ServerProtocol
    hosts: tuple[GatewayHost, ...]
    tls: GatewayTls | None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Gateway:
    """`networking.istio.io/v1` Gateway: which gateway pods (selector) serve which servers."""

    meta: Meta
    selector: Labels
    servers: tuple[GatewayServer, ...]


@dataclass(frozen=True, slots=True)
class StringMatch:
    kind: MatchKind
    value: str


@dataclass(frozen=True, slots=True)
class HttpMatch:
    """`http[].match[]` (HTTPMatchRequest): all present conditions must hold. `gateways`
    () means the route's VirtualService gateways."""

    uri: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()
    without_headers: tuple[tuple[str, StringMatch], ...] = ()
    port: int | None = None
    gateways: tuple[str, ...] = ()
    ignore_uri_case: bool = False
    name: str = ""


CLAIM_HEADER_PREFIX = "@request.auth.claims."  # Istio's claim-based routing pseudo-header


def matches_claims(match: HttpMatch) -> bool:
    """Does `match` test a JWT claim (`headers` / `withoutHeaders` `@request.auth.claims.*`)?"""
    return any(
        name.startswith(CLAIM_HEADER_PREFIX) for name, _ in (*match.headers, *match.without_headers)
    )


@dataclass(frozen=True, slots=True)
class Destination:
    """`route[].destination`: `host` as written (a short name is in the VirtualService's
    namespace), `port` None when not given (a service with one port needs none)."""

    host: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class RouteDestination:
    destination: Destination
    weight: int = 0  # 0 when not given: the only destination gets all traffic


@dataclass(frozen=True, slots=True)
class HeaderOperations:
    """`headers.request` / `headers.response`: set (replace), add (append), remove."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HttpRedirect:
    """`http[].redirect`; empty strings and None keep the request's own value."""

    uri: str = ""
    authority: str = ""
    port: int | None = None
    scheme: str = ""
    redirect_code: int = 301


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """`http[]`: matches (OR; () matches everything), then route, redirect or direct response."""

    name: str
    matches: tuple[HttpMatch, ...]
    route: tuple[RouteDestination, ...]
    redirect: HttpRedirect | None = None
    rewrite_uri: str = ""
    rewrite_authority: str = ""
    timeout_ms: int | None = None
    retry_attempts: int | None = None
    retry_per_try_timeout_ms: int | None = None
    retry_on: str = ""
    request_headers: HeaderOperations = HeaderOperations()
    response_headers: HeaderOperations = HeaderOperations()


@dataclass(frozen=True, slots=True)
class TlsMatch:
    """`tls[].match[]`: SNI hosts (required) and optionally the gateway port."""

    sni_hosts: tuple[str, ...]
    port: int | None = None
    gateways: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsRoute:
    matches: tuple[TlsMatch, ...]
    route: tuple[RouteDestination, ...]


@dataclass(frozen=True, slots=True)
class TcpMatch:
    port: int | None = None
    gateways: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TcpRoute:
    matches: tuple[TcpMatch, ...]
    route: tuple[RouteDestination, ...]


@dataclass(frozen=True, slots=True)
class VirtualService:
    """`networking.istio.io/v1` VirtualService. `gateways` are normalised to
    `namespace/name` or `mesh`; () means `mesh` (Istio's default)."""

    meta: Meta
    hosts: tuple[str, ...]
    gateways: tuple[str, ...]
    http: tuple[HttpRoute, ...] = ()
    tls: tuple[TlsRoute, ...] = ()
    tcp: tuple[TcpRoute, ...] = ()
