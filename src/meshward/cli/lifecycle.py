"""CLI commands that change the mesh: validate, up, down, apply, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshward import admission
from meshward.cli import inspect
from meshward.config import load
from meshward.config.resources import ConfigSet, Meta
from meshward.config.store import merge, read_paths, read_store, write_store
from meshward.diagnostics import Diagnostic, Level, Location, has_errors
from meshward.errors import MeshwardError
from meshward.model import allocate, build, replicas
from meshward.netns.fabric import Fabric
from meshward.netns.naming import MeshNet
from meshward.process import kill_and_wait, pid_alive
from meshward.runner.network import DEFAULT_POOL, Loopback, Netns, NetworkMode
from meshward.runner.readiness import wait_ready
from meshward.runner.runner import Runner, missing_credentials, missing_origination_credentials
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json


def print_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        stream = sys.stderr if diagnostic.level is Level.ERROR else sys.stdout
        print(str(diagnostic), file=stream)


def validate(args: argparse.Namespace) -> int:
    """Config diagnostics, then (if the set is usable) the model's: references between
    resources, policy conflicts — everything `up` or `apply` would say, without starting."""
    config = load(args.paths)
    diagnostics = list(config.diagnostics)
    if not has_errors(diagnostics):
        diagnostics += build(config, allocate(replicas(config.workloads), {}))[1]
    print_diagnostics(diagnostics)
    errors = sum(d.level is Level.ERROR for d in diagnostics)
    if errors:
        print(f"{errors} error(s); nothing would be applied", file=sys.stderr)
        return 1
    count = (
        len(config.services)
        + len(config.workloads)
        + len(config.peer_authentications)
        + len(config.destination_rules)
        + len(config.authorization_policies)
        + len(config.admission_policies)
        + len(config.gateways)
        + len(config.virtual_services)
        + (config.mesh.meta is not None)
    )
    print(f"ok: {count} resources valid")
    return 0


def network_mode(name: str, pool: str | None, state: StateDir) -> NetworkMode:
    """The runner's network mode from `--network` and `--address-pool` (StateError if the
    pool does not suit the mode). netns without a pool: N from the state directory's path,
    so two meshes on one host get distinct subnets."""
    if name == "netns":
        if pool is None:
            index = 1 + int(MeshNet.prefix_digest(state.root), 16) % 253
            pool = f"198.18.{index}.0/24"
        return Netns(pool, state.root)
    return Loopback(pool or DEFAULT_POOL)


def netns_available() -> bool:
    """True when the netns mode can run here (Linux, root, tools present)."""
    try:
        Netns("198.18.1.0/24", Path(".")).check()
    except MeshwardError:
        return False
    return True


def up(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    try:
        Runner.claim(state)
        network = network_mode(args.network, args.address_pool, state)
        network.check()
        diagnostics = Runner.seed(state, [args.path])
        if args.ca_dir is not None and not has_errors(diagnostics):
            trust_domain = load([state.config]).mesh.trust_domain
            Runner.install_ca(state, args.ca_dir, trust_domain)
    except MeshwardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not has_errors(diagnostics):  # a Gateway credential not created yet: said, not refused
        stored = load([state.config])
        diagnostics = (
            *diagnostics,
            *missing_credentials(state, stored),
            *missing_origination_credentials(state, stored),
        )
    print_diagnostics(diagnostics)
    if has_errors(diagnostics):
        print("refused: the config has errors; nothing was started", file=sys.stderr)
        return 1
    if args.detach:
        return start_detached(state, args.path, network, args.timeout)
    return _run_foreground(state, network, args.timeout)


def start_detached(state: StateDir, path: Path, network: NetworkMode, timeout: float) -> int:
    state.logs.mkdir(parents=True, exist_ok=True)
    with (state.logs / "runner.log").open("ab") as log:
        child = subprocess.Popen(
            [
                *(sys.executable, "-m", "meshward.cli.main", "--state-dir", str(state.root)),
                *("up", str(path), "--address-pool", network.pool, "--network", network.name),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    problems = wait_ready(state, timeout, alive=lambda: child.poll() is None)
    if problems:
        print("mesh not ready:\n  " + "\n  ".join(problems), file=sys.stderr)
        print(f"logs: {state.logs}", file=sys.stderr)
        return 1
    print(f"mesh ready (runner pid {child.pid}); `meshward status` to inspect")
    return 0


def _run_foreground(state: StateDir, network: NetworkMode, timeout: float) -> int:
    async def main() -> None:
        runner = Runner(state, network)
        task = asyncio.create_task(runner.run())
        problems = await asyncio.to_thread(wait_ready, state, timeout, lambda: not task.done())
        if problems:
            print("mesh not ready:\n  " + "\n  ".join(problems), file=sys.stderr)
        else:
            inspect.print_status(state)
            print("\nmesh running; Ctrl-C stops it", flush=True)
        await task

    asyncio.run(main())
    return 0


def down(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    stopped = stop_mesh(state)
    print("mesh stopped" if stopped else "no mesh running")
    return 0


def stop_mesh(state: StateDir) -> bool:
    """Stop the runner by PID; then any leftover of a runner that was killed (its control
    plane, agent or Envoys, each by the PID it recorded)."""
    stopped = False
    runner = read_json(state.runner) or {}
    if runner.get("pid"):
        stopped = kill_and_wait(int(runner["pid"]), timeout=30)
    leftovers = []
    for record in (read_json(state.agent), read_json(state.control_plane)):
        if record and record.get("pid"):
            leftovers.append(int(record["pid"]))
    for pod in ((read_json(state.agent) or {}).get("pods") or {}).values():
        if pod.get("envoy_pid"):
            leftovers.append(int(pod["envoy_pid"]))
    for pid in leftovers:
        if pid_alive(pid) and _is_meshward_process(pid, state):
            stopped = kill_and_wait(pid) or stopped
    # netns mode: a runner that was killed left its namespaces, links and hosts files (and
    # the apps inside); remove exactly this mesh's, found by its recorded prefix.
    net = MeshNet.from_runner(runner)
    if net is not None and Fabric(net).destroy():
        stopped = True
    return stopped


def _is_meshward_process(pid: int, state: StateDir) -> bool:
    """Guard against PID reuse: only stop a process whose command line names this mesh."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return str(state.root) in cmdline or "envoy" in cmdline


def _metas(config: ConfigSet) -> dict[str, Meta]:
    resources: list[Any] = [
        *config.services,
        *config.workloads,
        *config.peer_authentications,
        *config.destination_rules,
        *config.authorization_policies,
        *config.admission_policies,
    ]
    metas = {r.meta.ref: r.meta for r in resources}
    if config.mesh.meta is not None:
        metas[config.mesh.meta.ref] = config.mesh.meta
    return metas


def relocate(
    problems: Sequence[Diagnostic], candidate: ConfigSet, incoming: ConfigSet
) -> list[Diagnostic]:
    """Point diagnostics about resources the user is applying at the user's own file and line
    (they were found in the merged candidate store, whose files the user never sees)."""
    stored, theirs = _metas(candidate), _metas(incoming)
    moved = []
    for found in problems:
        old, new = stored.get(found.resource), theirs.get(found.resource)
        if old is not None and new is not None and found.location.file == old.file:
            line = found.location.line - old.line + new.line
            location = Location(new.file, line, found.location.field)
            found = dataclasses.replace(found, location=location)  # noqa: PLW2901
        moved.append(found)
    return moved


def apply(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    runner = read_json(state.runner) or {}
    if not runner.get("pid") or not pid_alive(int(runner["pid"])):
        print(
            "error: no mesh running from this state directory (meshward up first)", file=sys.stderr
        )
        return 1
    incoming = load(args.paths)
    print_diagnostics(incoming.diagnostics)
    if has_errors(incoming.diagnostics):
        print("MW0402 refused: the change has errors; running configuration kept", file=sys.stderr)
        return 1
    merged = merge(read_store(state.config), read_paths(args.paths))
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / "config"
        write_store(candidate, merged)
        config = load([candidate])
        problems = list(config.diagnostics)
        if not has_errors(problems):
            previous = read_mesh(state)
            addresses = allocate(
                replicas(config.workloads), previous.addresses() if previous else {}, runner["pool"]
            )
            problems += build(config, addresses)[1]
            problems += missing_origination_credentials(state, config)
        if not has_errors(problems):
            problems += admission.admit(config, Runner.stored(state))
            problems = relocate(problems, config, incoming)
    if any(d.code.startswith("MW06") for d in problems):
        print_diagnostics([d for d in problems if d.code.startswith("MW06")])
        if has_errors(problems):
            print(
                "refused by admission policy: running configuration kept (docs/admission.md)",
                file=sys.stderr,
            )
            return 1
    if has_errors(problems):
        print_diagnostics([d for d in problems if d.level is Level.ERROR])
        print(
            "MW0402 refused: the merged config has errors; running configuration kept",
            file=sys.stderr,
        )
        return 1
    before = (read_json(state.control_plane) or {}).get("generation", 0)
    write_store(state.config, merged)
    os.kill(int(runner["pid"]), signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        plane = read_json(state.control_plane) or {}
        if plane.get("generation", 0) > before:
            break
        time.sleep(0.1)
    else:
        print("applied, but the control plane has not reloaded yet", file=sys.stderr)
        return 1
    problems_left = wait_ready(state, 60, alive=lambda: pid_alive(int(runner["pid"])))
    if problems_left:
        print("applied; not ready yet:\n  " + "\n  ".join(problems_left), file=sys.stderr)
        return 1
    print(f"applied: generation {plane['generation']}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from meshward.cli import demo as demo_module

    return demo_module.run(args)
