"""The mesh of tests/golden/model/mesh-routes (VirtualServices bound to `mesh`) built in
either network mode, for the sidecar routing tests (xds goldens, Envoy, semantics)."""

from __future__ import annotations

from pathlib import Path

from meshward.config import load_text
from meshward.model import allocate, build, ir, replicas

INPUT = Path(__file__).parents[1] / "golden" / "model" / "mesh-routes" / "input.yaml"
VIPS = {"client": "198.18.255.1", "svc": "198.18.255.2", "svc-v2": "198.18.255.3"}


def model(mode: ir.NetworkModeName = "loopback") -> ir.MeshModel:
    config = load_text(INPUT.read_text(), "mesh-routes/input.yaml")
    network = ir.LOOPBACK
    if mode == "netns":
        vips = tuple(sorted((("shop", name), vip) for name, vip in VIPS.items()))
        network = ir.Network("netns", vips, "mw")
    built, _ = build(config, allocate(replicas(config.workloads), {}), network)
    return built


def client(mesh: ir.MeshModel) -> ir.ProxyModel:
    return next(p for p in mesh.proxies if p.pod.key.workload == "client")
