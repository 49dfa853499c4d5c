"""bench/dataplane.py path (b) and bench/controlplane.py, each on a tiny scale: a real meshward
mesh carries one request over STRICT mTLS and is gone after `down`; the control-plane bench
runs end to end with 4 proxies; and the helpers the two scripts stand on."""

from __future__ import annotations

import http.client
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from meshward.config import load_text
from meshward.process import pid_alive

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
certs: Any = importlib.import_module("certs")
dataplane: Any = importlib.import_module("dataplane")
controlplane: Any = importlib.import_module("controlplane")


def _get(host: str, port: int, path: str, authority: str, probe: str = "") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Host": authority} | ({"X-Meshward-Probe": probe} if probe else {})
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _access_log(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith('{"')]


def _wait_log(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5  # sidecars flush their log every 100 ms
    while len(entries := _access_log(path)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return entries


@pytest.mark.e2e
def test_meshward_pair_carries_a_request_over_strict_mtls_and_down_leaves_nothing() -> None:
    with tempfile.TemporaryDirectory(prefix="meshward-bench-test-") as tmp:
        workdir = Path(tmp)
        processes = dataplane.Processes(workdir)
        try:
            pki = certs.write_pki(workdir)  # unused by (b), used by the STRICT probe's SNI
            pair = dataplane.meshward_pair(processes, workdir, 0, pki)
            status, body = _get(pair.host, pair.port, "/headers", "httpbin.bench:8000", "p1")
            unrouted, _ = _get(pair.host, pair.port, "/headers", "nowhere.bench:8000")
            refused = dataplane.refuses_without_client_cert(
                pair.server_port, pki, host=pair.server_host, trust_root=pair.trust_root
            )
            logs = workdir / "meshward-state" / "logs"
            client_log = _wait_log(logs / "bench.client-0.envoy.log", 1)
            server_log = _wait_log(logs / "bench.httpbin-0.envoy.log", 1)
            envoys = [proxy.pid for proxy in pair.proxies]
        finally:
            processes.stop_all()
        left = [pid for pid in envoys if pid_alive(pid)]
    xfcc = json.loads(body)["headers"]["X-Forwarded-Client-Cert"]
    xfcc = ";".join(part for part in xfcc.split(";") if not part.startswith("Hash="))
    assert (status, unrouted, xfcc, refused, left) == (
        200,
        404,
        "By=spiffe://cluster.local/ns/bench/sa/server;"
        "URI=spiffe://cluster.local/ns/bench/sa/client",
        True,
        [],
    )
    assert [p.role for p in pair.proxies] == ["client", "server"]
    assert [o.role for o in pair.others] == ["control-plane", "agent", "app httpbin"]
    # Outbound, only the failed request is logged; inbound, the probe (with the client's
    # identity) is, while ordinary successes (meshward_pair's warm-up GET) are sampled at 1%.
    assert [(e["direction"], e["code"], e["authority"]) for e in client_log] == [
        ("outbound", 404, "nowhere.bench:8000")
    ]
    assert [(e["direction"], e["path"], e["peer"]) for e in server_log if e["probe"]] == [
        ("inbound", "/headers", "spiffe://cluster.local/ns/bench/sa/client"),
    ]


def test_stop_all_runs_deferred_stops_newest_first_and_reports_the_first_failure() -> None:
    calls: list[str] = []

    def failing() -> None:
        calls.append("failing")
        raise RuntimeError("left")

    with tempfile.TemporaryDirectory() as tmp:
        processes = dataplane.Processes(Path(tmp))
        child = processes.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        processes.defer(lambda: calls.append("first"))
        processes.defer(failing)
        with pytest.raises(RuntimeError, match="left"):
            processes.stop_all()
    assert (calls, child.poll() is not None) == (["failing", "first"], True)


def test_wrk_argv_carries_host_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Done:
        stdout = "Requests/sec: 1.0\n"

    def fake_run(argv: list[str], **_: Any) -> Done:
        seen.append(argv)
        return Done()

    monkeypatch.setattr(dataplane.subprocess, "run", fake_run)
    monkeypatch.setattr(
        importlib.import_module("harness"), "parse_wrk", lambda output: {"rps": 1.0}
    )
    dataplane.run_wrk(15001, "/robots.txt", 2, host="127.150.0.2", headers=(("Host", "a:1"),))
    assert seen == [
        ["wrk", "-t", "2", "-c", "16", "-d", "2s", "--latency", "-H", "Host: a:1",
         "http://127.150.0.2:15001/robots.txt"]
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("size", "workloads", "services", "strict_namespaces"), [(0, 0, 0, 10), (5, 5, 3, 10)]
)
def test_controlplane_mesh_is_valid(
    size: int, workloads: int, services: int, strict_namespaces: int
) -> None:
    config = load_text(controlplane.mesh_yaml(size))
    modes = [p.mode for p in config.peer_authentications]
    assert (
        config.diagnostics,
        len(config.workloads),
        len(config.services),
        modes.count("STRICT"),
    ) == ((), workloads, services, strict_namespaces)


def test_controlplane_pod_records_use_the_sidecar_node_id() -> None:
    pods = controlplane.pod_records(controlplane.mesh_yaml(2))
    assert [(p.namespace, p.pod, p.node_id, p.identity) for p in pods] == [
        (
            "ns-0",
            "w-0-0",
            "sidecar~127.200.0.2~w-0-0.ns-0~ns-0.svc.cluster.local",
            "spiffe://bench.local/ns/ns-0/sa/sa-0",
        ),
        (
            "ns-0",
            "w-1-0",
            "sidecar~127.200.0.3~w-1-0.ns-0~ns-0.svc.cluster.local",
            "spiffe://bench.local/ns/ns-0/sa/sa-1",
        ),
    ]


@pytest.mark.e2e
def test_controlplane_bench_runs_with_four_proxies(tmp_path: Path) -> None:
    import asyncio

    result = asyncio.run(controlplane.run_size(4, tmp_path))
    # Workloads 0 and 1 back svc-0 in ns-0: the two proxies the STRICT → PERMISSIVE change
    # affects; the other two get no push at all (versions are content hashes).
    assert (
        result.proxies,
        result.services,
        result.change_affected,
        result.change_pushes_elsewhere,
        result.errors,
        sorted(result.memory),
    ) == (4, 2, 2, 0, [], ["change", "connected", "initial"])
    assert 0 < result.initial_p50_s <= result.initial_s < 30
