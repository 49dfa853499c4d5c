"""`meshward extauthz`: run the external authorization server (meshward/extauthz/).

Called by cli/main.py. Reads and checks the plugin's input first (a rule file with a coded
diagnostic per problem, exit 1), then serves until interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from meshward.config import extauthz_rules
from meshward.diagnostics import Diagnostic
from meshward.extauthz.decision_log import DecisionLog
from meshward.extauthz.introspection import IntrospectionPlugin, IntrospectionSettings
from meshward.extauthz.plugin import Plugin
from meshward.extauthz.rules import RulesPlugin
from meshward.extauthz.server import serve

HELP = """\
Serve Envoy's ext_authz protocol for AuthorizationPolicies with action CUSTOM: gRPC
(envoyExtAuthzGrpc) on --listen, and HTTP (envoyExtAuthzHttp) on --http-listen if given.

plugins:
  rules          first matching rule of --rules FILE decides (YAML or JSON):
                   default: {allow: false, status: 403, body: denied}
                   rules:
                   - name: admin-needs-key
                     paths: ["/admin*"]      methods: ["GET"]
                     principals: ["cluster.local/ns/web/sa/frontend"]
                     headers: {x-api-key: "*"}
                     allow: false   status: 403   body: "admin needs a key"
                     headersToDownstream: {x-denied-by: rules}
                     headersToUpstream: {x-checked-by: rules}
  introspection  OAuth 2.0 token introspection (RFC 7662) of the Bearer token at
                 --introspection-url; allow when active and holding every --require-scope
  MODULE:FACTORY your own: FACTORY() returns an object with `name` and
                 `check(facts: meshward.extauthz.plugin.Facts) -> plugin.Decision`
"""


def add_parser(command: argparse.ArgumentParser) -> None:
    command.add_argument("--listen", metavar="ADDR:PORT", help="gRPC ext_authz address")
    command.add_argument("--http-listen", metavar="ADDR:PORT", help="HTTP ext_authz address")
    command.add_argument("--http-path-prefix", default="", help="strip this from HTTP paths")
    command.add_argument(
        "--plugin",
        required=True,
        metavar="rules|introspection|MODULE:FACTORY",
        help="a built-in plugin, or your own: FACTORY() returns a meshward.extauthz.plugin.Plugin",
    )
    command.add_argument("--rules", type=Path, metavar="FILE", help="rule file (rules plugin)")
    command.add_argument("--introspection-url", metavar="URL", help="RFC 7662 endpoint")
    command.add_argument("--client-id", default="", help="client id for the endpoint (Basic)")
    command.add_argument("--client-secret", default="", help="client secret (Basic)")
    command.add_argument(
        "--require-scope", action="append", default=[], metavar="SCOPE", help="repeatable"
    )
    command.add_argument(
        "--require-claim", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    command.add_argument("--cache-ttl", type=float, default=30.0, help="seconds (never past exp)")
    command.add_argument(
        "--decision-log", metavar="FILE", help="append JSON lines to FILE (- for stdout)"
    )


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _usage(message: str) -> int:
    print(f"meshward extauthz: {message}", file=sys.stderr)
    return 2


def _plugin(args: argparse.Namespace) -> Plugin | int:
    if ":" in args.plugin:
        return _own_plugin(args.plugin)
    if args.plugin not in ("rules", "introspection"):
        return _usage(f"unknown plugin {args.plugin!r}: rules, introspection or MODULE:FACTORY")
    if args.plugin == "rules":
        if args.rules is None:
            return _usage("--plugin rules needs --rules FILE")
        try:
            text = args.rules.read_text(encoding="utf-8")
        except OSError as error:
            return _usage(f"cannot read {args.rules}: {error.strerror}")
        rules, diagnostics = extauthz_rules.load(text, str(args.rules))
        _print(diagnostics)
        return 1 if rules is None else RulesPlugin(rules)
    if not args.introspection_url:
        return _usage("--plugin introspection needs --introspection-url URL")
    claims = []
    for written in args.require_claim:
        name, equals, value = written.partition("=")
        if not equals or not name:
            return _usage(f"--require-claim {written!r} is not NAME=VALUE")
        claims.append((name, value))
    return IntrospectionPlugin(
        IntrospectionSettings(
            url=args.introspection_url,
            client_id=args.client_id,
            client_secret=args.client_secret,
            required_scopes=tuple(args.require_scope),
            required_claims=tuple(claims),
            cache_ttl_seconds=args.cache_ttl,
        )
    )


def _own_plugin(written: str) -> Plugin | int:
    """`MODULE:FACTORY`: import MODULE, call FACTORY() for the plugin (see plugin.py)."""
    module_name, _, factory_name = written.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        return _usage(f"cannot load plugin {written!r}: {error}")
    if not callable(factory):
        return _usage(f"{written} is not a factory (callable) of plugins")
    plugin = factory()
    if not (isinstance(getattr(plugin, "name", None), str) and callable(plugin.check)):
        return _usage(f"{written} returned {plugin!r}, which has no `name` and `check(facts)`")
    return plugin  # type: ignore[no-any-return]


def _print(diagnostics: tuple[Diagnostic, ...]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    grpc_listen = _address(args.listen) if args.listen else None
    http_listen = _address(args.http_listen) if args.http_listen else None
    if (args.listen and grpc_listen is None) or (args.http_listen and http_listen is None):
        return _usage("addresses are ADDR:PORT")
    if grpc_listen is None and http_listen is None:
        return _usage("give --listen and/or --http-listen")
    plugin = _plugin(args)
    if isinstance(plugin, int):
        return plugin
    if args.decision_log == "-":
        log = DecisionLog.stdout()
    else:
        log = DecisionLog(Path(args.decision_log) if args.decision_log else None)
    running = serve(plugin, log, grpc_listen, http_listen, args.http_path_prefix)
    where = ", ".join(
        f"{kind} on port {port}"
        for kind, port in (("gRPC", running.grpc_port), ("HTTP", running.http_port))
        if port
    )
    print(f"meshward extauthz: plugin {plugin.name}, {where}", flush=True)
    try:
        running.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()
    return 0
