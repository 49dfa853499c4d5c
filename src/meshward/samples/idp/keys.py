"""The IdP's signing keys in a directory, shared by the IdP sample server and
`meshward token issue` (the same keys sign tokens and are published as the JWKS).

Layout: `<dir>/keys.json` lists the keys, newest last (`kid`, `alg`, `created`,
`retired`), and `<dir>/<kid>.pem` holds each private key (PKCS#8, mode 0600). The newest key
signs; `rotate` adds a new key and marks the previous ones retired. A retired key stays
published (`public_jwks`) for `grace_seconds`, so tokens it signed keep validating while
relying parties pick up the new key — the usual rotation overlap (RFC 7517 §5 key sets hold
several keys; OpenID Connect Core §10.1.1 rotation by publishing the new key first).
Time is passed in (`now`, seconds since the epoch) so rotation is testable.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

Algorithm = Literal["RS256", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "ES256")
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_INDEX = "keys.json"


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kid: str
    alg: Algorithm
    created: float
    retired: float | None  # when a newer key took over; None for the signing key


class KeyStore:
    """A key directory. Every method re-reads it, so a rotation by one process (the
    server's POST /rotate) is seen by another (`meshward token issue`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def entries(self) -> tuple[KeyEntry, ...]:
        path = self.directory / _INDEX
        if not path.exists():
            return ()
        raw = json.loads(path.read_text())
        return tuple(
            KeyEntry(e["kid"], e["alg"], float(e["created"]), e.get("retired")) for e in raw
        )

    def ensure(self, now: float, alg: Algorithm = "RS256") -> KeyEntry:
        """The signing key, creating the first one if the directory has none."""
        entries = self.entries()
        return entries[-1] if entries else self.rotate(now, alg)

    def rotate(self, now: float, alg: Algorithm | None = None) -> KeyEntry:
        """A new signing key (same algorithm as the current one unless `alg` says); the
        older keys are retired as of `now`."""
        entries = list(self.entries())
        chosen: Algorithm = alg or (entries[-1].alg if entries else "RS256")
        entry = KeyEntry(secrets.token_hex(8), chosen, now, None)
        self.directory.mkdir(parents=True, exist_ok=True)
        key_file = self.directory / f"{entry.kid}.pem"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(
                _generate(chosen).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        updated = [
            KeyEntry(e.kid, e.alg, e.created, e.retired if e.retired is not None else now)
            for e in entries
        ]
        updated.append(entry)
        index = [
            {"kid": e.kid, "alg": e.alg, "created": e.created, "retired": e.retired}
            for e in updated
        ]
        temporary = self.directory / f".{_INDEX}.tmp"
        temporary.write_text(json.dumps(index, indent=2) + "\n")
        temporary.replace(self.directory / _INDEX)
        return entry

    def private_key(self, kid: str) -> PrivateKey:
        loaded = serialization.load_pem_private_key(
            (self.directory / f"{kid}.pem").read_bytes(), password=None
        )
        if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"key {kid} is neither RSA nor EC")
        return loaded

    def published(self, now: float, grace_seconds: float) -> tuple[KeyEntry, ...]:
        """The keys a relying party may see: the signing key and keys retired less than
        `grace_seconds` ago."""
        return tuple(
            e for e in self.entries() if e.retired is None or now - e.retired < grace_seconds
        )

    def public_jwks(self, now: float, grace_seconds: float) -> dict[str, Any]:
        """The JSON Web Key Set (RFC 7517 §5) of the published keys."""
        return {
            "keys": [
                public_jwk(self.private_key(e.kid), e.kid, e.alg)
                for e in self.published(now, grace_seconds)
            ]
        }


def _generate(alg: Algorithm) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(number: int, length: int | None = None) -> str:
    raw = number.to_bytes(length or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: PrivateKey, kid: str, alg: Algorithm) -> dict[str, str]:
    """The public half as a JWK (RFC 7518 §6.3.1 RSA, §6.2.1 EC P-256)."""
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "kid": kid,
            "alg": alg,
            "use": "sig",
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }
    point = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "alg": alg,
        "use": "sig",
        "crv": "P-256",
        "x": _b64(point.x, 32),
        "y": _b64(point.y, 32),
    }
