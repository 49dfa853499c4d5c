"""The control plane's snapshot cache: the latest snapshot per proxy, and what each proxy applied.

The control plane (`meshward.server.control_plane`) builds immutable, consistent snapshots and
sets them here, many at once after each debounced rebuild (`set_snapshots`); the ADS servicer
(`meshward.server.ads`) serves every stream from it and reports each stream's ACKs, NACKs and
connections back to it. The CLI's `status` and the dashboard read `status` / `status_json`.
The server never builds or edits a snapshot; it only reads (go-control-plane's model).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from meshward.server import status as server_status
from meshward.xds import discovery
from meshward.xds import snapshot as xds_snapshot
from meshward.xds import store as xds_store


class SnapshotCache:
    """Snapshots by node id plus the status board; a `StreamObserver` for `serve_stream`.

    Setting a snapshot whose per-type version map equals the stored one is no change: no
    stream wakes, nothing is pushed. `clock` timestamps NACKs (injected for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.store = xds_store.SnapshotStore()
        self.board = server_status.StatusBoard(clock)

    def set_snapshot(self, node_id: str, snapshot: xds_snapshot.Snapshot) -> bool:
        """Set one node's snapshot; True if its content changed (its streams will push)."""
        return self.store.set(node_id, snapshot)

    def set_snapshots(self, snapshots: Mapping[str, xds_snapshot.Snapshot]) -> frozenset[str]:
        """Set many nodes' snapshots atomically; return the node ids whose content changed.

        Nodes not in `snapshots` keep theirs (a proxy whose snapshot failed its consistency
        check keeps its last good one); `remove` forgets a proxy that is gone.
        """
        keyed: dict[str | None, xds_snapshot.Snapshot] = {n: s for n, s in snapshots.items()}
        changed = self.store.set_many(keyed)
        return frozenset(node for node in changed if node is not None)

    def remove(self, node_id: str) -> bool:
        """Forget a node's snapshot; connected streams keep what they were sent."""
        return self.store.remove(node_id)

    def get(self, node_id: str) -> xds_snapshot.Snapshot | None:
        return self.store.get(node_id)

    async def watch(
        self, node_id: str, known: Mapping[str, str] | None = None
    ) -> xds_snapshot.Snapshot:
        """Wait for a snapshot of `node_id` whose version map is not `known`."""
        return await self.store.watch(node_id, known)

    # --- StreamObserver: called by serve_stream ------------------------------------------

    def opened(self, node_id: str) -> None:
        self.board.opened(node_id)

    def closed(self, node_id: str) -> None:
        self.board.closed(node_id)

    def record(self, node_id: str, events: Sequence[discovery.Event]) -> None:
        self.board.record(node_id, events)

    # --- status for the CLI and dashboard --------------------------------------------------

    def status(self, node_id: str) -> server_status.NodeStatus:
        """ACKed versions, NACKs, connection, and the versions the cache serves for the node."""
        snapshot = self.store.get(node_id)
        served = MappingProxyType(dict(snapshot.versions)) if snapshot is not None else None
        current = self.board.status(node_id)
        return current if served is None else dataclasses.replace(current, served=served)

    def nodes(self) -> tuple[str, ...]:
        """Every node with a snapshot or a stream, sorted."""
        return tuple(sorted(set(self.store.nodes()) | set(self.board.nodes())))

    def status_json(self) -> dict[str, Any]:
        """`{node_id: NodeStatus.as_json()}` for every node, for the state file and dashboard."""
        return {node: self.status(node).as_json() for node in self.nodes()}
