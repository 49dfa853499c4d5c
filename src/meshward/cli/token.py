"""`meshward token issue`: print a signed development JWT for tests and demos.

Called by cli/main.py. Signs with the signing key of the IdP sample's key store
(`--key-dir`, default `<state-dir>/idp`; the same directory `python -m
meshward.samples.idp --key-dir` serves as its JWKS), creating the first key (RS256, or
`--alg ES256`) if the directory has none. The token's `iss` must be the issuer a
RequestAuthentication names, for example the IdP sample's URL.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from meshward.config.duration import parse_duration
from meshward.samples.idp import keys, tokens


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    token = commands.add_parser("token", parents=[common], help="development JWTs")
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    issue = actions.add_parser(
        "issue",
        parents=[common],
        help="print a JWT signed by the IdP sample's key store",
        description="Print a JWT signed with the signing key of an IdP sample key store "
        "(the directory `python -m meshward.samples.idp --key-dir` publishes as its JWKS; "
        "created with one key if empty). --issuer must be the issuer a RequestAuthentication "
        "names.",
    )
    issue.add_argument("--issuer", required=True, help="the `iss` claim (the IdP's issuer URL)")
    issue.add_argument("--sub", required=True, help="the `sub` claim")
    issue.add_argument("--aud", action="append", default=[], help="an audience (repeatable)")
    issue.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra claim; a JSON value is read as JSON; a name given twice makes a list",
    )
    issue.add_argument("--ttl", default="5m", help="lifetime as a Go duration (default 5m)")
    issue.add_argument("--key-dir", type=Path, help="key store (default <state-dir>/idp)")
    issue.add_argument(
        "--alg",
        choices=keys.ALGORITHMS,
        default="RS256",
        help="algorithm of a key created for an empty key store",
    )


def issue(args: argparse.Namespace) -> int:
    ttl = parse_duration(args.ttl)
    if ttl is None or ttl <= 0:
        print(
            f"meshward token issue: --ttl {args.ttl!r} is not a positive duration like 5m",
            file=sys.stderr,
        )
        return 2
    try:
        claims = tokens.parse_claims(args.claim)
    except ValueError as error:
        print(f"meshward token issue: {error}", file=sys.stderr)
        return 2
    store = keys.KeyStore(args.key_dir or args.state_dir / "idp")
    now = time.time()
    store.ensure(now, args.alg)
    print(
        tokens.issue(
            store,
            issuer=args.issuer,
            subject=args.sub,
            now=now,
            ttl_seconds=float(ttl),
            audiences=tuple(args.aud),
            claims=claims,
        )
    )
    return 0
