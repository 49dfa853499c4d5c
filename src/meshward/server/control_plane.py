"""The control-plane process: config → model → per-proxy snapshots → ADS, plus the CA.

Started by the runner as `python -m meshward.server --state-dir DIR`. It reads the config store
and the runner's mesh record, builds the model, translates one snapshot per sidecar and sets
them in the cache the ADS server serves from; it also serves the CSR API. On SIGHUP it
reloads (debounced: a burst of signals makes one rebuild). A config set with errors is
refused and the last good snapshots stay in force (DESIGN.md: nothing bad is pushed).
Progress and per-proxy ACK/NACK state are published in `control-plane.json` for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshward import admission
from meshward.ca.authority import CertificateAuthority
from meshward.config import ConfigSet, load
from meshward.diagnostics import Level, has_errors
from meshward.errors import SnapshotError
from meshward.jwks import resolve
from meshward.jwks.key_sets import KeySets
from meshward.model import build, ir
from meshward.server.ads import serve_ads
from meshward.server.ca_service import serve_ca
from meshward.server.cache import SnapshotCache
from meshward.server.jwks_watch import UnknownKidWatch
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json, write_json
from meshward.xds.snapshot import Snapshot
from meshward.xds.translate import SharedResources, translate

log = logging.getLogger("meshward.control-plane")

DEBOUNCE_SECONDS = 0.1
JWKS_TICK_SECONDS = 0.25  # how often due key sets are fetched and sidecar logs skimmed


@dataclass
class ControlPlane:
    state: StateDir
    host: str = "127.0.0.1"
    cache: SnapshotCache = field(default_factory=SnapshotCache)
    generation: int = 0
    mesh_generation: int = 0
    refused: list[str] = field(default_factory=list)
    translation_errors: dict[str, str] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    last_reload: str = ""
    # The last config set that was served: admission's `previous` (defense in depth: the
    # CLI admits changes before storing them; a store edited by hand is judged here).
    last_good: ConfigSet | None = None
    # Outbound clusters and routes shared by many proxies, translated once (kept across
    # reloads: an unchanged service is not translated again).
    shared: SharedResources = field(default_factory=SharedResources)
    # JWKS of the RequestAuthentications in force: fetched here, inlined into snapshots.
    key_sets: KeySets = field(default_factory=lambda: KeySets(20 * 60, ()))
    # The last good model before key sets are filled in (jwks/resolve.py), re-translated
    # when a key set changes; `model_findings` are its config and model findings.
    model: ir.MeshModel | None = None
    model_findings: list[str] = field(default_factory=list)
    _reload: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        runner = read_json(self.state.runner) or {}
        ports = runner.get("ports", {})
        config = load([self.state.config])
        trust_domain = config.mesh.trust_domain
        ca = CertificateAuthority.load_or_create(
            self.state.ca, trust_domain=trust_domain, now=datetime.now(UTC)
        )
        # netns mode: sidecars run in pod namespaces and reach xDS at the bridge's host
        # address (runner.json `xds_host`); the CA API stays on loopback for the agent.
        xds_host = str(runner.get("xds_host") or self.host)
        ads = await serve_ads(self.cache, xds_host, int(ports.get("xds", 0)))
        ca_server, ca_port = await serve_ca(
            ca,
            self.host,
            int(ports.get("ca", 0)),
            root_namespace=config.mesh.root_namespace,
            now_fn=lambda: datetime.now(UTC),
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        self.reload()
        publisher = asyncio.create_task(self._publish_status(ca_port))
        reloader = asyncio.create_task(self._reload_loop())
        jwks = asyncio.create_task(self._jwks_loop())
        await self._stop.wait()
        for task in (publisher, reloader, jwks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await ads.stop(grace=0.5)
        await ca_server.stop(grace=0.5)

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)  # coalesce a burst of SIGHUPs
            self._reload.clear()
            self.reload()

    def reload(self) -> None:
        """Rebuild every proxy's snapshot from the store; refuse a set with errors."""
        self.last_reload = datetime.now(UTC).isoformat()
        config = load([self.state.config])
        if has_errors(config.diagnostics):
            self.refused = [str(d) for d in config.diagnostics]
            log.error("config refused; last good configuration stays in force")
            return
        # At start the store was admitted by `up` already; it is its own previous set then, so
        # only the templates that need no history (all but RequireDryRunFirst) judge it.
        previous = self.last_good if self.last_good is not None else config
        refusals = [d for d in admission.admit(config, previous) if d.level is Level.ERROR]
        if refusals:
            self.refused = [str(d) for d in refusals]
            log.error("config refused by admission; last good configuration stays in force")
            return
        mesh = read_mesh(self.state)
        if mesh is None:
            return
        model, diagnostics = build(config, mesh.addresses(), mesh.model_network())
        if has_errors(diagnostics):
            self.refused = [str(d) for d in diagnostics]
            log.error("model refused; last good configuration stays in force")
            return
        self.key_sets.refresh_seconds = config.mesh.jwks_refresh_seconds
        self.key_sets.blocked = config.mesh.jwks_blocked_cidrs
        self.key_sets.resolver = resolve.mesh_resolver(model)
        self.key_sets.track(resolve.sources(model))
        self.model = model
        self.model_findings = [str(d) for d in (*config.diagnostics, *diagnostics)]
        self.serve_model()
        self.refused = []
        self.last_good = config
        self.generation += 1
        self.mesh_generation = mesh.generation
        log.info("generation %d: %d proxies", self.generation, len(model.proxies))

    def serve_model(self) -> None:
        """Translate the last good model, with the current key sets, into the cache."""
        if self.model is None:
            return
        model = resolve.resolve(self.model, self.key_sets.keys)
        snapshots: dict[str, Snapshot] = {}
        errors: dict[str, str] = {}
        findings = list(self.model_findings)
        for proxy in model.proxies:
            try:
                translation = translate(proxy, self.shared)
            except SnapshotError as error:  # a translator bug: keep this proxy's last good
                errors[proxy.node_id] = str(error)
                log.error("snapshot for %s not consistent: %s", proxy.node_id, error)
                continue
            snapshots[proxy.node_id] = translation.snapshot
            findings += [f"{proxy.node_id}: {d}" for d in translation.diagnostics]
        self.shared.sweep()
        self.cache.set_snapshots(snapshots)
        self.translation_errors = errors
        self.findings = findings

    async def _jwks_loop(self) -> None:
        """Fetch due key sets (in a worker thread: a slow IdP never blocks xDS), bring them
        forward when a sidecar refused an unknown kid, and push when a key set changed."""
        watch = UnknownKidWatch(self.state.logs)
        while True:
            await asyncio.sleep(JWKS_TICK_SECONDS)
            if watch.poll():
                self.key_sets.unknown_kid(time.time())
            changed = False
            for source in self.key_sets.due(time.time()):
                changed |= await asyncio.to_thread(self.key_sets.fetch, source, time.time())
            if changed:
                log.info("key set changed; pushing")
                self.serve_model()

    async def _publish_status(self, ca_port: int) -> None:
        previous: Any = None
        while True:
            status = {
                "pid": os.getpid(),
                "generation": self.generation,
                "mesh_generation": self.mesh_generation,
                "last_reload": self.last_reload,
                "refused": self.refused,
                "translation_errors": self.translation_errors,
                "findings": self.findings,
                "ca_port": ca_port,
                "jwks": self.key_sets.status(),
                "proxies": self.cache.status_json(),
            }
            if status != previous:
                write_json(self.state.control_plane, status | {"written": time.time()})
                previous = status
            await asyncio.sleep(0.2)
