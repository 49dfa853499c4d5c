"""`meshward`: the command line. Parses arguments and hands each command to its module.

validate PATH...           coded diagnostics with file:line; non-zero on errors
up DIR [--detach]          start a mesh from a directory of YAML (one per state dir)
down                       stop it; nothing is left running
status [--json]            pods, addresses, identities, sidecar readiness, mTLS per port
logs WORKLOAD [-n NS]      an app's log (--sidecar: its Envoy's)
exec WORKLOAD [-n NS] -- CMD   run CMD in the workload's network context (netns: inside the pod)
apply -f PATH              validate and hot-apply; a refused change keeps the old config
verify [--json]            probe the running mesh; non-zero on any failed expectation
analyze PATH... | --live   best-practice findings (table, --json, --sarif); see docs/diagnostics.md
demo [--check]             the seed system, verified (the README's `make demo`)
admission audit [PATH...]  AdmissionPolicy violations of the running config (refuses nothing)
extauthz --plugin P ...    external authorization server (ext_authz gRPC/HTTP) for CUSTOM
secret create tls NAME --cert F --key F [--cacert F] [--crl F] | list | delete NAME
                           gateway TLS credentials (Gateway tls.credentialName)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshward.cli import admission, analyze, authz, extauthz, inspect, lifecycle, secret, token
from meshward.runner.network import DEFAULT_POOL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshward", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".meshward"),
        help="state directory of the mesh (default ./.meshward)",
    )
    # --state-dir is accepted before or after the command (`meshward status --state-dir X`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)

    validate = command("validate", help="check config files; non-zero on errors")
    validate.add_argument("paths", nargs="+", type=Path)

    up = command("up", help="start a mesh from a directory of YAML")
    up.add_argument("path", type=Path)
    up.add_argument(
        "--network",
        choices=["loopback", "netns"],
        default="loopback",
        help="loopback (default, no root): pods on 127/8 addresses, capture by convention; "
        "netns (Linux, root): each pod its own network namespace with transparent capture",
    )
    up.add_argument("--detach", action="store_true", help="return once the mesh is ready")
    up.add_argument(
        "--address-pool",
        default=None,
        help=f"loopback: a /16 inside 127.0.0.0/8 (default {DEFAULT_POOL}); netns: "
        "198.18.N.0/24 or 127.N.0.0/16 (pods on 198.18.N.0/24, outside network 198.19.N.0/24; "
        "default N from the state directory)",
    )
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    up.add_argument(
        "--ca-dir",
        type=Path,
        help="plug-in CA: ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem (Istio names); "
        "default: a self-signed root made on first start",
    )

    command("down", help="stop the mesh")

    status = command("status", help="show the running mesh")
    status.add_argument("--json", action="store_true")

    logs = command("logs", help="show a workload's log")
    logs.add_argument("workload")
    logs.add_argument("-n", "--namespace")
    logs.add_argument("--sidecar", action="store_true", help="the sidecar Envoy's log")

    exec_ = command("exec", help="run a command in a workload's network context")
    exec_.add_argument("workload")
    exec_.add_argument("-n", "--namespace")
    exec_.add_argument("argv", nargs="*", help="the command, after --")

    apply = command("apply", help="validate and hot-apply config")
    apply.add_argument("-f", "--filename", dest="paths", type=Path, action="append", required=True)

    verify = command("verify", help="probe the running mesh")
    verify.add_argument("--json", action="store_true")

    analyze_ = command("analyze", help="best-practice findings for config files or the mesh")
    analyze_.add_argument("paths", nargs="*", type=Path)
    analyze_.add_argument("--live", action="store_true", help="analyze the running mesh")
    output = analyze_.add_mutually_exclusive_group()
    output.add_argument("--json", dest="format", action="store_const", const="json")
    output.add_argument("--sarif", dest="format", action="store_const", const="sarif")
    analyze_.set_defaults(format="table")
    analyze_.add_argument("--fail-on", choices=["error", "warning", "info"], default="error")
    analyze_.add_argument("--ca-dir", type=Path, help="CA files to check (default with --live)")
    analyze_.add_argument(
        "--max-cert-ttl", type=analyze.duration_seconds, default=24 * 3600, metavar="DURATION"
    )

    authz = command("authz", help="explain, check and preview authorization")
    authz_commands = authz.add_subparsers(dest="authz_command", required=True, metavar="ACTION")
    explain = authz_commands.add_parser(
        "explain", parents=[common], help="evaluate the policies for one request"
    )
    source = explain.add_mutually_exclusive_group()
    source.add_argument("--from", dest="source", metavar="WORKLOAD", help="the calling workload")
    source.add_argument("--principal", help="a caller identity: <td>/ns/<ns>/sa/<sa>")
    source.add_argument("--plaintext", action="store_true", help="a client outside the mesh")
    explain.add_argument("-n", "--namespace", dest="source_namespace", help="caller's namespace")
    explain.add_argument("--to", required=True, metavar="SERVICE[.NS][:PORT]")
    explain.add_argument("--method", default="GET")
    explain.add_argument("--path", default="/")
    explain.add_argument("--header", action="append", metavar="NAME=VALUE")
    explain.add_argument("--source-ip", help="the caller's address (default: its pod's)")
    explain.add_argument(
        "--jwt",
        metavar="TOKEN",
        help="a bearer token: checked against the fetched JWKS like the sidecar does; its "
        "principal and claims are used",
    )
    explain.add_argument("--exit-code", action="store_true", help="exit 1 when denied")
    check = authz_commands.add_parser(
        "check", parents=[common], help="policies in force in a sidecar's live Envoy config"
    )
    check.add_argument("workload")
    check.add_argument("-n", "--namespace")
    preview = authz_commands.add_parser(
        "preview", parents=[common], help="replay recorded traffic against a candidate policy"
    )
    preview.add_argument("paths", nargs="+", type=Path, metavar="POLICY.yaml")
    preview.add_argument("--limit", type=int, default=1000, help="requests per sidecar")
    preview.add_argument("--exit-code", action="store_true", help="exit 1 if any would be denied")

    admission_command = command("admission", help="admission policies: audit mode")
    admission_actions = admission_command.add_subparsers(
        dest="admission_command", required=True, metavar="ACTION"
    )
    audit = admission_actions.add_parser(
        "audit", parents=[common], help="list violations of every AdmissionPolicy, refuse nothing"
    )
    audit.add_argument("paths", nargs="*", type=Path, help="default: the mesh's config store")
    audit.add_argument("--json", action="store_true")

    extauthz_ = command(
        "extauthz",
        help="external authorization server for CUSTOM policies",
        description=extauthz.HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extauthz.add_parser(extauthz_)
    token.add_parser(commands, common)

    secret.add_commands(commands, common)

    demo = command("demo", help="run the seed system, verified")
    demo.add_argument("--check", action="store_true", help="exit after verification")
    demo.add_argument("--example", type=Path, default=None)
    demo.add_argument(
        "--address-pool", default=None, help=f"as for up (loopback default {DEFAULT_POOL})"
    )
    demo.add_argument(
        "--network",
        choices=["auto", "loopback", "netns"],
        default="auto",
        help="auto (default): netns when root on Linux, loopback otherwise",
    )
    return parser


def _authz(args: argparse.Namespace) -> int:
    handlers = {"explain": authz.explain, "check": authz.check, "preview": authz.preview}
    return handlers[args.authz_command](args)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is the command of `exec`, never meshward's options.
    tail: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1 :]
    args = _parser().parse_args(words)
    if args.command == "exec":
        args.argv = [*args.argv, *tail]
    handlers = {
        "validate": lifecycle.validate,
        "up": lifecycle.up,
        "down": lifecycle.down,
        "apply": lifecycle.apply,
        "status": inspect.status,
        "logs": inspect.logs,
        "exec": inspect.exec_,
        "verify": inspect.verify,
        "demo": lifecycle.demo,
        "analyze": analyze.run,
        "authz": _authz,
        "admission": admission.audit,
        "extauthz": extauthz.run,
        "secret": secret.run,
        "token": token.issue,
    }
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        # `meshward status | head`: the reader left; end quietly, as Unix tools do. (SIGPIPE
        # itself stays ignored: the verifier writes to sockets a refusing peer has closed.)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
