"""The CA: creating and loading its directory, signing CSRs, refusing bad input."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from ca_testkit import ALICE, CA_SPEC, NOW, Keys, Pki, key_pem, make_cert, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshward.agent import keys as agent_keys
from meshward.ca import validator
from meshward.ca.authority import CertificateAuthority
from meshward.diagnostics import Level
from meshward.errors import CertificateError
from meshward.identity import SpiffeId

TTL = timedelta(hours=24)


@pytest.fixture
def ca(tmp_path: Path, keys: Keys) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(
        tmp_path / "ca", trust_domain="cluster.local", now=NOW, key=keys.root, token_key=keys.token
    )


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in sorted(directory.iterdir())}


def test_created_directory_has_istio_layout_and_private_modes(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    directory = tmp_path / "ca"
    assert _modes(directory) == {
        "ca-cert.pem": 0o644,
        "ca-key.pem": 0o600,
        "cert-chain.pem": 0o644,
        "root-cert.pem": 0o644,
        "token-key.pem": 0o600,
    }
    root_pem = (directory / "root-cert.pem").read_bytes()
    assert (directory / "ca-cert.pem").read_bytes() == root_pem
    assert (directory / "cert-chain.pem").read_bytes() == root_pem
    assert ca.trust_bundle_pem == root_pem
    assert ca.chain == ()


def test_created_root_profile(ca: CertificateAuthority) -> None:
    root = x509.load_pem_x509_certificate(ca.trust_bundle_pem)
    assert root.subject == x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshward"),
            x509.NameAttribute(NameOID.COMMON_NAME, "meshward root CA"),
        ]
    )
    assert root.issuer == root.subject
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert (constraints.critical, constraints.value.ca) == (True, True)
    assert (usage.critical, usage.value.key_cert_sign, usage.value.crl_sign) == (True, True, True)
    assert usage.value.digital_signature is False
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=3650, minutes=1)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_reload_uses_the_same_root_and_token_key(ca: CertificateAuthority, tmp_path: Path) -> None:
    again = CertificateAuthority.load_or_create(
        tmp_path / "ca", trust_domain="cluster.local", now=NOW + timedelta(days=1)
    )
    assert again.trust_bundle_pem == ca.trust_bundle_pem
    token = ca.tokens.issue_workload_token(ALICE, node="n1", now=NOW, ttl=TTL)
    assert again.tokens.verify_workload_token(token, now=NOW) == (ALICE, "n1")


def test_signed_leaf_profile(ca: CertificateAuthority, keys: Keys) -> None:
    issued = ca.sign(agent_keys.csr_for(keys.leaf), ALICE, ttl=TTL, now=NOW)
    certs = x509.load_pem_x509_certificates(issued.chain_pem)
    assert len(certs) == 1
    leaf = certs[0]
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ALICE.uri)])
    )
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    assert (constraints.critical, constraints.value.ca) == (True, False)
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical is True
    assert (usage.value.digital_signature, usage.value.key_encipherment) == (True, True)
    assert (usage.value.key_cert_sign, usage.value.crl_sign) == (False, False)
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    root = x509.load_pem_x509_certificate(ca.trust_bundle_pem)
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(keys.leaf.public_key())
    )
    assert 0 < leaf.serial_number < 2**128
    assert (leaf.not_valid_before_utc, leaf.not_valid_after_utc) == (
        NOW - timedelta(minutes=1),
        NOW + TTL,
    )
    assert (issued.not_before, issued.not_after, issued.root_pem) == (
        NOW - timedelta(minutes=1),
        NOW + TTL,
        ca.trust_bundle_pem,
    )
    assert leaf.public_key() == keys.leaf.public_key()
    validator.validate_svid(
        issued.chain_pem, trust_bundle_pem=issued.root_pem, expected=ALICE, now=NOW
    )


def test_names_in_the_csr_are_ignored(ca: CertificateAuthority, keys: Keys) -> None:
    forged = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(
                        "spiffe://cluster.local/ns/kube-system/sa/admin"
                    ),
                    x509.DNSName("bank.example"),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(keys.leaf, hashes.SHA256())
    )
    csr_pem = forged.public_bytes(Encoding.PEM)
    issued = ca.sign(csr_pem, ALICE, ttl=TTL, now=NOW)
    leaf = x509.load_pem_x509_certificate(issued.chain_pem)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ALICE.uri)])
    )
    assert leaf.subject == x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshward")])
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


@pytest.mark.parametrize(
    ("ttl", "ok"),
    [
        (timedelta(seconds=59), False),
        (timedelta(seconds=60), True),
        (timedelta(days=90), True),
        (timedelta(days=90, seconds=1), False),
    ],
)
def test_ttl_bounds(ca: CertificateAuthority, keys: Keys, ttl: timedelta, ok: bool) -> None:
    csr = agent_keys.csr_for(keys.leaf)
    if ok:
        assert ca.sign(csr, ALICE, ttl=ttl, now=NOW).not_after == NOW + ttl
        return
    with pytest.raises(CertificateError, match=r"^TTL "):
        ca.sign(csr, ALICE, ttl=ttl, now=NOW)


def _csr(key: object) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest).public_bytes(Encoding.PEM)  # type: ignore[arg-type]


def _tampered_csr(keys: Keys) -> bytes:
    der = x509.load_pem_x509_csr(agent_keys.csr_for(keys.leaf))
    good = der.public_bytes(Encoding.DER)
    # Flip one bit of the signature (the last bytes of the DER): the proof of possession fails.
    bad = good[:-1] + bytes([good[-1] ^ 1])
    return x509.load_der_x509_csr(bad).public_bytes(Encoding.PEM)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", r"^malformed CSR"),
        (_tampered_csr, r"^CSR signature does not verify"),
        (lambda k: _csr(rsa.generate_private_key(65537, 1024)), r"^RSA key of 1024 bits"),
        (lambda k: _csr(ec.generate_private_key(ec.SECP521R1())), r"^EC curve secp521r1"),
        (lambda k: _csr(ed25519.Ed25519PrivateKey.generate()), r"^CSR key type"),
    ],
    ids=["garbage", "bad signature", "rsa-1024", "p-521", "ed25519"],
)
def test_bad_csr_refused(ca: CertificateAuthority, keys: Keys, make: object, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        ca.sign(make(keys), ALICE, ttl=TTL, now=NOW)  # type: ignore[operator]


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p-256", "p-384"])
def test_accepted_ec_curves(ca: CertificateAuthority, curve: ec.EllipticCurve) -> None:
    issued = ca.sign(_csr(ec.generate_private_key(curve)), ALICE, ttl=TTL, now=NOW)
    assert x509.load_pem_x509_certificate(issued.chain_pem).public_key().curve.name == curve.name  # type: ignore[union-attr]


def test_identity_from_another_trust_domain_refused(ca: CertificateAuthority, keys: Keys) -> None:
    with pytest.raises(CertificateError, match=r"outside trust domain"):
        ca.sign(
            agent_keys.csr_for(keys.leaf),
            SpiffeId("evil.example", "shop", "alice"),
            ttl=TTL,
            now=NOW,
        )


# --- plug-in CA files -------------------------------------------------------------------------


def _plug_in(directory: Path, *, cert: bytes, key: bytes, chain: bytes, root: bytes) -> Path:
    directory.mkdir()
    for name, data in (
        ("ca-cert.pem", cert),
        ("ca-key.pem", key),
        ("cert-chain.pem", chain),
        ("root-cert.pem", root),
    ):
        (directory / name).write_bytes(data)
    return directory


def test_plug_in_intermediate_signs_leaves_that_chain_to_the_root(
    tmp_path: Path, keys: Keys, pki: Pki
) -> None:
    directory = _plug_in(
        tmp_path / "ca",
        cert=pem(pki.intermediate),
        key=key_pem(keys.intermediate),
        chain=pem(pki.intermediate, pki.root),
        root=pem(pki.root),
    )
    ca = CertificateAuthority.load_or_create(directory, trust_domain="cluster.local", now=NOW)
    assert ca.trust_bundle_pem == pem(pki.root)
    assert ca.chain == (pki.intermediate,)
    issued = ca.sign(agent_keys.csr_for(keys.leaf), ALICE, ttl=TTL, now=NOW)
    leaf, intermediate = x509.load_pem_x509_certificates(issued.chain_pem)
    assert intermediate == pki.intermediate
    leaf.verify_directly_issued_by(pki.intermediate)
    validator.validate_svid(
        issued.chain_pem, trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW
    )


def test_leaf_lifetime_capped_by_the_signing_certificate(
    tmp_path: Path, keys: Keys, pki: Pki
) -> None:
    short = make_cert(
        replace(CA_SPEC, subject="short", not_after=NOW + timedelta(hours=2)),
        keys.intermediate,
        pki.root,
        keys.root,
    )
    directory = _plug_in(
        tmp_path / "ca",
        cert=pem(short),
        key=key_pem(keys.intermediate),
        chain=pem(short, pki.root),
        root=pem(pki.root),
    )
    ca = CertificateAuthority.load_or_create(directory, trust_domain="cluster.local", now=NOW)
    issued = ca.sign(agent_keys.csr_for(keys.leaf), ALICE, ttl=TTL, now=NOW)
    assert issued.not_after == NOW + timedelta(hours=2)


def _bad_plug_ins(keys: Keys, pki: Pki) -> list[tuple[str, dict[str, bytes], str]]:
    good = {
        "cert": pem(pki.intermediate),
        "key": key_pem(keys.intermediate),
        "chain": pem(pki.intermediate, pki.root),
        "root": pem(pki.root),
    }
    orphan = make_cert(
        replace(CA_SPEC, subject="orphan"), keys.intermediate, pki.other_root, keys.other_root
    )
    expired = make_cert(
        replace(CA_SPEC, subject="expired", not_after=NOW - timedelta(seconds=1)),
        keys.intermediate,
        pki.root,
        keys.root,
    )
    not_ca = make_cert(
        replace(CA_SPEC, subject="not ca", ca=False), keys.intermediate, pki.root, keys.root
    )
    return [
        ("key mismatch", {**good, "key": key_pem(keys.leaf)}, r"ca-key.pem does not match"),
        (
            "broken chain",
            {**good, "cert": pem(orphan), "chain": pem(orphan, pki.root)},
            r"cert-chain.pem: CN=orphan is not issued by CN=test root",
        ),
        (
            "chain not starting with ca-cert",
            {**good, "chain": pem(pki.root)},
            r"cert-chain.pem does not start with ca-cert.pem",
        ),
        (
            "expired",
            {**good, "cert": pem(expired), "chain": pem(expired, pki.root)},
            r"CN=expired: outside its validity",
        ),
        (
            "not a CA",
            {**good, "cert": pem(not_ca), "chain": pem(not_ca, pki.root)},
            r"CN=not ca: not a CA",
        ),
        ("unreadable", {**good, "root": b"junk"}, r"is unreadable"),
    ]


BAD_PLUG_IN_IDS = [
    "key mismatch",
    "broken chain",
    "chain start",
    "expired",
    "not a CA",
    "unreadable",
]


@pytest.mark.parametrize("index", range(len(BAD_PLUG_IN_IDS)), ids=BAD_PLUG_IN_IDS)
def test_bad_plug_in_files_refused(tmp_path: Path, keys: Keys, pki: Pki, index: int) -> None:
    _, files, message = _bad_plug_ins(keys, pki)[index]
    directory = _plug_in(tmp_path / "ca", **files)
    with pytest.raises(CertificateError, match=message):
        CertificateAuthority.load_or_create(directory, trust_domain="cluster.local", now=NOW)


def test_incomplete_plug_in_refused_rather_than_replaced(tmp_path: Path, pki: Pki) -> None:
    directory = tmp_path / "ca"
    directory.mkdir()
    (directory / "root-cert.pem").write_bytes(pem(pki.root))
    with pytest.raises(
        CertificateError,
        match=r"incomplete: missing \['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem'\]",
    ):
        CertificateAuthority.load_or_create(directory, trust_domain="cluster.local", now=NOW)
    assert sorted(p.name for p in directory.iterdir()) == ["root-cert.pem"]


# --- serving certificate and health -----------------------------------------------------------


def test_server_cert_carries_identity_dns_and_ip(ca: CertificateAuthority, keys: Keys) -> None:
    from ipaddress import IPv4Address

    server = SpiffeId("cluster.local", "meshward-system", "meshward-control-plane")
    issued = ca.issue_server_cert(
        keys.other_leaf.public_key(),
        identity=server,
        dns_names=("meshward-ca",),
        ip_addresses=(IPv4Address("127.0.0.1"),),
        ttl=TTL,
        now=NOW,
    )
    leaf = x509.load_pem_x509_certificate(issued.chain_pem)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName(
            [
                x509.UniformResourceIdentifier(server.uri),
                x509.DNSName("meshward-ca"),
                x509.IPAddress(IPv4Address("127.0.0.1")),
            ]
        )
    )


@pytest.mark.parametrize(
    ("later", "expected"),
    [
        (timedelta(days=1), ()),
        (timedelta(days=3650 - 31), ()),
        (timedelta(days=3650 - 29), (("MW0420", Level.WARNING),)),
        (timedelta(days=3651), (("MW0421", Level.ERROR),)),
    ],
    ids=["fresh", "31 days left", "29 days left", "expired"],
)
def test_health_reports_ca_expiry(
    ca: CertificateAuthority, later: timedelta, expected: tuple[tuple[str, Level], ...]
) -> None:
    assert tuple((d.code, d.level) for d in ca.health(NOW + later)) == expected
