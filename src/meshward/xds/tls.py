"""Istio mTLS as Envoy TLS contexts: SDS secret references, SAN matchers, transport sockets.

Called by listener.py (server side of inbound mTLS), cluster.py (client side of outbound
mTLS, and TLS origination by DestinationRule SIMPLE/MUTUAL: `origination_context`) and
bootstrap.py (static secrets for tests). The workload certificate is the SDS secret
`default` and the trust bundle `ROOTCA` (Istio's names), both served by the node agent.
Peers are checked by SPIFFE URI SAN (SPIFFE X509-SVID §5: the identity is the one URI SAN)
with `match_typed_subject_alt_names`; the untyped `match_subject_alt_names` is deprecated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from meshward.model import ir
from meshward.xds import core

IDENTITY_SECRET = "default"  # key + certificate chain of this workload (Istio's name)
ROOT_SECRET = "ROOTCA"  # trust bundle (Istio's name)
TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_SOCKET = "envoy.transport_sockets.raw_buffer"
HTTP_ALPN = ("h2", "http/1.1")


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """A reference to secret `name` served by the node agent over SDS (`sds-grpc`)."""
    config = secret_pb2.SdsSecretConfig(name=name)
    config.sds_config.CopyFrom(core.grpc_source(core.SDS_CLUSTER))
    return config


def uri_san(*, exact: str = "", prefix: str = "") -> common_pb2.SubjectAltNameMatcher:
    """A URI SAN matcher, either exact or by prefix."""
    matcher = common_pb2.SubjectAltNameMatcher(san_type=common_pb2.SubjectAltNameMatcher.URI)
    if prefix:
        matcher.matcher.prefix = prefix
    else:
        matcher.matcher.exact = exact
    return matcher


def _common_context(
    sans: Iterable[common_pb2.SubjectAltNameMatcher], alpn: Iterable[str]
) -> tls_pb2.CommonTlsContext:
    common = tls_pb2.CommonTlsContext()
    # TLS 1.2 minimum on both sides (Istio's default minimum protocol version).
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    common.tls_certificate_sds_secret_configs.append(sds_secret(IDENTITY_SECRET))
    combined = common.combined_validation_context
    combined.default_validation_context.match_typed_subject_alt_names.extend(sans)
    combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_SECRET))
    common.alpn_protocols.extend(alpn)
    return common


def downstream_context(trust_domain: str, *, http: bool) -> tls_pb2.DownstreamTlsContext:
    """Server side of mesh mTLS: a client certificate from this trust domain is required."""
    context = tls_pb2.DownstreamTlsContext()
    context.common_tls_context.CopyFrom(
        _common_context([uri_san(prefix=f"spiffe://{trust_domain}/")], HTTP_ALPN if http else ())
    )
    context.require_client_certificate.value = True
    return context


def upstream_context(
    subject_alt_names: Iterable[str], *, sni: str, http: bool
) -> tls_pb2.UpstreamTlsContext:
    """Client side of mesh mTLS: the server must present one of `subject_alt_names`."""
    context = tls_pb2.UpstreamTlsContext(sni=sni)
    context.common_tls_context.CopyFrom(
        _common_context(
            [uri_san(exact=san) for san in subject_alt_names], HTTP_ALPN if http else ()
        )
    )
    return context


def san_matcher(name: str) -> common_pb2.SubjectAltNameMatcher:
    """An exact matcher for one `subjectAltNames` entry, typed by its form: a URI (has a
    scheme, e.g. spiffe://), an IP address, else a DNS name."""
    if "://" in name:
        san_type = common_pb2.SubjectAltNameMatcher.URI
    else:
        try:
            ipaddress.ip_address(name)
            san_type = common_pb2.SubjectAltNameMatcher.IP_ADDRESS
        except ValueError:
            san_type = common_pb2.SubjectAltNameMatcher.DNS
    matcher = common_pb2.SubjectAltNameMatcher(san_type=san_type)
    matcher.matcher.exact = name
    return matcher


def origination_context(origination: ir.Origination) -> tls_pb2.UpstreamTlsContext:
    """Client side of DestinationRule SIMPLE/MUTUAL: TLS to a server outside Istio mTLS.

    The server is verified against the CA file or the credential's CA (SDS), and its SANs
    when listed; no validation context at all only for insecureSkipVerify (Envoy then accepts
    any certificate). No ALPN: the app's HTTP/1.1 (or TCP bytes) leave as they are, in TLS."""
    context = tls_pb2.UpstreamTlsContext(sni=origination.sni)
    common = context.common_tls_context
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    # Envoy's client default maximum is TLS 1.2 (TlsParameters docs); a server outside the
    # mesh that speaks 1.3 gets 1.3.
    common.tls_params.tls_maximum_protocol_version = common_pb2.TlsParameters.TLSv1_3
    if origination.certificate:
        common.tls_certificate_sds_secret_configs.append(sds_secret(origination.certificate))
    elif origination.cert_file:
        certificate = common.tls_certificates.add()
        certificate.certificate_chain.filename = origination.cert_file
        certificate.private_key.filename = origination.key_file
    sans = [san_matcher(name) for name in origination.subject_alt_names]
    if origination.validation:
        combined = common.combined_validation_context
        combined.default_validation_context.match_typed_subject_alt_names.extend(sans)
        combined.validation_context_sds_secret_config.CopyFrom(sds_secret(origination.validation))
    elif origination.ca_file:
        validation = common.validation_context
        validation.trusted_ca.filename = origination.ca_file
        if origination.crl_file:
            validation.crl.filename = origination.crl_file
        validation.match_typed_subject_alt_names.extend(sans)
    return context


def tls_socket(
    context: tls_pb2.DownstreamTlsContext | tls_pb2.UpstreamTlsContext,
) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=core.pack(context))


def raw_socket() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(
        name=RAW_SOCKET, typed_config=core.pack(raw_buffer_pb2.RawBuffer())
    )
