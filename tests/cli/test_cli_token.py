"""`meshward token issue`: a JWT signed by the key store, verifiable with its JWKS; bad
arguments exit 2."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from meshward.cli.main import main
from meshward.samples.idp import keys


def test_issue_signs_with_the_key_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_dir = tmp_path / "idp"
    code = main(
        ["token", "issue", "--issuer", "https://idp", "--sub", "alice", "--aud", "api"]
        + ["--claim", "groups=admin", "--claim", "groups=dev", "--ttl", "5m"]
        + ["--key-dir", str(key_dir), "--alg", "ES256"]
    )
    token = capsys.readouterr().out.strip()
    assert code == 0
    published = keys.KeyStore(key_dir).public_jwks(time.time(), 0)["keys"]
    assert [k["alg"] for k in published] == ["ES256"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(published[0]).key,
        algorithms=["ES256"],
        audience="api",
        issuer="https://idp",
    )
    assert (claims["sub"], claims["groups"], claims["exp"] - claims["iat"]) == (
        "alice",
        ["admin", "dev"],
        300,
    )
    assert jwt.get_unverified_header(token)["kid"] == published[0]["kid"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "0s"], "--ttl '0s' is not a positive duration"),
        (["--ttl", "5 minutes"], "is not a positive duration"),
        (["--claim", "groups"], "claim 'groups' is not name=value"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(
        ["--state-dir", str(tmp_path), "token", "issue", "--issuer", "i", "--sub", "s", *args]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "idp").exists()
