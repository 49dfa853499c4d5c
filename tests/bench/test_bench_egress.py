"""bench/egress.py in its --quick mode: every path reaches the external server as it claims
(TLS 1.3, the path's SNI, (c) through the gateway by both Envoys' counters), every request is
answered, the report has the figures and ratios bench/README.md quotes, and nothing is left
running."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from meshward.process import pid_alive

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
egress: Any = importlib.import_module("egress")

PROXIES = {"a": [], "b": ["sidecar"], "c": ["sidecar", "gateway"], "d": ["envoy"]}
NGINX, MESH = ["external API (nginx)"], ["control-plane", "agent"]
OTHERS = {"a": NGINX, "b": NGINX + MESH, "c": NGINX + MESH, "d": NGINX}


@pytest.mark.e2e
def test_quick_run_loads_each_path_through_what_it_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(egress, "save_report", lambda kind, report: saved.append((kind, report)))
    assert egress.main(["--quick"]) == 0
    ((kind, report),) = saved
    saw = {"tls": "TLSv1.3", "peer": "127.0.0.1"}
    assert (kind, report["server_saw"]) == (
        "egress",
        {
            "a": saw | {"sni": ""},  # the check's client dials an address: no SNI
            "b": saw | {"sni": "sidecar.api.example"},
            "c": saw | {"sni": "gateway.api.example"},
            "d": saw | {"sni": "sidecar.api.example"},
        },
    )
    gateway = report["through_gateway"]
    handshakes = [label for label in gateway if "handshakes" in label]
    assert {k: v for k, v in gateway.items() if k not in handshakes} == {
        "sidecar → gateway requests": 1,
        "gateway → server requests": 1,
    }
    assert [gateway[label] > 0 for label in handshakes] == [True, True]
    paths = report["paths"]
    assert {k: [p["role"] for p in v["proxies"]] for k, v in paths.items()} == PROXIES
    assert {k: [o["role"] for o in v["others"]] for k, v in paths.items()} == OTHERS
    loads = {k: (v["load"]["non_2xx"], v["load"]["socket_errors"]) for k, v in paths.items()}
    assert loads == {key: (0, 0) for key in "abcd"}
    assert all(v["load"]["requests"] > 0 for v in paths.values())
    assert list(report["ratios_rps"]) == ["b/a", "c/b", "b/d", "c/a", "d/a"]
    assert (report["rounds"], report["load"]["seconds_per_path"]) == (1, 2.0)
    pids = [
        pid
        for path in paths.values()
        for process in (*path["proxies"], *path["others"])
        for pid in process["pids"]
    ]
    assert [pid for pid in pids if pid_alive(pid)] == []
