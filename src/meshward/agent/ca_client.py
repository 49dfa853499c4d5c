"""The agent's client for the CSR API (`meshward.ca.v1.CertificateService/CreateCertificate`).

Called by the agent's sidecar loop to get a workload certificate for a key made on the node.
The channel is TLS-verified against the mesh root the agent was given, with the server name
overridden to `meshward-ca` (the DNS SAN on the CA's serving certificate), so the agent can
dial the control plane by IP.
"""

from __future__ import annotations

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshward.agent import keys
from meshward.ca import csr_api
from meshward.ca.authority import IssuedCertificate
from meshward.errors import AuthenticationError, CertificateError

DEFAULT_TIMEOUT_SECONDS = 10.0


async def request_certificate(
    target: str,
    *,
    root_pem: bytes,
    token: str,
    key: ec.EllipticCurvePrivateKey,
    ttl_seconds: int,
    server_name: str = "meshward-ca",
    identity_hint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> IssuedCertificate:
    """Send a CSR for `key`; AuthenticationError if the CA refuses the token, CertificateError
    for any other refusal or for a reply that does not certify `key`."""
    request = csr_api.CertificateRequest(keys.csr_for(key, identity_hint), ttl_seconds)
    credentials = grpc.ssl_channel_credentials(root_certificates=root_pem)
    options = (("grpc.ssl_target_name_override", server_name),)
    async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
        call = channel.unary_unary(
            csr_api.FULL_METHOD,
            request_serializer=csr_api.encode_request,
            response_deserializer=csr_api.decode_response,
        )
        try:
            issued: IssuedCertificate = await call(
                request,
                metadata=((csr_api.AUTHORIZATION, f"{csr_api.BEARER}{token}"),),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNAUTHENTICATED:
                raise AuthenticationError(f"CA refused the token: {error.details()}") from error
            raise CertificateError(
                f"CA call failed: {error.code().name}: {error.details()}"
            ) from error
    _check_certifies(issued, key)
    return issued


def _check_certifies(issued: IssuedCertificate, key: ec.EllipticCurvePrivateKey) -> None:
    # Envoy would reject a key/cert mismatch at SDS time with a far vaguer error; catch it here.
    leaf = x509.load_pem_x509_certificate(issued.chain_pem)
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise CertificateError("CA returned a certificate for a different key")
