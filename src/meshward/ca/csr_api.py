"""The CSR API's wire format, shared by the server and the agent's client.

Called by `meshward.server.ca_service` (decode requests, encode responses) and
`meshward.agent.ca_client` (the reverse). The service is `meshward.ca.v1.CertificateService`
with one unary method, `CreateCertificate`; messages are JSON instead of generated protobuf so
neither side needs code generation:

    request   {"csr": "<PEM>", "ttl_seconds": <int>}
    response  {"cert_chain": ["<leaf PEM>", "<intermediate PEM>", ...], "root": "<PEM>",
               "not_after": "<ISO 8601>"}

The caller authenticates with gRPC metadata `authorization: Bearer <workload token>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshward.ca.authority import IssuedCertificate
from meshward.errors import CertificateError

SERVICE = "meshward.ca.v1.CertificateService"
METHOD = "CreateCertificate"
FULL_METHOD = f"/{SERVICE}/{METHOD}"
AUTHORIZATION = "authorization"
BEARER = "Bearer "


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """A decoded request: the CSR (PEM) and the TTL the caller asks for."""

    csr_pem: bytes
    ttl_seconds: int


def encode_request(request: CertificateRequest) -> bytes:
    return json.dumps(
        {"csr": request.csr_pem.decode("ascii"), "ttl_seconds": request.ttl_seconds}
    ).encode()


def decode_request(data: bytes) -> CertificateRequest:
    """Parse a request; CertificateError names what is wrong with it."""
    message = _object(data)
    csr, ttl = message.get("csr"), message.get("ttl_seconds")
    if not isinstance(csr, str) or not csr:
        raise CertificateError("request field 'csr' must be a PEM string")
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise CertificateError("request field 'ttl_seconds' must be an integer")
    return CertificateRequest(csr.encode("ascii", errors="replace"), ttl)


def encode_response(issued: IssuedCertificate) -> bytes:
    certs = x509.load_pem_x509_certificates(issued.chain_pem)
    return json.dumps(
        {
            "cert_chain": [
                cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certs
            ],
            "root": issued.root_pem.decode("ascii"),
            "not_after": issued.not_after.isoformat(),
        }
    ).encode()


def decode_response(data: bytes) -> IssuedCertificate:
    """Parse a response; CertificateError if it is not the documented shape."""
    message = _object(data)
    chain, root = message.get("cert_chain"), message.get("root")
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise CertificateError("response field 'cert_chain' must be a non-empty PEM list")
    if not isinstance(root, str):
        raise CertificateError("response field 'root' must be a PEM string")
    chain_pem = "".join(chain).encode("ascii")
    try:
        leaf = x509.load_pem_x509_certificate(chain_pem)
        not_after = datetime.fromisoformat(str(message.get("not_after")))
    except ValueError as error:
        raise CertificateError(f"response unreadable: {error}") from error
    return IssuedCertificate(
        chain_pem=chain_pem,
        root_pem=root.encode("ascii"),
        not_after=not_after,
        not_before=leaf.not_valid_before_utc,
    )


def _object(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise CertificateError(f"message is not JSON: {error}") from error
    if not isinstance(message, dict):
        raise CertificateError("message is not a JSON object")
    return message
