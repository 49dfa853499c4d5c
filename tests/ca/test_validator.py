"""The independent SVID validator: a valid chain passes; changing one thing fails one rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from ca_testkit import ALICE, CA_SPEC, NOW, CertSpec, Keys, Pki, make_cert, pem

from meshward.ca import validator
from meshward.errors import CertificateError
from meshward.identity import SpiffeId

VALID = CertSpec()


def test_valid_leaf_directly_under_root(keys: Keys, pki: Pki) -> None:
    leaf = make_cert(VALID, keys.leaf, pki.root, keys.root)
    validator.validate_svid(pem(leaf), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW)


def test_valid_leaf_through_intermediate(keys: Keys, pki: Pki) -> None:
    leaf = make_cert(VALID, keys.leaf, pki.intermediate, keys.intermediate)
    validator.validate_svid(
        pem(leaf, pki.intermediate), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW
    )


LEAF_MUTATIONS = [
    (
        "wrong URI SAN",
        replace(VALID, uris=("spiffe://cluster.local/ns/shop/sa/bob",)),
        "uri-san-match",
    ),
    (
        "two URI SANs",
        replace(VALID, uris=(ALICE.uri, "spiffe://cluster.local/ns/a/sa/b")),
        "uri-san-count",
    ),
    ("no URI SAN", replace(VALID, uris=()), "uri-san-count"),
    (
        "not a SPIFFE URI",
        replace(VALID, uris=("https://cluster.local/ns/shop/sa/alice",)),
        "spiffe-id-syntax",
    ),
    (
        "wrong trust domain",
        replace(VALID, uris=("spiffe://evil.example/ns/shop/sa/alice",)),
        "trust-domain",
    ),
    ("DNS SAN", replace(VALID, dns=("alice.shop.svc",)), "no-dns-san"),
    ("CA:true leaf", replace(VALID, ca=True), "leaf-not-ca"),
    ("missing digitalSignature", replace(VALID, digital_signature=False), "leaf-digital-signature"),
    ("keyCertSign on leaf", replace(VALID, key_cert_sign=True), "leaf-no-cert-sign"),
    ("cRLSign on leaf", replace(VALID, crl_sign=True), "leaf-no-cert-sign"),
    ("expired", replace(VALID, not_after=NOW - timedelta(seconds=1)), "expired"),
    ("not yet valid", replace(VALID, not_before=NOW + timedelta(seconds=1)), "not-yet-valid"),
]


@pytest.mark.parametrize(
    ("spec", "rule"), [m[1:] for m in LEAF_MUTATIONS], ids=[m[0] for m in LEAF_MUTATIONS]
)
def test_leaf_mutation_fails_its_rule(keys: Keys, pki: Pki, spec: CertSpec, rule: str) -> None:
    leaf = make_cert(spec, keys.leaf, pki.root, keys.root)
    with pytest.raises(CertificateError) as caught:
        validator.validate_svid(pem(leaf), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW)
    assert str(caught.value).split(":")[0] == rule


def test_signed_by_another_root_fails_chain(keys: Keys, pki: Pki) -> None:
    leaf = make_cert(VALID, keys.leaf, pki.other_root, keys.other_root)
    with pytest.raises(CertificateError, match=r"^chain-verify: "):
        validator.validate_svid(pem(leaf), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW)


def test_issuer_name_right_but_signature_wrong_fails_chain(keys: Keys, pki: Pki) -> None:
    # Names the real root as issuer but is signed by another key: only the signature tells.
    leaf = make_cert(VALID, keys.leaf, pki.root, keys.other_root)
    with pytest.raises(CertificateError, match=r"^chain-verify: "):
        validator.validate_svid(pem(leaf), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW)


INTERMEDIATE_MUTATIONS = [
    ("intermediate not CA", replace(CA_SPEC, ca=False), "intermediate-ca"),
    ("intermediate without basicConstraints", replace(CA_SPEC, ca=None), "intermediate-ca"),
    (
        "intermediate without keyCertSign",
        replace(CA_SPEC, key_cert_sign=False),
        "intermediate-key-cert-sign",
    ),
    ("intermediate expired", replace(CA_SPEC, not_after=NOW - timedelta(seconds=1)), "expired"),
]


@pytest.mark.parametrize(
    ("spec", "rule"),
    [m[1:] for m in INTERMEDIATE_MUTATIONS],
    ids=[m[0] for m in INTERMEDIATE_MUTATIONS],
)
def test_intermediate_mutation_fails_its_rule(
    keys: Keys, pki: Pki, spec: CertSpec, rule: str
) -> None:
    intermediate = make_cert(
        replace(spec, subject="bad intermediate"), keys.intermediate, pki.root, keys.root
    )
    leaf = make_cert(VALID, keys.leaf, intermediate, keys.intermediate)
    with pytest.raises(CertificateError) as caught:
        validator.validate_svid(
            pem(leaf, intermediate), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW
        )
    assert str(caught.value).split(":")[0] == rule


def test_stray_intermediate_fails_chain(keys: Keys, pki: Pki) -> None:
    leaf = make_cert(VALID, keys.leaf, pki.root, keys.root)
    with pytest.raises(CertificateError, match=r"^chain-verify: intermediates not on the path"):
        validator.validate_svid(
            pem(leaf, pki.intermediate), trust_bundle_pem=pem(pki.root), expected=ALICE, now=NOW
        )


@pytest.mark.parametrize(
    ("chain", "bundle"), [(b"not pem", None), (None, b"")], ids=["garbage chain", "empty bundle"]
)
def test_unparsable_input_fails_parse(
    keys: Keys, pki: Pki, chain: bytes | None, bundle: bytes | None
) -> None:
    leaf = make_cert(VALID, keys.leaf, pki.root, keys.root)
    with pytest.raises(CertificateError, match=r"^chain-parse: "):
        validator.validate_svid(
            pem(leaf) if chain is None else chain,
            trust_bundle_pem=pem(pki.root) if bundle is None else bundle,
            expected=ALICE,
            now=NOW,
        )


SERVER = SpiffeId("cluster.local", "meshward-system", "meshward-control-plane")


@pytest.mark.parametrize(
    ("dns", "rule"), [(("meshward-ca",), None), (("other",), "dns-san"), ((), "dns-san")]
)
def test_serving_certificate_needs_its_dns_name(
    keys: Keys, pki: Pki, dns: tuple[str, ...], rule: str | None
) -> None:
    leaf = make_cert(replace(VALID, uris=(SERVER.uri,), dns=dns), keys.leaf, pki.root, keys.root)

    def check() -> None:
        validator.validate_serving_certificate(
            pem(leaf),
            trust_bundle_pem=pem(pki.root),
            expected=SERVER,
            dns_name="meshward-ca",
            now=NOW,
        )

    if rule is None:
        check()
        return
    with pytest.raises(CertificateError) as caught:
        check()
    assert str(caught.value).split(":")[0] == rule
