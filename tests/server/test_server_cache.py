"""SnapshotCache: change detection by version map, atomic multi-node sets, the async watch,
the fallback snapshot, and the status board (ACK, NACK, connection)."""

from __future__ import annotations

import asyncio
import threading

import ads_cases
import pytest

from meshward.server.cache import SnapshotCache
from meshward.server.status import NackRecord, NodeStatus
from meshward.xds import discovery
from meshward.xds import snapshot as xs
from meshward.xds.store import SnapshotStore

V1 = ads_cases.mesh_snapshot(http_port=1, tcp_port=2, backend_port=3, body="v1")
V1_AGAIN = ads_cases.mesh_snapshot(http_port=1, tcp_port=2, backend_port=3, body="v1")
V2 = ads_cases.mesh_snapshot(http_port=1, tcp_port=2, backend_port=3, body="v2")


def test_set_reports_content_changes_only() -> None:
    cache = SnapshotCache()
    assert cache.set_snapshot("a", V1) is True
    assert cache.set_snapshot("a", V1_AGAIN) is False  # equal rebuild: no push
    assert cache.get("a") is V1
    assert cache.set_snapshots({"a": V1_AGAIN, "b": V1, "c": V2}) == frozenset({"b", "c"})
    assert cache.set_snapshots({"a": V2}) == frozenset({"a"})
    assert cache.get("b") is V1  # absent from the mapping: kept
    assert cache.remove("b") is True
    assert (cache.get("b"), cache.remove("b"), cache.nodes()) == (None, False, ("a", "c"))


def test_watch_returns_a_snapshot_the_caller_has_not_seen() -> None:
    async def main() -> None:
        cache = SnapshotCache()
        waiting = asyncio.ensure_future(cache.watch("a", None))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # no snapshot: wait, never serve an empty one
        cache.set_snapshot("a", V1)
        assert await asyncio.wait_for(waiting, 1) is V1
        seen = dict(V1.versions)
        waiting = asyncio.ensure_future(cache.watch("a", seen))
        cache.set_snapshot("a", V1_AGAIN)  # same versions: no wake-up
        cache.set_snapshot("b", V2)  # another node: no wake-up
        await asyncio.sleep(0.05)
        assert not waiting.done()
        # A setter on another thread wakes the waiter on its own loop.
        setter = threading.Thread(target=cache.set_snapshot, args=("a", V2))
        setter.start()
        setter.join()
        assert await asyncio.wait_for(waiting, 1) is V2

    asyncio.run(main())


def test_store_serves_the_none_snapshot_to_nodes_without_their_own() -> None:
    async def main() -> None:
        store = SnapshotStore()
        waiting = asyncio.ensure_future(store.watch("x", None))
        await asyncio.sleep(0.01)
        assert store.set(None, V1) is True
        assert await asyncio.wait_for(waiting, 1) is V1
        store.set("y", V2)
        assert (store.get("x"), store.get("y"), store.nodes()) == (V1, V2, ("y",))

    asyncio.run(main())


def _nack(version: str, kept: str) -> discovery.Nacked:
    return discovery.Nacked("n1", xs.ROUTE, version, kept, "7", "rejected")


@pytest.mark.parametrize(
    ("events", "nacks", "acked"),
    [
        ([discovery.Acked(xs.ROUTE, "r1", "1")], {}, {xs.ROUTE: "r1"}),
        (
            [discovery.Acked(xs.ROUTE, "r1", "1"), _nack("r2", "r1")],
            {xs.ROUTE: NackRecord("n1", xs.ROUTE, "r2", "r1", "rejected", 5.0)},
            {xs.ROUTE: "r1"},
        ),
        (  # a later ACK of the type clears the NACK in force (last_nack keeps history)
            [_nack("r2", ""), discovery.Acked(xs.ROUTE, "r3", "8")],
            {},
            {xs.ROUTE: "r3"},
        ),
    ],
    ids=["ack", "nack", "nack-then-ack"],
)
def test_status_board(
    events: list[discovery.Event], nacks: dict[str, NackRecord], acked: dict[str, str]
) -> None:
    cache = SnapshotCache(clock=lambda: 5.0)
    cache.opened("n1")
    cache.record("n1", events)
    status = cache.status("n1")
    assert (dict(status.acked), dict(status.nacks), status.connected) == (acked, nacks, True)
    cache.closed("n1")
    assert cache.status("n1").connected is False


def test_nack_record_is_an_mw0401_diagnostic() -> None:
    record = NackRecord("n1", xs.LISTENER, "v2", "v1", "bad filter", 1.0)
    diagnostic = record.diagnostic()
    assert (
        diagnostic.code,
        diagnostic.level.value,
        diagnostic.resource,
        diagnostic.location.field,
    ) == ("MW0401", "error", "proxy n1", "Listener")


def test_status_of_an_unknown_node_and_in_sync() -> None:
    cache = SnapshotCache()
    assert cache.status("ghost") == NodeStatus("ghost")
    cache.set_snapshot("n1", V1)
    cache.opened("n1")
    cache.record("n1", [discovery.Acked(xs.LISTENER, V1.version(xs.LISTENER), "1")])
    assert cache.status("n1").in_sync is True
    cache.set_snapshot("n1", V2)
    cache.record("n1", [discovery.Acked(xs.ROUTE, V1.version(xs.ROUTE), "2")])
    assert cache.status("n1").in_sync is False  # RDS is behind the served version
