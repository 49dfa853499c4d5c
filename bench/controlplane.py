"""Control-plane benchmark: time from `apply` to every proxy ACKed, and control-plane RSS.

    .venv/bin/python bench/controlplane.py [--sizes 10 100 1000] [--profile] [--no-save]

For each size N this runs the real control-plane process (`python -m meshward.server`, the
one `meshward up` starts: config store → model.build → xds.translate.proxy_snapshot per
proxy → SnapshotCache.set_snapshots → the grpc.aio ADS server) on its own state directory,
and N simulated Envoys in this process: one grpc.aio channel and one
StreamAggregatedResources stream each, with the node id the agent's sidecars send, asking
for CDS, LDS and RDS `outbound_http` as a sidecar does and ACKing every response.

The mesh: N sidecar workloads in 10 namespaces, N/2 services (two pods each), one STRICT
PeerAuthentication per namespace. Every proxy sees every service (no Sidecar scoping), so a
proxy's config grows with N and the whole push with N².

Phases, each timed from the SIGHUP that `meshward apply` sends after writing the store:
  initial  the streams are open and waiting (no config yet); the store and mesh.json get all
           N workloads → until every proxy has ACKed CDS, LDS and RDS.
  change   namespace ns-0's PeerAuthentication STRICT → PERMISSIVE → until every proxy of
           ns-0 has ACKed a new LDS version; pushes to the other proxies are counted (content
           hashed versions: expect none).
Control-plane RSS (VmRSS, and VmHWM = peak) is read from /proc after each phase. Output: a
table and bench/results/controlplane-<UTC>.json. `--profile` also runs model.build and every
proxy's translation of the largest N under cProfile in this process and reports the top
functions. Every process is started here and stopped here by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import io
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from harness import save_report

from meshward.config import load_text
from meshward.config.store import split_documents, write_store
from meshward.model import allocate, build, replicas
from meshward.model.ir import node_id
from meshward.state.layout import StateDir
from meshward.state.mesh import MeshRecord, PodRecord, write_mesh
from meshward.state.records import read_json, write_json
from meshward.xds import translate

NAMESPACES = 10
TRUST_DOMAIN = "bench.local"
POOL = "127.200.0.0/16"  # addresses are only written down: nothing binds them
CHANGED_NAMESPACE = "ns-0"
PHASE_TIMEOUT = 600.0
CONNECT_BATCH = 100  # streams opened at once (a storm of thousands is a separate test)

_TYPE = "type.googleapis.com/envoy.config."
CDS, LDS, RDS = (
    _TYPE + "cluster.v3.Cluster",
    _TYPE + "listener.v3.Listener",
    (_TYPE + "route.v3.RouteConfiguration"),
)
# What a sidecar subscribes to: CDS and LDS wildcard, RDS by the name its listener refers to.
SUBSCRIPTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (CDS, ()),
    (LDS, ()),
    (RDS, ("outbound_http",)),
)


# --- the mesh ----------------------------------------------------------------------------------


def mesh_yaml(size: int, changed_mode: str = "STRICT") -> str:
    """N workloads `w-<i>` (service account `sa-<i>`), N/2 services `svc-<j>` selecting two
    workloads each, spread over NAMESPACES namespaces; STRICT everywhere except that
    CHANGED_NAMESPACE gets `changed_mode`."""
    docs = [
        "apiVersion: meshward.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\n"
        f"spec: {{trustDomain: {TRUST_DOMAIN}, rootNamespace: meshward-system}}\n"
    ]
    for index in range(NAMESPACES):
        namespace = f"ns-{index}"
        mode = changed_mode if namespace == CHANGED_NAMESPACE else "STRICT"
        docs.append(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            f"metadata: {{name: default, namespace: {namespace}}}\n"
            f"spec: {{mtls: {{mode: {mode}}}}}\n"
        )
    for workload in range(size):
        service = workload // 2
        docs.append(
            "apiVersion: meshward.io/v1alpha1\nkind: Workload\n"
            f"metadata: {{name: w-{workload}, namespace: ns-{service % NAMESPACES}, "
            f"labels: {{app: svc-{service}}}}}\n"
            f"spec: {{serviceAccount: sa-{workload}, ports: [{{name: http, port: 8000}}], "
            'command: ["true"]}\n'
        )
    for service in range((size + 1) // 2):
        docs.append(
            "apiVersion: v1\nkind: Service\n"
            f"metadata: {{name: svc-{service}, namespace: ns-{service % NAMESPACES}}}\n"
            f"spec: {{selector: {{app: svc-{service}}}, ports: [{{name: http, port: 8000}}]}}\n"
        )
    return "---\n".join(docs)


def write_config(state: StateDir, text: str) -> None:
    """What `meshward apply` leaves behind: the merged store, one file per document."""
    write_store(state.config, split_documents(text))


def pod_records(text: str) -> tuple[PodRecord, ...]:
    """Every pod of the config with its addresses and node id, as the runner publishes them
    in mesh.json (addresses from `allocate`, the runner's own function)."""
    config = load_text(text)
    addresses = allocate(replicas(config.workloads), {}, POOL)
    accounts = {(w.meta.namespace, w.meta.name): w.service_account for w in config.workloads}
    return tuple(
        PodRecord(
            namespace=key.namespace,
            workload=key.workload,
            replica=key.replica,
            pod=key.pod_name,
            sidecar=True,
            node_id=node_id(key, address.pod_ip),
            identity=f"spiffe://{TRUST_DOMAIN}/ns/{key.namespace}/sa/"
            f"{accounts[(key.namespace, key.workload)]}",
            pod_ip=address.pod_ip,
            app_ip=address.app_ip,
            ports=(8000,),
            argv=(),
            env=(),
        )
        for key, address in sorted(addresses.items())
    )


def write_pods(state: StateDir, pods: tuple[PodRecord, ...], generation: int) -> None:
    """What the runner writes before it signals the control plane."""
    write_mesh(state, MeshRecord(generation, TRUST_DOMAIN, 86400, pods))


# --- simulated Envoys --------------------------------------------------------------------------


@dataclass
class FakeEnvoy:
    """One sidecar's ADS stream: subscribes like Envoy, ACKs every response, and records
    (monotonic time, version) of each ACK per type."""

    node: str
    namespace: str
    acks: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    error: str = ""

    def acked_after(self, type_url: str, since: float) -> list[tuple[float, str]]:
        return [ack for ack in self.acks.get(type_url, []) if ack[0] >= since]

    def version(self, type_url: str) -> str:
        acks = self.acks.get(type_url)
        return acks[-1][1] if acks else ""

    async def run(self, target: str) -> None:
        queue: asyncio.Queue[discovery_pb2.DiscoveryRequest] = asyncio.Queue()
        for type_url, wanted in SUBSCRIPTIONS:
            request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=wanted)
            if type_url == CDS:  # set_node_on_first_message_only: the node goes once
                request.node.id = self.node
                request.node.cluster = self.node.split("~")[2]
            queue.put_nowait(request)

        async def requests() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
            while True:
                yield await queue.get()

        names = dict(SUBSCRIPTIONS)
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
                async for response in stub.StreamAggregatedResources(requests()):
                    queue.put_nowait(
                        discovery_pb2.DiscoveryRequest(
                            type_url=response.type_url,
                            version_info=response.version_info,
                            response_nonce=response.nonce,
                            resource_names=names.get(response.type_url, ()),
                        )
                    )
                    self.acks.setdefault(response.type_url, []).append(
                        (time.monotonic(), response.version_info)
                    )
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.CANCELLED:
                self.error = f"{error.code().name}: {error.details()}"


async def wait_until(done: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        await asyncio.sleep(0.01)


# --- the control-plane process -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of `pid` in MB, from /proc/PID/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = round(int(rest.split()[0]) / 1024, 1)
    return {"rss_mb": values.get("VmRSS", 0.0), "peak_rss_mb": values.get("VmHWM", 0.0)}


def start_control_plane(state: StateDir, xds_port: int) -> subprocess.Popen[bytes]:
    # runner.json is what the control plane reads its ports from (the runner writes it).
    write_json(
        state.runner,
        {"pid": os.getpid(), "phase": "running", "pool": POOL,
         "ports": {"xds": xds_port, "ca": free_port()}},
    )  # fmt: skip
    state.logs.mkdir(parents=True, exist_ok=True)
    with (state.logs / "control-plane.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "meshward.server", "--state-dir", str(state.root)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def generation(state: StateDir) -> int:
    return int((read_json(state.control_plane) or {}).get("generation", 0))


def stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# --- one size ----------------------------------------------------------------------------------


@dataclass
class SizeResult:
    proxies: int
    services: int
    initial_s: float = 0.0
    initial_p50_s: float = 0.0
    change_s: float = 0.0
    change_affected: int = 0
    change_pushes_elsewhere: int = 0
    cds_bytes_per_proxy: int = 0
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _spread(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return round(ordered[-1], 3), round(ordered[len(ordered) // 2], 3)


async def run_size(size: int, root: Path) -> SizeResult:
    state = StateDir(root / f"cp-{size}")
    result = SizeResult(proxies=size, services=(size + 1) // 2)
    # Start with the MeshConfig only, so the streams can be open before the config lands.
    write_config(state, mesh_yaml(0))
    write_pods(state, (), generation=0)
    xds_port = free_port()
    plane = start_control_plane(state, xds_port)
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_until(lambda: generation(state) >= 1, 60, "control plane start")
        full = mesh_yaml(size)
        pods = pod_records(full)
        envoys = [FakeEnvoy(p.node_id, p.namespace) for p in pods]
        target = f"127.0.0.1:{xds_port}"
        for start in range(0, len(envoys), CONNECT_BATCH):
            tasks += [
                asyncio.create_task(e.run(target)) for e in envoys[start : start + CONNECT_BATCH]
            ]
            await asyncio.sleep(0.05)

        def connected() -> bool:
            status = (read_json(state.control_plane) or {}).get("proxies") or {}
            return sum(bool(s.get("connected")) for s in status.values()) >= size

        await wait_until(connected, 120, "streams open")
        result.memory["connected"] = memory_mb(plane.pid)

        # initial: every proxy gets its first CDS, LDS and RDS.
        write_config(state, full)
        write_pods(state, pods, generation=1)
        t0 = time.monotonic()
        plane.send_signal(signal.SIGHUP)

        def initial_done() -> bool:
            return all(all(e.acks.get(t) for t, _ in SUBSCRIPTIONS) for e in envoys)

        await wait_until(initial_done, PHASE_TIMEOUT, "initial push")
        finished = [max(e.acks[t][0][0] for t, _ in SUBSCRIPTIONS) - t0 for e in envoys]
        result.initial_s, result.initial_p50_s = _spread(finished)
        result.memory["initial"] = memory_mb(plane.pid)
        await wait_until(lambda: generation(state) >= 2, 30, "generation 2")

        # change: one namespace STRICT → PERMISSIVE.
        affected = [e for e in envoys if e.namespace == CHANGED_NAMESPACE]
        before = {e.node: e.version(LDS) for e in envoys}
        write_config(state, mesh_yaml(size, changed_mode="PERMISSIVE"))
        t1 = time.monotonic()
        plane.send_signal(signal.SIGHUP)

        def change_done() -> bool:
            return all(e.version(LDS) != before[e.node] for e in affected)

        await wait_until(change_done, PHASE_TIMEOUT, "change push")
        await wait_until(lambda: generation(state) >= 3, 30, "generation 3")
        await asyncio.sleep(0.5)  # let any stray push to an unaffected proxy arrive
        changed = [
            next(t for t, v in e.acked_after(LDS, t1) if v != before[e.node]) - t1 for e in affected
        ]
        result.change_s, _ = _spread(changed)
        result.change_affected = len(affected)
        result.change_pushes_elsewhere = sum(
            len(e.acked_after(t, t1)) for e in envoys if e not in affected for t, _ in SUBSCRIPTIONS
        )
        result.memory["change"] = memory_mb(plane.pid)
        result.errors = sorted({e.error for e in envoys if e.error})
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop(plane)
    result.cds_bytes_per_proxy = _cds_bytes(full)
    return result


def _cds_bytes(text: str) -> int:
    """Size of one proxy's clusters (the largest response), translated here once."""
    config = load_text(text)
    model, _ = build(config, allocate(replicas(config.workloads), {}, POOL))
    snapshot = translate.proxy_snapshot(model.proxies[0])
    return sum(m.ByteSize() for m in snapshot.of_type(CDS).values())


# --- profile -----------------------------------------------------------------------------------


def _profiled(work: Any, top: int) -> tuple[float, list[str]]:
    """Run `work()` under cProfile: (wall seconds, the `top` functions by cumulative time)."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(work)
    seconds = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    lines = out.getvalue().splitlines()
    rows = [line.rstrip() for line in lines if "(" in line and "/" in line]
    return seconds, rows


def profile(size: int, top: int = 12) -> dict[str, Any]:
    """cProfile of model.build and of every proxy's translation at `size`: where a reload's
    time goes (the control plane rebuilds and retranslates every proxy on every reload)."""
    config = load_text(mesh_yaml(size))
    addresses = allocate(replicas(config.workloads), {}, POOL)
    built: list[Any] = []
    build_s, build_top = _profiled(lambda: built.append(build(config, addresses)), top)
    proxies = built[0][0].proxies
    # As the control plane does: one SharedResources for all proxies of a reload.
    shared = translate.SharedResources()
    translate_s, translate_top = _profiled(
        lambda: [translate.translate(proxy, shared) for proxy in proxies], top
    )
    return {
        "size": size,
        "note": "wall times under cProfile (inflated); see the functions for where it goes",
        "model_build_s": round(build_s, 2),
        "model_build_top": build_top,
        "translate_per_proxy_ms": round(translate_s / len(proxies) * 1000, 1),
        "translate_top": translate_top,
    }


# --- main --------------------------------------------------------------------------------------


def table(results: list[SizeResult]) -> str:
    lines = [
        f"{'proxies':>7} {'services':>8} {'initial s (p50)':>16} {'change s':>9} "
        f"{'affected':>8} {'other pushes':>12} {'CP RSS MB':>10} {'CP peak MB':>10} "
        f"{'CDS KB/proxy':>12}"
    ]
    for r in results:
        memory = r.memory.get("change", {})
        lines.append(
            f"{r.proxies:>7} {r.services:>8} {r.initial_s:>8.2f} ({r.initial_p50_s:.2f}) "
            f"{r.change_s:>9.2f} {r.change_affected:>8} {r.change_pushes_elsewhere:>12} "
            f"{memory.get('rss_mb', 0):>10} {memory.get('peak_rss_mb', 0):>10} "
            f"{r.cds_bytes_per_proxy / 1024:>12.0f}" + (f"  ERRORS {r.errors}" if r.errors else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--profile", action="store_true", help="cProfile the largest size")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    options = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="meshward-cpbench-") as tmp:
        for size in options.sizes:
            started = time.monotonic()
            results.append(asyncio.run(run_size(size, Path(tmp))))
            print(f"N={size}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(table(results))
    report: dict[str, Any] = {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "mesh": {"namespaces": NAMESPACES, "services_per_proxy": "N/2, all visible",
                 "changed": f"PeerAuthentication {CHANGED_NAMESPACE}/default STRICT→PERMISSIVE"},
        "sizes": [asdict(r) for r in results],
    }  # fmt: skip
    if options.profile:
        report["profile"] = profile(max(options.sizes))
        for key in ("model_build_top", "translate_top"):
            print("\n".join(report["profile"][key]))
    if not options.no_save:
        save_report("controlplane", report)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
