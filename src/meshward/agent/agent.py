"""The node agent process: runs one `Sidecar` per sidecar pod in the runner's mesh record.

Started by the runner as `python -m meshward.agent --state-dir DIR`. Reconciles on start, on
SIGHUP (the runner applied a change) and every few seconds; publishes per-pod status
(Envoy PID, readiness, certificate serial and expiry, rotations) in `agent.json`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass, field

from meshward.agent.sidecar import AgentContext, Sidecar
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json, write_json

log = logging.getLogger("meshward.agent")


@dataclass
class Agent:
    state: StateDir
    sidecars: dict[str, Sidecar] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._wake.set)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        context = await self._context()
        stopper = asyncio.create_task(self._stop.wait())
        while not self._stop.is_set():
            await self._reconcile(context)
            await self._publish()
            waker = asyncio.create_task(self._wake.wait())
            await asyncio.wait({waker, stopper}, timeout=1.0, return_when="FIRST_COMPLETED")
            waker.cancel()
            self._wake.clear()
        await asyncio.gather(*(s.stop() for s in self.sidecars.values()))
        self.sidecars.clear()
        await self._publish()

    async def _context(self) -> AgentContext:
        """Wait for the control plane to publish its ports, then read the trust root."""
        while True:
            runner = read_json(self.state.runner) or {}
            plane = read_json(self.state.control_plane) or {}
            mesh = read_mesh(self.state)
            root = self.state.ca / "root-cert.pem"
            if plane.get("ca_port") and mesh is not None and root.exists():
                return AgentContext(
                    state=self.state,
                    xds=(str(runner.get("xds_host") or "127.0.0.1"), int(runner["ports"]["xds"])),
                    ca_target=f"127.0.0.1:{plane['ca_port']}",
                    root_pem=root.read_bytes(),
                    cert_ttl_seconds=mesh.cert_ttl_seconds,
                )
            await asyncio.sleep(0.1)

    async def _reconcile(self, context: AgentContext) -> None:
        mesh = read_mesh(self.state)
        if mesh is None:
            return
        wanted = {f"{p.namespace}/{p.pod}": p for p in mesh.pods if p.sidecar}
        for name in sorted(set(self.sidecars) - set(wanted)):
            log.info("stopping sidecar %s", name)
            await self.sidecars.pop(name).stop()
        for name, pod in sorted(wanted.items()):
            current = self.sidecars.get(name)
            if current is not None and current.pod.node_id == pod.node_id:
                current.pod = pod  # the credentials it originates TLS with may have changed
                current.refresh_secrets()  # and a credential itself may have been replaced
                continue
            if current is not None:
                await self.sidecars.pop(name).stop()
            sidecar = Sidecar(pod, context)
            try:
                await sidecar.start()
            except Exception as error:  # CA not reachable yet, etc.: retry next round
                log.warning("sidecar %s not started: %s", name, error)
                await sidecar.stop()
                continue
            self.sidecars[name] = sidecar

    async def _publish(self) -> None:
        names = sorted(self.sidecars)
        ready = await asyncio.gather(*(asyncio.to_thread(self.sidecars[n].ready) for n in names))
        pods = {
            n: self.sidecars[n].status() | {"ready": r} for n, r in zip(names, ready, strict=True)
        }
        write_json(self.state.agent, {"pid": os.getpid(), "pods": pods})
