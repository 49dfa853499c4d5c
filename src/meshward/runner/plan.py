"""What the runner starts for each pod: command line and environment (pure).

Called by the runner on `up` and on every accepted `apply`. Given the config set and the mesh
model it returns one `PodPlan` per pod. The environment is the app's view of the mesh in
loopback mode:

- `MESHWARD_APP_HOST` — where the app binds (its private address; the sidecar owns the pod
  address), plus `MESHWARD_POD_IP`, `MESHWARD_POD_NAME`, `MESHWARD_NAMESPACE`.
- `http_proxy`/`HTTP_PROXY` — the sidecar's outbound HTTP listener, so that
  `curl http://httpbin.foo:8000/` goes through the sidecar (sidecar pods only).
- `MESHWARD_SVC_<NAMESPACE>_<NAME>_<PORT>` — how to reach every service port (a ServiceEntry
  port: `<NAME>` is its host, `<NAMESPACE>` the entry's): for TCP the
  local sidecar listener, for HTTP the service name (used through the proxy); a legacy pod
  (no sidecar) gets the first endpoint's address and talks to it directly, in plaintext.

In netns mode (the model's network says so) every pod has its own namespace: there is no
proxy variable (the sidecar captures traffic transparently), and every service port is
`<vip>:<port>` — the same address the service's names resolve to inside the pod — for
sidecar and legacy pods alike (a legacy pod's VIPs are DNATed to an endpoint, as by
kube-proxy).

`command`/`args`/env values use Kubernetes `$(VAR)` expansion (`$$(VAR)` escapes); a bare
`python` runs the interpreter meshward runs under, so examples work inside the venv.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from meshward.config.resources import ConfigSet, Workload
from meshward.model.ir import OUTBOUND_HTTP_PORT, MeshModel, Pod, PodKey, ProxyModel, is_http
from meshward.model.pods import pod_keys

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass(frozen=True, slots=True)
class PodPlan:
    namespace: str
    pod: str
    workload: str
    sidecar: bool
    node_id: str  # "" for a legacy pod
    pod_ip: str
    app_ip: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


def env_name(namespace: str, name: str, port: int) -> str:
    """`MESHWARD_SVC_<NAMESPACE>_<NAME>_<PORT>`, upper-cased, `-` and `.` as `_`."""
    raw = f"MESHWARD_SVC_{namespace}_{name}_{port}"
    return re.sub(r"[^A-Za-z0-9_]", "_", raw).upper()


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are replaced, others left as is."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(replace, text)


def plan_outside(
    config: ConfigSet, placed: Mapping[PodKey, str], state_dir: str = ""
) -> tuple[PodPlan, ...]:
    """One plan per replica of each `outside: true` workload, at its address in `placed`:
    a host outside the mesh, so no sidecar and no mesh service addresses (only what any
    outside client has: its own address). `MESHWARD_STATE_DIR` tells the outside test
    servers where the demo's example PKI is (`<state>/example-pki`): they stand for the
    outside world, whose certificates the demo makes up; mesh apps are not told."""
    plans = []
    for workload in config.workloads:
        if not workload.outside:
            continue
        for key in pod_keys(workload):
            ip = placed[key]
            env = {
                "MESHWARD_APP_HOST": ip,
                "MESHWARD_POD_IP": ip,
                "MESHWARD_POD_NAME": key.pod_name,
                "MESHWARD_NAMESPACE": key.namespace,
                "MESHWARD_STATE_DIR": state_dir,
            }
            for item in workload.env:
                env[item[0]] = expand(item[1], env)
            plans.append(
                PodPlan(
                    namespace=key.namespace,
                    pod=key.pod_name,
                    workload=key.workload,
                    sidecar=False,
                    node_id="",
                    pod_ip=ip,
                    app_ip=ip,
                    argv=_argv(workload, env),
                    env=tuple(sorted(env.items())),
                )
            )
    return tuple(plans)


def outside_keys(config: ConfigSet) -> tuple[PodKey, ...]:
    """The replicas of every `outside: true` workload, sorted."""
    return tuple(sorted(key for w in config.workloads if w.outside for key in pod_keys(w)))


def plan_pods(config: ConfigSet, model: MeshModel) -> tuple[PodPlan, ...]:
    workloads = {(w.meta.namespace, w.meta.name): w for w in config.workloads}
    proxies = {p.pod.key: p for p in model.proxies}
    plans = []
    for pod in model.pods:
        workload = workloads[(pod.key.namespace, pod.key.workload)]
        proxy = proxies.get(pod.key)
        env = _environment(pod, proxy, model)
        for item in workload.env:
            env[item[0]] = expand(item[1], env)
        argv = _argv(workload, env)
        plans.append(
            PodPlan(
                namespace=pod.key.namespace,
                pod=pod.key.pod_name,
                workload=pod.key.workload,
                sidecar=proxy is not None,
                node_id=proxy.node_id if proxy else "",
                pod_ip=pod.address.pod_ip,
                app_ip=pod.address.app_ip,
                argv=argv,
                env=tuple(sorted(env.items())),
            )
        )
    return tuple(plans)


def _argv(workload: Workload, env: Mapping[str, str]) -> tuple[str, ...]:
    argv = [expand(part, env) for part in (*workload.command, *workload.args)]
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return tuple(argv)


def _environment(pod: Pod, proxy: ProxyModel | None, model: MeshModel) -> dict[str, str]:
    env = {
        "MESHWARD_APP_HOST": pod.address.app_ip,
        "MESHWARD_POD_IP": pod.address.pod_ip,
        "MESHWARD_POD_NAME": pod.key.pod_name,
        "MESHWARD_NAMESPACE": pod.key.namespace,
        "MESHWARD_SERVICE_ACCOUNT": pod.service_account,
    }
    if model.network.mode == "netns":
        for service in model.services:
            for port in service.ports:
                env[env_name(service.namespace, service.name, port.port)] = (
                    f"{service.vip}:{port.port}"
                )
        # ServiceEntry hosts at their VIP (an entry's CIDR address names no single one).
        for outbound in proxy.outbound if proxy is not None else ():
            if outbound.external is not None and outbound.vip and "/" not in outbound.vip:
                key = env_name(outbound.namespace, outbound.name, outbound.port)
                env[key] = f"{outbound.vip}:{outbound.port}"
        return env
    if proxy is not None:
        proxy_url = f"http://{pod.address.pod_ip}:{OUTBOUND_HTTP_PORT}"
        env |= {"http_proxy": proxy_url, "HTTP_PROXY": proxy_url}
        env |= {"no_proxy": "localhost,127.0.0.1", "NO_PROXY": "localhost,127.0.0.1"}
        for outbound in proxy.outbound:
            key = env_name(outbound.namespace, outbound.name, outbound.port)
            if is_http(outbound.protocol):
                env[key] = f"{outbound.fqdn}:{outbound.port}"
            elif outbound.tcp_bind is not None:
                env[key] = f"{outbound.tcp_bind[0]}:{outbound.tcp_bind[1]}"
        return env
    # A legacy pod has no sidecar: it reaches the first endpoint of each service directly.
    pods = {p.key: p for p in model.pods}
    for service in model.services:
        for port in service.ports:
            if not service.pods:
                continue
            target = pods[service.pods[0]]
            env[env_name(service.namespace, service.name, port.port)] = (
                f"{target.address.pod_ip}:{port.target_port}"
            )
    return env
