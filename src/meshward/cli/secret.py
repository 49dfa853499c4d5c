"""`meshward secret create tls|list|delete`: the gateways' credential store (Istio's
`credentialName` secrets, kept in the state directory: state/secrets.py).

Called by `meshward.cli.main`. `create tls NAME --cert F --key F [--cacert F] [--crl F]` checks
the files (PEM, key matches certificate, valid now) and stores them; replacing an existing
secret is how a certificate is rotated: a running gateway serves the new one within about a
second, without a restart. Problems are coded diagnostics (MW045x) and exit 1; the stored
secret is then unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from meshward.diagnostics import Diagnostic, Location, catalog, has_errors
from meshward.state import secrets
from meshward.state.layout import StateDir


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register `secret` and its actions on the main parser."""
    secret = commands.add_parser(
        "secret", parents=[common], help="TLS credentials for gateways (credentialName)"
    )
    actions = secret.add_subparsers(dest="secret_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="store a credential")
    kinds = create.add_subparsers(dest="secret_kind", required=True, metavar="KIND")
    tls = kinds.add_parser(
        "tls",
        parents=[common],
        help="a certificate and key (+ CA bundle and CRL for MUTUAL)",
        description="Store (or replace) TLS credential NAME for Gateway tls.credentialName. "
        "--cacert makes NAME-cacert available for MUTUAL and OPTIONAL_MUTUAL servers.",
    )
    tls.add_argument("name", metavar="NAME")
    tls.add_argument("--cert", type=Path, required=True, help="PEM certificate chain, leaf first")
    tls.add_argument("--key", type=Path, required=True, help="PEM private key (unencrypted)")
    tls.add_argument(
        "--cacert", type=Path, help="PEM CA bundle that client certificates must chain to"
    )
    tls.add_argument("--crl", type=Path, help="PEM certificate revocation list of that CA")
    listing = actions.add_parser("list", parents=[common], help="stored credentials")
    listing.add_argument("--json", action="store_true")
    delete = actions.add_parser("delete", parents=[common], help="remove a credential")
    delete.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    if args.secret_command == "create":
        return _create(state, args)
    if args.secret_command == "list":
        return _list(state, json_output=args.json)
    if secrets.delete(state, args.name):
        print(f"secret {args.name} deleted")
        return 0
    return _fail([_missing(args.name)])


def _missing(name: str) -> Diagnostic:
    return Diagnostic(
        code="MW0453",
        level=catalog.lookup("MW0453").level,
        resource=f"secret {name}",
        location=Location(field="name"),
        message=f"no secret {name} in the store",
    )


def _fail(found: list[Diagnostic]) -> int:
    for diagnostic in found:
        print(str(diagnostic), file=sys.stderr)
    return 1


def _read(path: Path | None, field: str, name: str, found: list[Diagnostic]) -> bytes:
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except OSError as error:
        found.append(
            Diagnostic(
                code="MW0450",
                level=catalog.lookup("MW0450").level,
                resource=f"secret {name}",
                location=Location(file=str(path), field=field),
                message=f"cannot read {path}: {error.strerror}",
            )
        )
        return b""


def _create(state: StateDir, args: argparse.Namespace) -> int:
    found: list[Diagnostic] = []
    files = [
        _read(p, f, args.name, found)
        for p, f in (
            (args.cert, "cert"),
            (args.key, "key"),
            (args.cacert, "cacert"),
            (args.crl, "crl"),
        )
    ]
    if found:
        return _fail(found)
    secret = secrets.TlsSecret(args.name, *files)
    problems = list(secrets.check(secret, datetime.now(UTC)))
    if has_errors(problems):
        return _fail(problems)
    secrets.store(state, secret)
    info = secrets.info(secret)
    print(f"secret {args.name} stored: {info.subject} serial {info.serial} until {info.not_after}")
    return 0


def _list(state: StateDir, *, json_output: bool) -> int:
    rows = []
    for name in secrets.names_in(state):
        stored = secrets.load(state, name)
        if stored is not None:
            rows.append(secrets.info(stored))
    if json_output:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    for row in rows:
        extras = "".join(f" +{x}" for x, on in (("cacert", row.has_ca), ("crl", row.has_crl)) if on)
        print(f"{row.name}\t{row.subject}\tserial {row.serial}\tuntil {row.not_after}{extras}")
    if not rows:
        print("no secrets")
    return 0
