"""`meshward analyze PATH... | --live`: best-practice findings for a config set or the running
mesh, as a table, JSON or SARIF; exit 1 when any finding is at or above `--fail-on`.

Files: the config set is loaded and given loopback addresses (as `validate` does). `--live`:
the running mesh's config store, its pod addresses (mesh.json), its network mode
(runner.json) and its CA directory. Exit codes: 0 clean (below --fail-on), 1 findings at or
above --fail-on or a config set with errors, 2 no mesh state for --live.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from meshward import __version__
from meshward.analyze import LiveFacts, analyze, ca_health
from meshward.analyze.report import as_json, failing, sarif, table
from meshward.config import load
from meshward.config.duration import parse_duration
from meshward.config.resources import ConfigSet
from meshward.diagnostics import Diagnostic, Level, has_errors
from meshward.model import allocate, build, replicas
from meshward.model.ir import PodAddress, PodKey
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json


def run(args: argparse.Namespace) -> int:
    live: LiveFacts | None = None
    ca_dir: Path | None = args.ca_dir
    if args.live and args.paths:
        print("error: give config PATHs or --live, not both", file=sys.stderr)
        return 2
    if args.live:
        state = StateDir(args.state_dir)
        runner = read_json(state.runner)
        mesh = read_mesh(state)
        if runner is None or mesh is None or not state.config.is_dir():
            print(f"error: no mesh state in {state.root} (meshward up first)", file=sys.stderr)
            return 2
        config = load([state.config])
        addresses: Mapping[PodKey, PodAddress] = mesh.addresses()
        live = LiveFacts(network=str(runner.get("network", "")), source=str(state.runner))
        ca_dir = ca_dir or state.ca
    elif args.paths:
        config = load(args.paths)
        addresses = {}
        if not has_errors(config.diagnostics):
            addresses = allocate(replicas(config.workloads), {})
    else:
        print("error: give config PATHs or --live", file=sys.stderr)
        return 2
    if has_errors(config.diagnostics):
        _emit(args, config.diagnostics)
        print("the config set has errors; fix them before analysis", file=sys.stderr)
        return 1
    findings = _findings(config, addresses, live, ca_dir, args.max_cert_ttl)
    _emit(args, findings)
    return 1 if failing(findings, Level(args.fail_on)) else 0


def _findings(
    config: ConfigSet,
    addresses: Mapping[PodKey, PodAddress],
    live: LiveFacts | None,
    ca_dir: Path | None,
    max_cert_ttl: int,
) -> tuple[Diagnostic, ...]:
    model, model_findings = build(config, addresses)
    health: tuple[Diagnostic, ...] = ()
    if ca_dir is not None:
        now = datetime.now(UTC)
        health = ca_health(ca_dir, trust_domain=config.mesh.trust_domain, now=now)
    return analyze(
        config,
        model,
        live=live,
        model_findings=model_findings,
        max_cert_ttl_seconds=max_cert_ttl,
        ca_health=health,
    )


def _emit(args: argparse.Namespace, findings: tuple[Diagnostic, ...]) -> None:
    if args.format == "json":
        print(json.dumps(as_json(findings), indent=2))
    elif args.format == "sarif":
        print(json.dumps(sarif(findings, __version__), indent=2))
    else:
        print(table(findings))


def duration_seconds(text: str) -> int:
    """argparse type of `--max-cert-ttl`: a Go duration ("24h", "90m") in whole seconds."""
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration like 24h")
    return int(seconds)
