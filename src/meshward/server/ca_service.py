"""The CSR API over gRPC: `meshward.ca.v1.CertificateService/CreateCertificate`.

Called by the control plane (`serve_ca` at start-up); agents call it through
`meshward.agent.ca_client`. A thin loop around `meshward.ca`: authenticate the caller from its
workload token (`authorization: Bearer ...` metadata), decode the JSON request
(`meshward.ca.csr_api`), sign for the token's identity, encode the reply.

Status codes follow gRPC's own guidance (grpc.io "Status codes"): a missing or bad credential
is UNAUTHENTICATED, a bad request (CSR, TTL) is INVALID_ARGUMENT with the CA's message.

The server speaks TLS with a serving certificate issued by the same CA for the control plane's
SPIFFE identity plus DNS SAN `meshward-ca` and IP SAN 127.0.0.1; agents bootstrap with only
the root. Clients are not asked for certificates: before its first CSR an agent has none.
The serving certificate is renewed at half-life on the next incoming connection.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from typing import cast

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshward.ca import csr_api, rotation
from meshward.ca.authority import CertificateAuthority, IssuedCertificate
from meshward.errors import AuthenticationError, CertificateError
from meshward.identity import SpiffeId

log = logging.getLogger("meshward.server.ca")

CONTROL_PLANE_ACCOUNT = "meshward-control-plane"
SERVER_NAME = "meshward-ca"
SERVING_TTL = timedelta(days=1)
Clock = Callable[[], datetime]


class _ServingCertificate:
    """The server's own key and certificate, reissued at half-life (grpc asks before every
    handshake via `fetch`, from one of its own threads, hence the lock)."""

    def __init__(
        self,
        ca: CertificateAuthority,
        identity: SpiffeId,
        addresses: tuple[IPv4Address | IPv6Address, ...],
        now_fn: Clock,
    ) -> None:
        self._ca, self._identity, self._addresses, self._now = ca, identity, addresses, now_fn
        self._lock = threading.Lock()
        self._issued = self._issue()

    def _issue(self) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._ca.issue_server_cert(
            key.public_key(),
            identity=self._identity,
            dns_names=(SERVER_NAME,),
            ip_addresses=self._addresses,
            ttl=SERVING_TTL,
            now=self._now(),
        )
        self._key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return issued

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(self._key_pem, self._issued.chain_pem)])

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            issued = self._issued
            if not rotation.rotation_due(issued.not_before, issued.not_after, self._now()):
                return None  # keep the current certificate
            try:
                self._issued = self._issue()
            except CertificateError:
                log.exception("could not renew the CA serving certificate; keeping the old one")
                return None
            return self.configuration()


class _CertificateService:
    """The CreateCertificate handler: authenticate, decode, sign, encode."""

    def __init__(self, ca: CertificateAuthority, now_fn: Clock) -> None:
        self._ca, self._now = ca, now_fn

    async def create_certificate(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        now = self._now()
        try:
            identity, node = self._ca.tokens.verify_workload_token(_bearer(context), now=now)
        except AuthenticationError as error:
            log.warning("CSR refused: %s", error)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
        try:
            decoded = csr_api.decode_request(request)
            issued = self._ca.sign(
                decoded.csr_pem,
                identity,
                ttl=timedelta(seconds=decoded.ttl_seconds),
                now=now,
            )
        except CertificateError as error:
            log.warning("CSR from %s on %s refused: %s", identity.uri, node, error)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        log.info("certificate for %s on node %s until %s", identity.uri, node, issued.not_after)
        return csr_api.encode_response(issued)


def _bearer(context: grpc.aio.ServicerContext) -> str:  # type: ignore[type-arg]
    for key, value in context.invocation_metadata() or ():
        if key == csr_api.AUTHORIZATION:
            text = value.decode() if isinstance(value, bytes) else value
            if text.startswith(csr_api.BEARER):
                return text.removeprefix(csr_api.BEARER).strip()
            raise AuthenticationError("authorization metadata is not a Bearer token")
    raise AuthenticationError("no authorization metadata")


def _ip_addresses(host: str) -> tuple[IPv4Address | IPv6Address, ...]:
    addresses: list[IPv4Address | IPv6Address] = [IPv4Address("127.0.0.1")]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return tuple(addresses)
    if not address.is_unspecified and address not in addresses:
        addresses.append(address)
    return tuple(addresses)


async def serve_ca(
    ca: CertificateAuthority,
    host: str,
    port: int,
    *,
    now_fn: Clock,
    root_namespace: str = "meshward-system",
) -> tuple[grpc.aio.Server, int]:
    """Start the CSR API on host:port (0 picks a free port); returns the server and its port.
    The caller stops it with `await server.stop(grace)`."""
    identity = SpiffeId(ca.trust_domain, root_namespace, CONTROL_PLANE_ACCOUNT)
    serving = _ServingCertificate(ca, identity, _ip_addresses(host), now_fn)
    # grpc documents that the fetcher may return None ("no change"); grpc-stubs omits it.
    fetch = cast("Callable[[], grpc.ServerCertificateConfiguration]", serving.fetch)
    credentials = grpc.dynamic_ssl_server_credentials(
        serving.configuration(), fetch, require_client_authentication=False
    )
    service = _CertificateService(ca, now_fn)
    handler = grpc.method_handlers_generic_handler(
        csr_api.SERVICE,
        {
            csr_api.METHOD: grpc.unary_unary_rpc_method_handler(
                service.create_certificate,
                request_deserializer=None,  # raw bytes; decoded in the handler for a clean status
                response_serializer=None,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_secure_port(f"{host}:{port}", credentials)
    await server.start()
    log.info("CA service listening on %s:%d as %s", host, bound, identity.uri)
    return server, bound
