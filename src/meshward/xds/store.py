"""Snapshots by node id, with an async watch that wakes a stream when its node's snapshot changes.

Shared by the control plane's `meshward.server.cache.SnapshotCache` and the node agent's
`meshward.agent.sds.SdsServer` (they sit side by side in the layers, so the common part lives
here); `meshward.xds.serving.serve_stream` awaits `watch`. A snapshot stored under `None` serves
every node that has none of its own (the agent's one set of secrets for all its Envoys).

A store only replaces a node's snapshot, and only wakes its streams, when the snapshot's
per-type version map differs: versions are content hashes, so an identical rebuild is no
change and pushes nothing. Setters may be called from any thread; waiters are woken on their
own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from meshward.xds import snapshot as xds_snapshot


@dataclass(frozen=True, slots=True)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event


def versions_of(snapshot: xds_snapshot.Snapshot | None) -> dict[str, str] | None:
    """The version map that identifies `snapshot`'s content (None for no snapshot)."""
    return None if snapshot is None else dict(snapshot.versions)


class SnapshotStore:
    """The latest snapshot of each node; setters wake the streams of nodes whose content changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str | None, xds_snapshot.Snapshot] = {}
        self._waiters: dict[str, set[_Waiter]] = {}

    def get(self, node_id: str) -> xds_snapshot.Snapshot | None:
        """The snapshot serving `node_id`: its own, else the one stored under None, else None."""
        with self._lock:
            return self._lookup(node_id)

    def nodes(self) -> tuple[str, ...]:
        """Node ids with a snapshot of their own, sorted."""
        with self._lock:
            return tuple(sorted(node for node in self._snapshots if node is not None))

    def set(self, node_id: str | None, snapshot: xds_snapshot.Snapshot) -> bool:
        """Store one snapshot; True if its content differs from what was stored."""
        return bool(self.set_many({node_id: snapshot}))

    def set_many(
        self, snapshots: Mapping[str | None, xds_snapshot.Snapshot]
    ) -> frozenset[str | None]:
        """Store many snapshots at once (no stream sees half of them); return the changed keys."""
        with self._lock:
            changed = frozenset(
                node
                for node, snapshot in snapshots.items()
                if versions_of(self._snapshots.get(node)) != versions_of(snapshot)
            )
            for node in changed:
                self._snapshots[node] = snapshots[node]
            waiters = self._take_waiters(changed)
        _wake(waiters)
        return changed

    def remove(self, node_id: str | None) -> bool:
        """Forget a node's own snapshot (streams keep what they were sent); True if it had one."""
        with self._lock:
            had = self._snapshots.pop(node_id, None) is not None
            waiters = self._take_waiters({node_id}) if had else []
        _wake(waiters)
        return had

    async def watch(self, node_id: str, known: Mapping[str, str] | None) -> xds_snapshot.Snapshot:
        """Wait until `node_id` has a snapshot whose version map is not `known`, and return it.

        `known=None` returns the first snapshot there is; a node without one waits (an Envoy is
        never answered from an empty snapshot).
        """
        while True:
            waiter = _Waiter(asyncio.get_running_loop(), asyncio.Event())
            with self._lock:
                current = self._lookup(node_id)
                if current is not None and (known is None or versions_of(current) != dict(known)):
                    return current
                self._waiters.setdefault(node_id, set()).add(waiter)
            try:
                await waiter.event.wait()
            finally:
                with self._lock:
                    self._waiters.get(node_id, set()).discard(waiter)

    def _lookup(self, node_id: str) -> xds_snapshot.Snapshot | None:
        own = self._snapshots.get(node_id)
        return own if own is not None else self._snapshots.get(None)

    def _take_waiters(self, changed: Iterable[str | None]) -> list[_Waiter]:
        keys = set(changed)
        # A change under None reaches every node that might be served from it.
        nodes = set(self._waiters) if None in keys else {k for k in keys if k is not None}
        woken: list[_Waiter] = []
        for node in nodes:
            woken.extend(self._waiters.pop(node, set()))
        return woken


def _wake(waiters: Iterable[_Waiter]) -> None:
    for waiter in waiters:
        # A closed loop raises RuntimeError: its stream is gone, nothing to wake.
        with contextlib.suppress(RuntimeError):
            waiter.loop.call_soon_threadsafe(waiter.event.set)
