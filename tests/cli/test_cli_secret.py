"""`meshward secret`: a credential is checked before it is stored (exact codes), stored with
a 0600 key, listed, replaced and deleted; a refused credential leaves the stored one as is."""

from __future__ import annotations

import datetime
import json
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshward.cli.main import main
from meshward.samples.edge_pki import Ca
from meshward.state import secrets
from meshward.state.layout import StateDir


def _expired(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.com")])
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(past)
        .not_valid_after(past + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "old.crt", directory / "old.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _run(state: Path, *args: str) -> int:
    return main(["--state-dir", str(state), "secret", *args])


def test_create_list_replace_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = Ca("servers", tmp_path / "pki")
    cert, key, serial = ca.issue("www", dns="www.example.com")
    state = tmp_path / "state"
    assert _run(state, "create", "tls", "www", "--cert", str(cert), "--key", str(key)) == 0
    stored = secrets.directory(StateDir(state), "www")
    assert stat.S_IMODE((stored / secrets.KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.stat().st_mode) == 0o700
    capsys.readouterr()
    assert _run(state, "list", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["dns_names"], row["serial"], row["has_ca"]) == (
        "www",
        ["www.example.com"],
        format(serial, "x"),
        False,
    )
    cert2, key2, serial2 = ca.issue("www2", dns="www.example.com")
    args = ("create", "tls", "www", "--cert", str(cert2), "--key", str(key2))
    assert _run(state, *args, "--cacert", str(ca.cert_file)) == 0
    loaded = secrets.load(StateDir(state), "www")
    assert loaded is not None and loaded.ca == ca.cert_file.read_bytes()
    assert secrets.info(loaded).serial == format(serial2, "x")
    assert _run(state, "delete", "www") == 0
    assert secrets.names_in(StateDir(state)) == ()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("not-pem", "MW0450"),
        ("wrong-key", "MW0451"),
        ("expired", "MW0452"),
        ("bad-name", "MW0454"),
        ("missing-file", "MW0450"),
    ],
)
def test_refused_credentials_have_codes_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, code: str
) -> None:
    ca = Ca("servers", tmp_path / "pki")
    cert, key, _ = ca.issue("www", dns="www.example.com")
    _, other_key, _ = ca.issue("other", dns="other.example.com")
    state = tmp_path / "state"
    assert _run(state, "create", "tls", "www", "--cert", str(cert), "--key", str(key)) == 0
    name, cert_arg, key_arg = "www", cert, key
    if case == "not-pem":
        cert_arg = tmp_path / "junk.crt"
        cert_arg.write_text("not a certificate")
    elif case == "wrong-key":
        key_arg = other_key
    elif case == "expired":
        cert_arg, key_arg = _expired(tmp_path)
    elif case == "bad-name":
        name = "Bad_Name"
    else:
        key_arg = tmp_path / "absent.key"
    capsys.readouterr()
    assert _run(state, "create", "tls", name, "--cert", str(cert_arg), "--key", str(key_arg)) == 1
    assert re.findall(r"MW\d{4}", capsys.readouterr().err) == [code]
    assert secrets.load(StateDir(state), "www") == secrets.TlsSecret(
        "www", cert.read_bytes(), key.read_bytes()
    )


def test_delete_unknown_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "delete", "nope") == 1
    assert re.findall(r"MW\d{4}", capsys.readouterr().err) == ["MW0453"]
