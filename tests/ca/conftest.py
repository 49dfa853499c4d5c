"""CA test fixtures: keys generated once per session and a test PKI built from them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ca_testkit import CA_SPEC, Keys, Pki, make_cert
from cryptography.hazmat.primitives.asymmetric import ec


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(*(ec.generate_private_key(ec.SECP256R1()) for _ in range(7)))


@pytest.fixture(scope="session")
def pki(keys: Keys) -> Pki:
    root = make_cert(replace(CA_SPEC, subject="test root"), keys.root, None, keys.root)
    intermediate = make_cert(
        replace(CA_SPEC, subject="test intermediate"), keys.intermediate, root, keys.root
    )
    other = make_cert(
        replace(CA_SPEC, subject="other root"), keys.other_root, None, keys.other_root
    )
    return Pki(root, intermediate, other)
