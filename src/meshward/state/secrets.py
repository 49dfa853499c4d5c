"""The local secret store: TLS credentials for gateways, Istio's `credentialName` secrets.

Written by `meshward secret create|delete` (cli/secret.py); read by the node agent, which
serves each credential to gateway Envoys over SDS (`credential/<name>` = key + chain,
`credential/<name>-cacert` = CA bundle + CRL, Istio's naming for MUTUAL) and re-reads the store
every second, so a replaced certificate reaches Envoy without a restart.

Layout (Kubernetes TLS secret key names): `<state>/secrets/<name>/tls.crt`, `tls.key` (0600),
`ca.crt`, `ca.crl`; the directory is 0700. Everything is checked before it is stored: PEM
parses (MW0450), the key matches the certificate (MW0451), the certificate is valid now
(MW0452); a bad secret never replaces a good one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import types

from meshward.config import names
from meshward.diagnostics import Diagnostic, Location, catalog
from meshward.state.layout import StateDir
from meshward.state.records import write_bytes

CERT, KEY, CA, CRL = "tls.crt", "tls.key", "ca.crt", "ca.crl"


@dataclass(frozen=True, slots=True)
class TlsSecret:
    """One credential as stored: PEM bytes; `ca`/`crl` are b"" when absent."""

    name: str
    cert: bytes
    key: bytes
    ca: bytes = b""
    crl: bytes = b""

    def __repr__(self) -> str:  # never print the key
        return f"TlsSecret({self.name!r}, ca={bool(self.ca)}, crl={bool(self.crl)})"


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What `meshward secret list` shows for one secret."""

    name: str
    subject: str
    dns_names: tuple[str, ...]
    serial: str
    not_after: str
    has_ca: bool
    has_crl: bool


def _problem(code: str, name: str, field: str, message: str) -> Diagnostic:
    return Diagnostic(
        code=code,
        level=catalog.lookup(code).level,
        resource=f"secret {name}",
        location=Location(field=field),
        message=message,
    )


def check(secret: TlsSecret, now: datetime) -> tuple[Diagnostic, ...]:
    """Every problem with `secret` (empty: it may be stored)."""
    name = secret.name
    if not names.is_dns_subdomain(name):
        return (_problem("MW0454", name, "name", f"{name!r} is not a DNS-1123 subdomain"),)
    found: list[Diagnostic] = []
    try:
        chain = x509.load_pem_x509_certificates(secret.cert)
    except ValueError as error:
        return (_problem("MW0450", name, "cert", f"not a PEM certificate: {error}"),)
    try:
        key = serialization.load_pem_private_key(secret.key, password=None)
    except (ValueError, TypeError) as error:
        return (_problem("MW0450", name, "key", f"not an unencrypted PEM private key: {error}"),)
    leaf = chain[0]
    if not _same_key(key, leaf):
        found.append(_problem("MW0451", name, "key", "the key does not match the certificate"))
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        found.append(
            _problem(
                "MW0452",
                name,
                "cert",
                f"valid {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now",
            )
        )
    for field, data, loader in (
        ("cacert", secret.ca, x509.load_pem_x509_certificates),
        ("crl", secret.crl, x509.load_pem_x509_crl),
    ):
        if data:
            try:
                loader(data)
            except ValueError as error:
                found.append(_problem("MW0450", name, field, f"not PEM: {error}"))
    return tuple(found)


def _same_key(key: types.PrivateKeyTypes, leaf: x509.Certificate) -> bool:
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    return bool(key.public_key().public_bytes(pem, raw) == leaf.public_key().public_bytes(pem, raw))


def directory(state: StateDir, name: str) -> Path:
    return state.root / "secrets" / name


def store(state: StateDir, secret: TlsSecret) -> None:
    """Write `secret` (already `check`ed); each file is replaced atomically, the key 0600."""
    folder = directory(state, secret.name)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.parent.chmod(0o700)
    # The key first: until the certificate follows, the old pair is still consistent for a
    # reader that loads both (the agent skips a pair whose key does not match).
    write_bytes(folder / KEY, secret.key, mode=0o600)
    write_bytes(folder / CERT, secret.cert)
    for file, data in ((CA, secret.ca), (CRL, secret.crl)):
        if data:
            write_bytes(folder / file, data)
        else:
            (folder / file).unlink(missing_ok=True)


def load(state: StateDir, name: str) -> TlsSecret | None:
    """The stored secret `name`, or None if absent or half-written."""
    folder = directory(state, name)
    try:
        cert, key = (folder / CERT).read_bytes(), (folder / KEY).read_bytes()
    except FileNotFoundError:
        return None
    optional = [(folder / f).read_bytes() if (folder / f).exists() else b"" for f in (CA, CRL)]
    return TlsSecret(name, cert, key, *optional)


def names_in(state: StateDir) -> tuple[str, ...]:
    root = state.root / "secrets"
    if not root.is_dir():
        return ()
    return tuple(sorted(p.name for p in root.iterdir() if (p / CERT).exists()))


def info(secret: TlsSecret) -> SecretInfo:
    leaf = x509.load_pem_x509_certificates(secret.cert)[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = ()
    return SecretInfo(
        name=secret.name,
        subject=leaf.subject.rfc4514_string(),
        dns_names=dns,
        serial=format(leaf.serial_number, "x"),
        not_after=leaf.not_valid_after_utc.isoformat(),
        has_ca=bool(secret.ca),
        has_crl=bool(secret.crl),
    )


def delete(state: StateDir, name: str) -> bool:
    folder = directory(state, name)
    if not folder.is_dir():
        return False
    shutil.rmtree(folder)
    return True


def usable(secret: TlsSecret, now: datetime) -> bool:
    """What the agent serves: a secret with no error (a half-replaced pair waits a round)."""
    return not any(d.level.name == "ERROR" for d in check(secret, now))
