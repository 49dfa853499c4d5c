"""`networking.istio.io/v1` (and v1beta1, v1alpha3) Gateway → `networking.Gateway`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/networking/gateway/) and pilot's gateway validation
(pkg/config/validation: ValidateGateway, validateServerTLS):

  * every server has a port (number, protocol, name) and at least one host `[ns/]dnsName`;
    `ns` is `*` (default), `.` (the Gateway's namespace) or a namespace name;
  * HTTPS and TLS servers need `tls`; SIMPLE and MUTUAL need a certificate, from
    `credentialName` (meshward's secret store) or `serverCertificate` + `privateKey`;
    MUTUAL needs a CA (credentialName's CA or `caCertificates`); PASSTHROUGH and
    ISTIO_MUTUAL take no certificate (MW0176); PASSTHROUGH needs protocol TLS (MW0180);
  * `minProtocolVersion` <= `maxProtocolVersion` (MW0177); below TLS 1.2 is accepted with a
    warning (MW0178); `cipherSuites` must be ECDHE with an AEAD cipher (MW0179: Envoy also
    knows CBC and RSA key exchange, which the issue's "safe defaults" rule out).

AUTO_PASSTHROUGH (multi-network east-west) and `credentialNames`/`tlsCertificates` are
refused (MW0125: a TLS setting meshward would otherwise ignore).
"""

from __future__ import annotations

from meshward.config import names
from meshward.config.fields import Fields
from meshward.config.networking import (
    Gateway,
    GatewayHost,
    GatewayServer,
    GatewayTls,
    GatewayTlsMode,
    ServerProtocol,
    TlsVersion,
)
from meshward.config.resources import Labels, Meta

PROTOCOLS: tuple[ServerProtocol, ...] = ("HTTP", "HTTPS", "HTTP2", "GRPC", "TLS", "TCP")
TLS_MODES: tuple[GatewayTlsMode, ...] = (
    "SIMPLE",
    "MUTUAL",
    "OPTIONAL_MUTUAL",
    "PASSTHROUGH",
    "ISTIO_MUTUAL",
)
TLS_VERSIONS: tuple[TlsVersion, ...] = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")
# ECDHE key exchange (forward secrecy) with an AEAD cipher: the TLS 1.2 suites BoringSSL
# (Envoy) offers that no current guidance deprecates. TLS 1.3 suites are not configurable.
SAFE_CIPHER_SUITES = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
_TERMINATING = ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
_TLS_PROTOCOLS = ("HTTPS", "TLS")


def parse(spec: Fields, meta: Meta, labels: Labels) -> Gateway | None:
    """The Gateway, or None if any field was reported as an error."""
    del labels
    selector = spec.labels("selector")
    servers = tuple(
        server
        for item in spec.items("servers", required=True) or ()
        if (server := _server(item, meta.namespace)) is not None
    )
    spec.finish()
    if spec.report.failed:
        return None
    return Gateway(meta, selector or (), servers)


def _server(item: Fields, namespace: str) -> GatewayServer | None:
    port = item.mapping("port", required=True)
    number = name = protocol = None
    if port is not None:
        number = port.port("number", required=True)
        protocol = _protocol(port.choice("protocol", PROTOCOLS, required=True))
        name = port.string("name")
        port.accept("targetPort")  # Kubernetes Service mapping; meshward binds `number`
        port.finish()
    hosts = tuple(
        parsed
        for host in item.strings("hosts", required=True) or ()
        if (parsed := _host(item, host, namespace)) is not None
    )
    if item.has("hosts") and not hosts and not item.report.failed:
        item.disallow("hosts", "hosts needs at least one entry", code="MW0107")
    tls = _tls(item, protocol)
    server_name = item.string("name")
    for key in ("bind", "defaultEndpoint"):
        if item.take(key) is not None:
            item.disallow(key, f"{key} is not supported; the gateway binds its pod address")
    item.finish()
    if number is None or protocol is None:
        return None
    return GatewayServer(number, name or "", protocol, hosts, tls, server_name or "")


def _protocol(value: str | None) -> ServerProtocol | None:
    return next((p for p in PROTOCOLS if p == value), None)


def _host(item: Fields, text: str, namespace: str) -> GatewayHost | None:
    scope, slash, dns_name = text.rpartition("/")
    if not slash:
        scope = "*"
    if scope == ".":
        scope = namespace
    if (scope != "*" and not names.is_dns_label(scope)) or not _is_host(dns_name):
        item.disallow(
            "hosts",
            f"host {text!r} is not [namespace/]dnsName (namespace: *, . or a name; "
            "dnsName: *, *.suffix or a DNS name)",
            code="MW0175",
        )
        return None
    return GatewayHost(scope, dns_name.lower())


def _is_host(name: str) -> bool:
    """`*`, `*.example.com` or a DNS name (Istio: wildcard only as the leftmost label)."""
    if name == "*":
        return True
    bare = name[2:] if name.startswith("*.") else name
    return bool(bare) and names.is_dns_subdomain(bare.lower())


def _tls(item: Fields, protocol: ServerProtocol | None) -> GatewayTls | None:
    tls = item.mapping("tls")
    if tls is None:
        if protocol in _TLS_PROTOCOLS:
            item.disallow("tls", f"a {protocol} server needs tls settings", code="MW0180")
        return None
    redirect = bool(tls.boolean("httpsRedirect"))
    mode = tls.choice("mode", (*TLS_MODES, "AUTO_PASSTHROUGH"))
    if mode == "AUTO_PASSTHROUGH":
        tls.disallow("mode", "AUTO_PASSTHROUGH is not supported; refused", code="MW0125")
    credential = tls.string("credentialName") or ""
    if credential and not names.is_dns_subdomain(credential):
        tls.disallow("credentialName", f"{credential!r} is not a secret name", code="MW0176")
    files = {key: tls.string(key) or "" for key in _FILE_KEYS}
    sans = tls.strings("subjectAltNames") or ()
    versions = [_version(tls, key) for key in ("minProtocolVersion", "maxProtocolVersion")]
    ciphers = tls.strings("cipherSuites") or ()
    for cipher in ciphers:
        if cipher not in SAFE_CIPHER_SUITES:
            tls.disallow(
                "cipherSuites",
                f"cipher suite {cipher!r} is unknown or unsafe; use ECDHE with AEAD: "
                f"{', '.join(SAFE_CIPHER_SUITES)}",
                code="MW0179",
            )
    for key in ("credentialNames", "tlsCertificates", "verifyCertificateSpki"):
        if tls.take(key) is not None:
            tls.disallow(key, f"tls.{key} is not supported; refused", code="MW0125")
    if tls.take("verifyCertificateHash") is not None:
        tls.disallow("verifyCertificateHash", "not supported; refused", code="MW0125")
    tls.finish()
    result = GatewayTls(
        mode=next((m for m in TLS_MODES if m == mode), "SIMPLE"),
        https_redirect=redirect,
        credential_name=credential,
        server_certificate=files["serverCertificate"],
        private_key=files["privateKey"],
        ca_certificates=files["caCertificates"],
        ca_crl=files["caCrl"],
        subject_alt_names=sans,
        min_protocol_version=versions[0] or "TLS_AUTO",
        max_protocol_version=versions[1] or "TLS_AUTO",
        cipher_suites=ciphers,
    )
    _check_versions(tls, result)
    if mode is None and protocol in _TLS_PROTOCOLS:
        tls.disallow("mode", f"a {protocol} server needs tls.mode", code="MW0180")
    elif protocol is not None and (mode is None or mode in TLS_MODES):
        _check_mode(tls, protocol, result, given=mode is not None)
    return result


_FILE_KEYS = ("serverCertificate", "privateKey", "caCertificates", "caCrl")


def _version(tls: Fields, key: str) -> TlsVersion | None:
    value = tls.choice(key, TLS_VERSIONS)
    return next((v for v in TLS_VERSIONS if v == value), None)


_RANK = {"TLS_AUTO": 0, "TLSV1_0": 10, "TLSV1_1": 11, "TLSV1_2": 12, "TLSV1_3": 13}


def _check_versions(tls: Fields, settings: GatewayTls) -> None:
    low, high = _RANK[settings.min_protocol_version], _RANK[settings.max_protocol_version]
    if low and high and low > high:
        tls.disallow(
            "minProtocolVersion",
            f"minProtocolVersion {settings.min_protocol_version} is above "
            f"maxProtocolVersion {settings.max_protocol_version}",
            code="MW0177",
        )
    if low and low < _RANK["TLSV1_2"]:
        tls.disallow(
            "minProtocolVersion",
            f"{settings.min_protocol_version} is below TLS 1.2; clients may negotiate "
            "protocol versions with known attacks",
            code="MW0178",
        )


def _check_mode(tls: Fields, protocol: ServerProtocol, s: GatewayTls, *, given: bool) -> None:
    """What each mode needs and refuses (pilot validateServerTLS)."""
    has_files = bool(s.server_certificate or s.private_key)
    plain = protocol in ("HTTP", "HTTP2", "GRPC", "TCP")
    if plain:
        # Only httpsRedirect makes sense on a plaintext server; a mode there would be ignored.
        if given:
            tls.disallow(
                "mode",
                f"a {protocol} server does not terminate TLS; use HTTPS or TLS",
                code="MW0180",
            )
        return
    if s.mode == "PASSTHROUGH" and protocol != "TLS":
        tls.disallow("mode", "PASSTHROUGH needs port protocol TLS", code="MW0180")
    if s.mode in ("PASSTHROUGH", "ISTIO_MUTUAL"):
        if s.credential_name or has_files or s.ca_certificates:
            tls.disallow(
                "mode",
                f"{s.mode} takes no certificates (remove credentialName and files)",
                code="MW0176",
            )
        return
    if s.credential_name and (has_files or s.ca_certificates):
        tls.disallow(
            "credentialName",
            "use credentialName or the certificate file paths, not both",
            code="MW0176",
        )
    elif not s.credential_name and not (s.server_certificate and s.private_key):
        tls.disallow(
            "mode",
            f"{s.mode} needs credentialName, or serverCertificate and privateKey",
            code="MW0176",
        )
    if s.mode in ("MUTUAL", "OPTIONAL_MUTUAL") and not s.credential_name and not s.ca_certificates:
        tls.disallow("mode", f"{s.mode} needs caCertificates to verify clients", code="MW0176")
    if s.mode == "SIMPLE" and (s.subject_alt_names or s.ca_certificates):
        tls.disallow(
            "subjectAltNames" if s.subject_alt_names else "caCertificates",
            "SIMPLE does not verify clients; use MUTUAL",
            code="MW0176",
        )
