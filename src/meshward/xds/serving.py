"""The thin grpc.aio loop that runs one state-of-the-world xDS stream.

Called by the control plane's ADS servicer (`meshward.server.ads`) and by the node agent's SDS
servicer (`meshward.agent.sds`). All protocol decisions are made by the sans-I/O
`meshward.xds.discovery.DiscoveryStream`; this loop only moves messages: it reads requests,
awaits snapshot changes from a `SnapshotStore`, feeds both to the stream, writes what the
stream returns, and reports the stream's events to an observer (the status board).

One task, two awaitables (the next request, the next snapshot change), and one writer, so the
stream state is never touched concurrently and responses are written in the order made. The
ADS server also passes a `PushLimiter`: each step (feed the stream, write its responses) waits
for a permit, which bounds the responses in memory when every proxy is pushed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol

import grpc
import grpc.aio

from meshward.xds import discovery
from meshward.xds import snapshot as xds_snapshot
from meshward.xds import store as xds_store

log = logging.getLogger(__name__)

# grpc.aio's end-of-stream sentinel; grpc-stubs 1.53 does not declare it.
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


class StreamObserver(Protocol):
    """Who hears about streams opening, closing, and what happened on them."""

    def opened(self, node_id: str) -> None: ...

    def closed(self, node_id: str) -> None: ...

    def record(self, node_id: str, events: Sequence[discovery.Event]) -> None: ...


class PushLimiter:
    """How many streams may build and write responses at once.

    Every response in flight holds a copy of its resources until the client has read it: after
    a reload 1000 sidecars each waiting for ~0.6 MB of CDS held over a gigabyte at once (see
    bench/README.md). Streams take a permit to build and write, so only `permits` pushes are in
    memory at a time; the CPU is the bottleneck anyway, so this costs no throughput. A client
    that does not read must not hold a permit for ever: after `patience` seconds the stream
    gives its permit back and finishes writing without one.
    """

    def __init__(self, permits: int, patience: float) -> None:
        self._semaphore = asyncio.Semaphore(permits)
        self.patience = patience

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (build and write responses) holding a permit for at most `patience`."""
        async with self._semaphore:
            task = asyncio.ensure_future(work)
            try:
                await asyncio.wait({task}, timeout=self.patience)
            except BaseException:
                task.cancel()
                raise
        try:
            await task
        except BaseException:
            task.cancel()
            raise


async def serve_stream(
    store: xds_store.SnapshotStore,
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    observer: StreamObserver | None = None,
    wildcard_types: frozenset[str] = discovery.WILDCARD_TYPES,
    limiter: PushLimiter | None = None,
) -> None:
    """Serve one bidirectional SotW stream until the client closes it or the RPC is cancelled.

    With `limiter`, building and writing responses waits for a permit (see `PushLimiter`).
    """
    stream = discovery.DiscoveryStream(wildcard_types=wildcard_types)
    first = await context.read()
    if first is _EOF:
        return
    node_id: str = first.node.id
    if not node_id:
        # Without a node id there is no snapshot to serve (node is required on the first
        # message of a stream, xDS spec "DiscoveryRequest.node").
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first request carries no node.id")
    if observer is not None:
        observer.opened(node_id)

    async def push(
        request: Any | None, snapshot: xds_snapshot.Snapshot | None, adopt_first: bool
    ) -> None:
        # Responses are made only here, so they exist only while a permit is held.
        responses = []
        if adopt_first and snapshot is not None:
            responses += stream.on_snapshot(snapshot)
        if request is not None:
            responses += stream.on_request(request)
        if not adopt_first and snapshot is not None:
            responses += stream.on_snapshot(snapshot)
        _report(node_id, stream, observer)
        for response in responses:
            await context.write(response)

    async def step(
        request: Any | None, snapshot: xds_snapshot.Snapshot | None, *, adopt_first: bool = False
    ) -> None:
        work = push(request, snapshot, adopt_first)
        await (work if limiter is None else limiter.run(work))

    snapshot = store.get(node_id)
    known: Mapping[str, str] | None = xds_store.versions_of(snapshot)
    reading: asyncio.Future[Any] | None = None
    watching: asyncio.Future[xds_snapshot.Snapshot] | None = None
    try:
        # Adopt the snapshot before the first request so the request is answered from it;
        # with every type still IDLE this sends nothing by itself.
        await step(first, snapshot, adopt_first=True)
        reading = asyncio.ensure_future(context.read())
        watching = asyncio.ensure_future(store.watch(node_id, known))
        while True:
            done, _ = await asyncio.wait({reading, watching}, return_when=asyncio.FIRST_COMPLETED)
            request: Any | None = None
            snapshot = None
            if reading in done:
                request = reading.result()
                if request is _EOF:
                    return
                reading = asyncio.ensure_future(context.read())
            if watching in done:
                snapshot = watching.result()
                known = xds_store.versions_of(snapshot)
                watching = asyncio.ensure_future(store.watch(node_id, known))
            await step(request, snapshot)
    finally:
        for task in (reading, watching):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        _report(node_id, stream, observer)
        if observer is not None:
            observer.closed(node_id)


async def refuse_delta(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Answer an incremental (delta) xDS stream: not implemented; Envoy is told to use SotW."""
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "delta xDS is not served; use SotW")


def _report(
    node_id: str, stream: discovery.DiscoveryStream, observer: StreamObserver | None
) -> None:
    events = stream.take_events()
    for event in events:
        if isinstance(event, discovery.Nacked):
            # Once per rejected response: the stream records a repeated NACK only once.
            log.warning(
                "%s rejected %s version %s (kept %s): %s",
                node_id,
                event.type_url.rsplit(".", 1)[-1],
                event.rejected_version,
                event.kept_version or "none",
                event.message,
            )
    if observer is not None and events:
        observer.record(node_id, events)
