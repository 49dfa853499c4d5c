"""Workload credentials: how the CA knows who is calling its CSR API.

The role Kubernetes service-account tokens play in Istio: the control plane mints a short JWT
for each workload it places (`issue_workload_token`, called by the runner when it starts an
agent), and the CSR API (`meshward.server.ca_service`) turns a presented token back into the
SPIFFE identity it may certify (`verify_workload_token`). The signing key is ES256 (RFC 7518
§3.4) and lives beside the CA files as `token-key.pem` (0600).

Verification accepts ES256 only. "none" and the HS* family are refused by name before any
decoding, which closes the classic confusion attack where a token is HMAC'd with the public key
(RFC 8725 §2.1, §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshward.ca import pemfile
from meshward.errors import AuthenticationError
from meshward.identity import SpiffeId

TOKEN_KEY = "token-key.pem"
ISSUER = "meshward-ca"
AUDIENCE = "meshward-ca"
ALGORITHM = "ES256"
_REQUIRED = ("iss", "aud", "sub", "node", "iat", "exp")


@dataclass(frozen=True, slots=True, repr=False)
class WorkloadTokens:
    """Issues and verifies workload tokens with one ES256 key (repr redacted: it holds a key)."""

    key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:
        return "WorkloadTokens(key=<redacted>)"

    @classmethod
    def load_or_create(
        cls, directory: Path, *, key: ec.EllipticCurvePrivateKey | None = None
    ) -> WorkloadTokens:
        """The key in `directory/token-key.pem`, or a new P-256 key (`key` if given) written
        there with mode 0600."""
        path = directory / TOKEN_KEY
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != (
                "secp256r1"
            ):
                raise AuthenticationError(f"{path}: ES256 needs a P-256 key")
            return cls(loaded)
        key = key or ec.generate_private_key(ec.SECP256R1())
        directory.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pemfile.write_atomic(path, pem, mode=pemfile.PRIVATE)
        return cls(key)

    def issue_workload_token(
        self, identity: SpiffeId, *, node: str, now: datetime, ttl: timedelta
    ) -> str:
        """A token entitling its bearer to certificates for `identity`, from `node`."""
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": identity.uri,
            "node": node,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def verify_workload_token(self, token: str, *, now: datetime) -> tuple[SpiffeId, str]:
        """(identity, node) of a valid token; AuthenticationError for anything else."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"malformed token: {error}") from error
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError(f"token alg {header.get('alg')!r} refused: want ES256")
        claims = self._decode(token)
        # Time is checked here against the injected `now`, not PyJWT's wall clock.
        if not claims["iat"] <= int(now.timestamp()) < claims["exp"]:
            raise AuthenticationError("token expired or not yet valid")
        try:
            identity = SpiffeId.parse(str(claims["sub"]))
        except ValueError as error:
            raise AuthenticationError(f"token subject: {error}") from error
        return identity, str(claims["node"])

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": list(_REQUIRED), "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"token rejected: {error}") from error
        if not all(isinstance(claims[name], int) for name in ("iat", "exp")):
            raise AuthenticationError("token iat/exp must be integers")
        return claims
