"""CLI commands that look at the running mesh: status, logs, exec, verify."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from meshward.config import load
from meshward.diagnostics import has_errors
from meshward.model import build
from meshward.model.ir import MeshModel
from meshward.netns import enter
from meshward.state.layout import StateDir
from meshward.state.mesh import PodRecord, read_mesh
from meshward.state.records import read_json
from meshward.verify import report as verify_report
from meshward.verify.probes import run_probes


def _model(state: StateDir) -> MeshModel | None:
    mesh = read_mesh(state)
    config = load([state.config])
    if mesh is None or has_errors(config.diagnostics):
        return None
    return build(config, mesh.addresses(), mesh.model_network())[0]


def status_value(state: StateDir) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-able value."""
    runner = read_json(state.runner) or {}
    plane = read_json(state.control_plane) or {}
    agent = (read_json(state.agent) or {}).get("pods") or {}
    mesh = read_mesh(state)
    model = _model(state)
    proxies = plane.get("proxies") or {}
    vips = [
        {"namespace": namespace, "service": name, "vip": vip}
        for (namespace, name), vip in (mesh.vips if mesh else ())
    ]
    modes = {}
    if model is not None:
        modes = {
            p.node_id: {str(port.port): port.mtls for port in p.inbound} for p in model.proxies
        }
    pods = []
    for pod in mesh.pods if mesh else ():
        name = f"{pod.namespace}/{pod.pod}"
        sidecar = agent.get(name) or {}
        proxy = proxies.get(pod.node_id) or {}
        pods.append(
            {
                "namespace": pod.namespace,
                "pod": pod.pod,
                "workload": pod.workload,
                "pod_ip": pod.pod_ip,
                "app_ip": pod.app_ip,
                "ports": list(pod.ports),
                "netns": pod.netns or None,
                "outside": pod.outside,
                "identity": pod.identity or None,
                "sidecar": pod.sidecar,
                "sidecar_ready": bool(sidecar.get("ready")) if pod.sidecar else None,
                "cert_not_after": sidecar.get("cert_not_after") or None,
                "mtls": modes.get(pod.node_id, {}) if pod.sidecar else {},
                "in_sync": proxy.get("in_sync") if pod.sidecar else None,
                "last_nack": proxy.get("last_nack") if pod.sidecar else None,
            }
        )
    return {
        "phase": runner.get("phase", "not running"),
        "network": runner.get("network"),
        "generation": plane.get("generation"),
        "trust_domain": mesh.trust_domain if mesh else None,
        "xds": f"{runner.get('xds_host') or '127.0.0.1'}:{runner['ports']['xds']}"
        if runner.get("ports")
        else None,
        "refused": plane.get("refused") or [],
        "findings": plane.get("findings") or [],
        "limitations": runner.get("limitations") or [],
        "pods": pods,
        "jwks": plane.get("jwks") or [],
        "vips": vips,
    }


def print_status(state: StateDir) -> None:
    value = status_value(state)
    if value["phase"] in ("not running", "stopped"):
        print(f"no mesh running from {state.root} (meshward up DIR starts one)")
        return
    print(
        f"mesh: {value['phase']} ({value['network']} network), config generation "
        f"{value['generation']}, trust domain {value['trust_domain']}, xDS {value['xds']}"
    )
    rows = [("POD", "ADDRESS", "IDENTITY", "PORTS (mTLS)", "SIDECAR", "CERT EXPIRES", "LAST NACK")]
    for pod in value["pods"]:
        ports = ", ".join(
            f"{p}:{pod['mtls'].get(str(p), 'none')}" if pod["sidecar"] else f"{p}:plaintext"
            for p in pod["ports"]
        )
        sidecar = "-" if not pod["sidecar"] else ("ready" if pod["sidecar_ready"] else "NOT READY")
        nack = pod["last_nack"]
        rows.append(
            (
                f"{pod['namespace']}/{pod['pod']}",
                pod["pod_ip"],
                pod["identity"]
                or (
                    "(outside network host)" if pod["outside"] else "(no sidecar: outside the mesh)"
                ),
                ports,
                sidecar,
                (pod["cert_not_after"] or "-")[:19],
                f"{nack['type']}: {nack['message'][:60]}" if nack else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for source in value["jwks"]:
        print(f"jwks: {jwks_line(source)}")
    if value["vips"]:
        print("services (virtual IPs, captured by each pod's sidecar):")
        for vip in value["vips"]:
            print(f"  {vip['namespace']}/{vip['service']}  {vip['vip']}")
    for line in value["refused"]:
        print(f"refused: {line}")
    for line in value["findings"]:
        print(f"finding: {line}")
    for line in value["limitations"]:
        print(f"note: {line}")


def status(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    if args.json:
        print(json.dumps(status_value(state), indent=2))
    else:
        print_status(state)
    return 0


def _pod(state: StateDir, workload: str, namespace: str | None) -> PodRecord | None:
    mesh = read_mesh(state)
    matches = mesh.find(workload, namespace) if mesh else []
    if not matches:
        where = f" in namespace {namespace}" if namespace else ""
        print(f"error: no workload or pod {workload!r}{where}", file=sys.stderr)
        return None
    return matches[0]


def logs(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    pod = _pod(state, args.workload, args.namespace)
    if pod is None:
        return 1
    path = (state.sidecar_log if args.sidecar else state.pod_log)(pod.namespace, pod.pod)
    if not path.exists():
        print(f"error: no log yet at {path}", file=sys.stderr)
        return 1
    sys.stdout.write(path.read_text(errors="replace"))
    return 0


def exec_(args: argparse.Namespace) -> int:
    """Run the command with the pod's environment: its sidecar as HTTP proxy, its service
    addresses — what `kubectl exec` into the pod's app container would see. In netns mode
    the command runs inside the pod's namespace, confined as the app is (its traffic is captured
    like the app's, and service names resolve through the pod's hosts file)."""
    state = StateDir(args.state_dir)
    argv = list(args.argv)
    if not argv:
        print("error: give a command after --", file=sys.stderr)
        return 2
    pod = _pod(state, args.workload, args.namespace)
    if pod is None:
        return 1
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy")}
    env |= dict(pod.env)
    if pod.netns:
        argv = list(enter.argv(pod.netns, argv, confined=True))
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        print(f"error: command not found: {argv[0]}", file=sys.stderr)
        return 127


def verify(args: argparse.Namespace) -> int:
    state = StateDir(args.state_dir)
    results = run_probes(state)
    if args.json:
        print(json.dumps(verify_report.as_json(results), indent=2))
    else:
        print(verify_report.as_text(results))
    return 0 if verify_report.passed(results) else 1


def jwks_line(source: dict[str, Any]) -> str:
    """One key source as `status` and `verify` show it (state from jwks/key_sets.py)."""
    kind = f"{source['code']} " if source.get("code") else ""
    kind += "discovery " if source.get("discovery") else ""
    kids = ", ".join(source.get("kids") or []) or "none"
    text = (
        f"{kind}{source['source']}: {source['state']} (kids: {kids}; fetches {source['fetches']})"
    )
    if source.get("state") == "no-keys":
        text += " - tokens for this rule are refused until a fetch succeeds"
    elif source.get("state") == "stale":
        text += " - last good keys stay in force"
    if source.get("error"):
        text += f"; last error ({source['failures']} in a row): {source['error']}"
    return text
