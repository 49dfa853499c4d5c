"""`meshward demo` (the README's `make demo`): the seed system, secured and verified.

Starts examples/simple-system on its own state directory, waits until every sidecar is ready,
shows one request travelling user → user-service → database and location-service over mTLS,
runs the verifier, prints the report and what to try next, and stays up until Ctrl-C
(`--check`: exits after verification, non-zero on failure).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from meshward.cli import analyze as analyze_command
from meshward.cli import (
    app_client,
    authz,
    demo_egress,
    demo_ingress,
    end_user_demo,
    inspect,
    lifecycle,
)
from meshward.errors import MeshwardError
from meshward.runner.runner import Runner
from meshward.samples.simple_system import credentials
from meshward.state.layout import StateDir
from meshward.state.mesh import PodRecord, read_mesh
from meshward.verify import access_log, report
from meshward.verify.probes import run_probes
from meshward.xds.access_log import denial

EXAMPLE = Path("examples/simple-system")


def run(args: argparse.Namespace) -> int:
    example = args.example or EXAMPLE
    if not example.is_dir():
        print(f"error: example directory {example} not found (run from the repository root)")
        return 1
    state = StateDir(args.state_dir)
    # Ctrl-C or SIGTERM at any point stops the mesh (the `finally` below). Installed explicitly:
    # a shell that starts the demo in the background makes it inherit SIGINT as ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    mode = getattr(args, "network", "auto")
    if mode == "auto":
        mode = "netns" if lifecycle.netns_available() else "loopback"
    why = {
        "netns": "each pod its own network namespace, traffic captured into its sidecar",
        "loopback": "no root needed; apps could bypass their sidecar",
    }
    print(f"meshward demo: {example} in {mode} network mode ({why[mode]})")
    try:
        Runner.claim(state)
        network = lifecycle.network_mode(mode, args.address_pool, state)
        network.check()
        # The ingress example's credentials exist before the gateway starts (README "Ingress").
        pki = demo_ingress.prepare(state) if (example / "ingress.yaml").exists() else None
        diagnostics = Runner.seed(state, [example])
    except MeshwardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    lifecycle.print_diagnostics(diagnostics)
    print("starting control plane, agent, sidecars and apps ...", flush=True)
    code = lifecycle.start_detached(state, example, network, timeout=120)
    try:
        if code != 0:
            return code
        print()
        inspect.print_status(state)
        _wait_for_apps(state)
        admin = end_user_demo.bearer(end_user_demo.token(state, "admin"))
        _show_request(state, admin)
        if pki is not None:
            headers = {"x-api-key": credentials.API_KEY} | admin
            demo_ingress.show(state, pki, headers)
            demo_egress.show(state, pki.partner_ca)
        _show_denial(state)
        print("\nverifying (probes derived from the effective configuration) ...\n", flush=True)
        results = run_probes(state)
        print(report.as_text(results))
        ok = report.passed(results)
        _show_enforcement(state)
        if args.check:
            return 0 if ok else 1
        _what_next(args.state_dir)
        _wait_for_interrupt()
        return 0 if ok else 1
    except KeyboardInterrupt:
        return 130
    finally:
        print("\nstopping the mesh ...", flush=True)
        lifecycle.stop_mesh(state)
        print("stopped; nothing left running")


def _wait_for_apps(state: StateDir, timeout: float = 20.0) -> None:
    """Until every app listens on its ports. Ready (runner/readiness.py) covers the sidecars,
    not the apps behind them; a provider still starting would fail closed (ext_authz_error)."""
    mesh = read_mesh(state)
    pending = [(p.app_ip, port) for p in (mesh.pods if mesh else ()) for port in p.ports]
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        try:
            socket.create_connection(pending[0], timeout=1).close()
            pending.pop(0)
        except OSError:
            time.sleep(0.1)


def _show_request(state: StateDir, end_user: dict[str, str]) -> None:
    """One real request through the mesh, sent from location-service's sidecar context."""
    mesh = read_mesh(state)
    callers = mesh.find("location-service", "geo") if mesh else []
    if not callers:
        return
    caller = callers[0]
    print("\nA request from geo/location-service to core/user-service, through both sidecars:")
    print(f"  GET http://user-service.core:8080/users/1   (x-api-key: {credentials.API_KEY})")
    if end_user:
        print("  Authorization: Bearer <a token for end user admin from auth/idp>")
    answer = _get_user(caller, {"x-api-key": credentials.API_KEY} | end_user)
    if answer is None:
        return
    status, _, body = answer
    print(f"  HTTP {status}")
    try:
        print("  " + json.dumps(json.loads(body), indent=2).replace("\n", "\n  "))
    except json.JSONDecodeError:
        print("  " + body[:400])
    print("\nExternal authentication: without the API key, core/credentials (meshward extauthz,")
    print("consulted by user-service's sidecar for /users/*) refuses, with its own answer:")
    answer = _get_user(caller, {})
    if answer is not None:
        status, authenticate, body = answer
        print(f"  HTTP {status}  WWW-Authenticate: {authenticate}  body: {body!r}")
    end_user_demo.show(
        state, lambda headers: _get_user(caller, headers), {"x-api-key": credentials.API_KEY}
    )


def _get_user(caller: PodRecord, headers: dict[str, str]) -> tuple[int, str, str] | None:
    """GET user 1 through the caller's sidecar: status, WWW-Authenticate, body."""
    return app_client.get(
        caller, "MESHWARD_SVC_CORE_USER_SERVICE_8080", "user-service.core:8080", "/users/1", headers
    )


def _show_denial(state: StateDir) -> None:
    """The seed's workload authorization: location-service may not reach the database."""
    mesh = read_mesh(state)
    callers = mesh.find("location-service", "geo") if mesh else []
    if not callers:
        return
    caller = callers[0]
    address = dict(caller.env).get("MESHWARD_SVC_CORE_DATABASE_6379", "")
    print("\nWorkload authorization: only user-service may reach the database.")
    print("  geo/location-service → core/database (TCP 6379, through its sidecar):", end=" ")
    host, _, port = address.rpartition(":")
    try:
        with app_client.connect(caller, host, int(port)) as sock:
            sock.sendall(b"PING\r\n")
            sock.settimeout(2)
            answer = sock.recv(64)
        print(f"answered {answer!r}" if answer else "connection closed: denied")
    except (OSError, ValueError) as error:
        print(f"refused ({error})")
    print("  Why? `meshward authz explain --from location-service -n geo --to database.core`:")
    authz.explain_request(
        state, source="location-service", source_namespace="geo", to="database.core:6379"
    )
    time.sleep(0.5)  # the sidecar flushes its access log every 100 ms
    log = state.sidecar_log("core", "database-0")
    denials = [e for e in access_log.entries(log) if denial(e) is not None]
    if denials:
        entry = denials[-1]
        print("  The database's sidecar logged it, naming the decision:")
        keep = ("peer", "local", "termination")
        print("    " + json.dumps({k: entry.get(k) for k in keep}))


UNSAFE_CHANGE = """\
# An unsafe change: core back to PERMISSIVE (plaintext accepted), with no approved exception.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: core}
spec:
  mtls: {mode: PERMISSIVE}
"""


def _show_enforcement(state: StateDir) -> None:
    """Enforce: one analyzer finding on the running mesh, and one unsafe change refused."""
    model_args = argparse.Namespace(
        state_dir=state.root,
        paths=[],
        live=True,
        format="table",
        fail_on="error",
        ca_dir=None,
        max_cert_ttl=24 * 3600,
    )
    print("\nEnforce. `meshward analyze --live` on the running mesh finds, among others:")
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        analyze_command.run(model_args)
    lines = captured.getvalue().splitlines()
    found = next((i for i, line in enumerate(lines) if "MW0501" in line), None)
    if found is not None:
        print("  " + " ".join(lines[found].split()))
        print("  " + lines[found + 1].strip())
    print("\nAnd an unsafe change is refused before it lands (`meshward apply -f` this file):")
    print("  " + UNSAFE_CHANGE.strip().replace("\n", "\n  "))
    with tempfile.TemporaryDirectory() as scratch:
        change = Path(scratch) / "core-permissive.yaml"
        change.write_text(UNSAFE_CHANGE)
        with contextlib.redirect_stderr(io.StringIO()) as refused:
            code = lifecycle.apply(argparse.Namespace(state_dir=state.root, paths=[change]))
    for line in refused.getvalue().splitlines():
        print("  " + line.replace(str(change), "core-permissive.yaml"))
    print(f"  exit status {code}; the running configuration is unchanged (core stays STRICT).")
    print(
        "  The fix: keep core STRICT — or, for a migration, annotate the PeerAuthentication with\n"
        "  meshward.io/exception and meshward.io/exception-approved-by: security-team, as geo's is."
    )


def _what_next(state_dir: Path) -> None:
    flag = "" if state_dir == Path(".meshward") else f" --state-dir {state_dir}"
    m = f".venv/bin/meshward{flag}"
    print(
        f"""
What to try next (in another terminal, from the repository root):
  {m} status                         pods, identities, mTLS mode per port, cert expiry
  {m} exec user-service -n core -- curl -s http://location-service.geo:8081/locations/1
  curl -sv http://<user-service pod address>:8080/   plaintext from outside: refused (STRICT)
  {m} apply -f <file>                hot-apply a change (a bad one is refused, nothing lost)
  {m} authz explain --from reports -n legacy --to location-service.geo --path /admin
  {m} authz check database -n core   policies in force in its live Envoy configuration
  curl -s -u meshward-dev:meshward-dev-secret -d '{{"sub": "admin", "aud": ["simple-system"]}}'
       http://<auth/idp-0 address>:9443/token   an end-user token from the example's IdP
  {m} authz preview <policy.yaml>    which recorded requests a candidate policy would deny
  {m} analyze --live                 best-practice findings, each with its fix (--sarif for CI)
  {m} admission audit                violations of the admission policies in force
  {m} verify                         run the probes again
Ctrl-C stops the mesh."""
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return
