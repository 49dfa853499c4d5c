"""What each proxy has applied: ACKed versions per type, NACKs, and whether it is connected.

The ADS loop (`meshward.xds.serving.serve_stream`) reports every stream's events here through
`SnapshotCache`, which is a `StreamObserver`; the CLI's `status` and the dashboard read the
result as `NodeStatus` values (or `as_json()`). A NACK becomes an MW0401 diagnostic: Envoy
rejected a version and kept its last good one (DESIGN: "a NACK from Envoy is recorded
against the resource and shown by the CLI and dashboard").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from meshward.diagnostics import Diagnostic, Location
from meshward.diagnostics.catalog import lookup
from meshward.xds import discovery


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def kind_of(type_url: str) -> str:
    """`Listener` for the listener type URL: the last dotted component."""
    return type_url.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class NackRecord:
    """One rejection: which node, which type and version, what stayed in force, and why."""

    node_id: str
    type_url: str
    rejected_version: str
    kept_version: str
    message: str
    time: float

    def diagnostic(self) -> Diagnostic:
        """The MW0401 diagnostic the CLI and dashboard show for this NACK."""
        code = lookup("MW0401")
        kept = self.kept_version or "nothing"
        return Diagnostic(
            code=code.code,
            level=code.level,
            resource=f"proxy {self.node_id}",
            location=Location(field=kind_of(self.type_url)),
            message=(
                f"Envoy rejected {kind_of(self.type_url)} version {self.rejected_version} "
                f"(kept {kept}): {self.message}"
            ),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "type": kind_of(self.type_url),
            "rejected_version": self.rejected_version,
            "kept_version": self.kept_version,
            "message": self.message,
            "time": self.time,
        }


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A proxy as the control plane sees it.

    `acked`: last ACKed version per type URL. `nacks`: NACKs still in force, per type URL (a
    later ACK of that type clears it). `last_nack`: the most recent NACK ever, for history.
    `served`: the versions of the snapshot the cache holds for the node.
    """

    node_id: str
    connected: bool = False
    streams: int = 0
    acked: Mapping[str, str] = field(default_factory=_empty)
    nacks: Mapping[str, NackRecord] = field(default_factory=_empty)
    last_nack: NackRecord | None = None
    served: Mapping[str, str] = field(default_factory=_empty)

    @property
    def in_sync(self) -> bool:
        """Connected, no NACK in force, and every type Envoy ACKed is at the served version."""
        return (
            self.connected
            and not self.nacks
            and bool(self.acked)
            and all(self.served.get(t) == v for t, v in self.acked.items())
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "streams": self.streams,
            "in_sync": self.in_sync,
            "acked": {kind_of(t): v for t, v in sorted(self.acked.items())},
            "served": {kind_of(t): v for t, v in sorted(self.served.items())},
            "nacks": {kind_of(t): n.as_json() for t, n in sorted(self.nacks.items())},
            "last_nack": None if self.last_nack is None else self.last_nack.as_json(),
        }


@dataclass(slots=True)
class _Record:
    streams: int = 0
    acked: dict[str, str] = field(default_factory=dict)
    nacks: dict[str, NackRecord] = field(default_factory=dict)
    last_nack: NackRecord | None = None


class StatusBoard:
    """Collects stream events per node (a `StreamObserver`); `clock` is injected for tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def opened(self, node_id: str) -> None:
        with self._lock:
            self._records.setdefault(node_id, _Record()).streams += 1

    def closed(self, node_id: str) -> None:
        with self._lock:
            record = self._records.setdefault(node_id, _Record())
            record.streams = max(0, record.streams - 1)

    def record(self, node_id: str, events: Sequence[discovery.Event]) -> None:
        with self._lock:
            record = self._records.setdefault(node_id, _Record())
            for event in events:
                if isinstance(event, discovery.Acked):
                    record.acked[event.type_url] = event.version
                    record.nacks.pop(event.type_url, None)
                elif isinstance(event, discovery.Nacked):
                    nack = NackRecord(
                        node_id=node_id,
                        type_url=event.type_url,
                        rejected_version=event.rejected_version,
                        kept_version=event.kept_version,
                        message=event.message,
                        time=self._clock(),
                    )
                    record.nacks[event.type_url] = nack
                    record.last_nack = nack

    def status(self, node_id: str) -> NodeStatus:
        """The node's status; a node never seen is disconnected with nothing ACKed."""
        with self._lock:
            record = self._records.get(node_id, _Record())
            return NodeStatus(
                node_id=node_id,
                connected=record.streams > 0,
                streams=record.streams,
                acked=MappingProxyType(dict(record.acked)),
                nacks=MappingProxyType(dict(record.nacks)),
                last_nack=record.last_nack,
            )

    def nodes(self) -> tuple[str, ...]:
        """Every node that ever opened a stream, sorted."""
        with self._lock:
            return tuple(sorted(self._records))
