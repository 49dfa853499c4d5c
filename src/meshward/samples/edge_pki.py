"""Certificates from outside the mesh for the ingress and egress examples: server certificates
for public host names, client certificates for mobile apps, and the partner APIs' own PKI
(their server certificates, and the client certificate the mesh presents to the maps API),
each from its own CA (made with `cryptography`, never meshward.ca: these CAs are the
world's, not the mesh's).

`python -m meshward.samples.edge_pki DIR` writes the simple-system example's set (see
`example`); `meshward demo`, the ingress tests and bench/ingress.py use `Ca` directly.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_NOW = datetime.datetime.now(datetime.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Ca:
    """A CA that writes `<dir>/<name>.crt|.key` files for the leaves it issues."""

    name: str
    directory: Path
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    revoked: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(hours=1))
            .not_valid_after(_NOW + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file = self.directory / f"{self.name}-ca.crt"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, dns: str = "", uri: str = "") -> tuple[Path, Path, int]:
        """(certificate file, key file, serial) of a leaf with a DNS and/or URI SAN."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        if dns:
            sans.append(x509.DNSName(dns))
        if uri:
            sans.append(x509.UniformResourceIdentifier(uri))
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns or name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(_NOW - datetime.timedelta(hours=1))
            .not_valid_after(_NOW + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(_pem_key(key))
        key_file.chmod(0o600)
        return cert_file, key_file, serial

    def crl(self, *serials: int) -> Path:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(_NOW - datetime.timedelta(minutes=5))
            .next_update(_NOW + datetime.timedelta(days=1))
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_NOW - datetime.timedelta(minutes=5))
                .build()
            )
        path = self.directory / f"{self.name}.crl"
        path.write_bytes(
            builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        return path


@dataclass(frozen=True, slots=True)
class ExamplePki:
    """The simple-system ingress example's certificates (files in one directory)."""

    server_ca: Path  # what a browser trusts: signs users.example.com and mobile.example.com
    users: tuple[Path, Path]  # users-cert: certificate, key
    mobile: tuple[Path, Path]  # mobile-cert: certificate, key (server side)
    app_ca: Path  # mobile-cert's CA bundle: signs the mobile app's client certificates
    app: tuple[Path, Path]  # the mobile app's client certificate and key
    # egress: the partners' CA signs api.maps.example and payments.example (their servers'
    # certificates); the maps API accepts client certificates from maps-customers only, and
    # maps-client (a credential of the egress gateway) is the mesh's.
    partner_ca: Path
    maps_api: tuple[Path, Path]
    payments_api: tuple[Path, Path]
    maps_customers_ca: Path
    maps_client: tuple[Path, Path]


MOBILE_APP_URI = "spiffe://mobile.example.com/ns/apps/sa/mobile"
MAPS_CLIENT_URI = "spiffe://maps-customers.example/simple-system"


def example(directory: Path) -> ExamplePki:
    """Write the example's PKI into `directory` (fresh keys every time)."""
    servers, apps = Ca("example-servers", directory), Ca("mobile-apps", directory)
    users = servers.issue("users", dns="users.example.com")
    mobile = servers.issue("mobile", dns="mobile.example.com")
    app = apps.issue("mobile-app", uri=MOBILE_APP_URI)
    partners, customers = Ca("partner-apis", directory), Ca("maps-customers", directory)
    maps_api = partners.issue("maps-api", dns="api.maps.example")
    payments_api = partners.issue("payments-api", dns="payments.example")
    maps_client = customers.issue("maps-client", uri=MAPS_CLIENT_URI)
    return ExamplePki(
        servers.cert_file,
        users[:2],
        mobile[:2],
        apps.cert_file,
        app[:2],
        partners.cert_file,
        maps_api[:2],
        payments_api[:2],
        customers.cert_file,
        maps_client[:2],
    )


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m meshward.samples.edge_pki DIR", file=sys.stderr)
        raise SystemExit(2)
    made = example(Path(sys.argv[1]))
    print(f"meshward secret create tls users-cert --cert {made.users[0]} --key {made.users[1]}")
    print(
        f"meshward secret create tls mobile-cert --cert {made.mobile[0]} "
        f"--key {made.mobile[1]} --cacert {made.app_ca}"
    )
    print(
        f"meshward secret create tls maps-client --cert {made.maps_client[0]} "
        f"--key {made.maps_client[1]} --cacert {made.partner_ca}"
    )


if __name__ == "__main__":
    main()
