"""The thin grpc.aio loop that runs one state-of-the-world xDS stream.

Called by the control plane's ADS servicer (`meshward.server.ads`) and by the node agent's SDS
servicer (`meshward.agent.sds`). All protocol decisions are made by the sans-I/O
`meshward.xds.discovery.DiscoveryStream`; this loop only moves messages: it reads requests,
awaits snapshot changes from a `SnapshotStore`, feeds both to the stream, writes what the
stream returns, and reports the stream's events to an observer (the status board).

One task, two awaitables (the next request, the next snapshot change), and one writer, so the
stream state is never touched concurrently and responses are written in the order made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import grpc
import grpc.aio

from meshward.xds import discovery
from meshward.xds import store as xds_store

log = logging.getLogger(__name__)

# grpc.aio's end-of-stream sentinel; grpc-stubs 1.53 does not declare it.
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


class StreamObserver(Protocol):
    """Who hears about streams opening, closing, and what happened on them."""

    def opened(self, node_id: str) -> None: ...

    def closed(self, node_id: str) -> None: ...

    def record(self, node_id: str, events: Sequence[discovery.Event]) -> None: ...


async def serve_stream(
    store: xds_store.SnapshotStore,
    context: grpc.aio.ServicerContext[Any, Any],
    *,
    observer: StreamObserver | None = None,
    wildcard_types: frozenset[str] = discovery.WILDCARD_TYPES,
) -> None:
    """Serve one bidirectional SotW stream until the client closes it or the RPC is cancelled."""
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
    snapshot = store.get(node_id)
    known: Mapping[str, str] | None = xds_store.versions_of(snapshot)
    # Adopt the snapshot before the first request so the request is answered from it; with
    # every type still IDLE this sends nothing by itself.
    responses = [] if snapshot is None else stream.on_snapshot(snapshot)
    responses += stream.on_request(first)
    reading: asyncio.Future[Any] = asyncio.ensure_future(context.read())
    watching = asyncio.ensure_future(store.watch(node_id, known))
    try:
        while True:
            _report(node_id, stream, observer)
            for response in responses:
                await context.write(response)
            done, _ = await asyncio.wait({reading, watching}, return_when=asyncio.FIRST_COMPLETED)
            responses = []
            if reading in done:
                request = reading.result()
                if request is _EOF:
                    return
                responses += stream.on_request(request)
                reading = asyncio.ensure_future(context.read())
            if watching in done:
                snapshot = watching.result()
                known = xds_store.versions_of(snapshot)
                responses += stream.on_snapshot(snapshot)
                watching = asyncio.ensure_future(store.watch(node_id, known))
    finally:
        for task in (reading, watching):
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
