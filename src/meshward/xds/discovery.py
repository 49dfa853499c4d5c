"""Sans-I/O state of one state-of-the-world xDS stream (ADS or SDS): requests in, responses out.

Called by `meshward.xds.serving.serve_stream` (the thin grpc.aio loop that both the control
plane's ADS server and the node agent's SDS server run) and by tests, which drive it with no
sockets. It knows nonces, versions, subscriptions and ACK/NACK; it knows nothing of gRPC,
time, or where snapshots come from.

How a stream works (xDS REST and gRPC protocol, "ACK and NACK semantics", "when to send an
update", "resource warming"; facts measured against Envoy 1.40 in shared/notes):

Envoy opens one stream and, for each resource type it wants, sends a DiscoveryRequest with an
empty `response_nonce` (the *initial* request). Only the first request on the stream carries
`node` (`set_node_on_first_message_only`), so the node is taken from it and never again. The
server answers each type with a DiscoveryResponse carrying the snapshot's version of that type
and a fresh nonce. Envoy then answers *that response* with a request echoing its nonce:

* an ACK has no `error_detail` and `version_info` = the version just sent;
* a NACK has `error_detail` set and `version_info` = the last version Envoy accepted. The
  rejected version must not be sent again (it would be rejected again, forever): the type
  waits, NACKED, for new content from the control plane.

A request whose nonce is not the latest one sent for its type answers a response that has
since been superseded; it is *stale* and ignored. Stale requests are normal at start-up: a
subscription widens (EDS names grow as clusters arrive) before the first response lands.

A request with the latest nonce and no error, arriving when that nonce was already ACKed, is
a *re-request*: after a CDS update of an EDS cluster Envoy asks again for the same EDS names
with the same version and nonce to warm the new cluster, and treating it as a duplicate ACK
stalls warming for `initial_fetch_timeout` (15 s measured). So it is answered with the
current version and a new nonce. A request with the latest nonce whose resource names differ
from the subscription (*resubscribe*) ACKs the previous response and asks for the new names.

LDS and CDS are wildcard types: an empty name list means "everything", and every response
carries every resource (omission deletes). EDS, RDS and SDS are by name: a response carries
only subscribed names, and a subscribed name the snapshot lacks is simply not sent (omission
deletes nothing). A type is pushed when the snapshot's version of it differs from the version
last sent, so a route-only change pushes only RDS; types Envoy never asked for are never sent.

Each type's state is one `Phase`; what an input does is the `TRANSITIONS` table below, so
the whole protocol reads as data:

    IDLE     Envoy has not asked for this type on this stream.
    WAITING  Envoy asked, but there was no snapshot to answer from yet.
    SENT     a response is in flight; its ACK or NACK has not arrived.
    ACKED    Envoy applied the latest response.
    NACKED   Envoy rejected the latest response; wait for a new version.

Everything worth knowing is recorded as an `Event` (frozen values) that the caller drains
with `take_events()` and forwards to the status board.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from envoy.service.discovery.v3 import discovery_pb2

from meshward.xds import snapshot as xds_snapshot

# LDS and CDS are the wildcard types of state-of-the-world xDS (spec: "how the client
# specifies what resources to return"); everything else is subscribed to by name.
WILDCARD_TYPES = frozenset({xds_snapshot.LISTENER, xds_snapshot.CLUSTER})

# What `Any.Pack` puts before a message's full name (the v3 type URL form).
_TYPE_PREFIX = "type.googleapis.com/"

# NACK texts can hold a whole serialised resource; keep records and logs bounded.
NACK_MESSAGE_LIMIT = 1024


class Phase(enum.Enum):
    """Where one resource type of one stream is in the request/response dance."""

    IDLE = "idle"
    WAITING = "waiting"
    SENT = "sent"
    ACKED = "acked"
    NACKED = "nacked"


class Input(enum.Enum):
    """What happened to one type: a classified request, or a new snapshot."""

    INITIAL = "initial"  # empty nonce: a new subscription
    STALE = "stale"  # nonce is not the latest sent for this type
    ACK = "ack"  # latest nonce, no error, same names (an ACK, or a re-request if ACKED)
    RESUBSCRIBE = "resubscribe"  # latest nonce, no error, different names
    NACK = "nack"  # latest nonce, error_detail set
    NEW_CONTENT = "new_content"  # the snapshot's version of this type differs from sent
    SAME_CONTENT = "same_content"  # the snapshot's version of this type is the one sent


class Effect(enum.Enum):
    """Side effects of a transition, applied in this order."""

    RECORD_ACK = "record_ack"
    RECORD_NACK = "record_nack"
    RESPOND = "respond"  # send the current snapshot's resources (or wait if none yet)


_P, _I, _E = Phase, Input, Effect

TRANSITIONS: Mapping[tuple[Phase, Input], tuple[Phase, tuple[Effect, ...]]] = MappingProxyType(
    {
        # A new subscription is answered from any phase (spec: the server responds to every
        # initial request); RESPOND falls back to WAITING when there is no snapshot yet.
        **{(phase, _I.INITIAL): (_P.SENT, (_E.RESPOND,)) for phase in _P},
        # Stale requests answer superseded responses: nothing changes (facts note).
        **{(phase, _I.STALE): (phase, ()) for phase in _P},
        # Same content as last sent: nothing to push, whatever the phase.
        **{(phase, _I.SAME_CONTENT): (phase, ()) for phase in _P},
        # Content for a type Envoy never asked for is never sent.
        (_P.IDLE, _I.NEW_CONTENT): (_P.IDLE, ()),
        # Any other phase gets new content at once: the server need not wait for an ACK, and
        # new content is the only way out of NACKED.
        (_P.WAITING, _I.NEW_CONTENT): (_P.SENT, (_E.RESPOND,)),
        (_P.SENT, _I.NEW_CONTENT): (_P.SENT, (_E.RESPOND,)),
        (_P.ACKED, _I.NEW_CONTENT): (_P.SENT, (_E.RESPOND,)),
        (_P.NACKED, _I.NEW_CONTENT): (_P.SENT, (_E.RESPOND,)),
        # The ACK of the response in flight.
        (_P.SENT, _I.ACK): (_P.ACKED, (_E.RECORD_ACK,)),
        # Same nonce again after its ACK: a re-request (EDS warming after CDS): answer it.
        (_P.ACKED, _I.ACK): (_P.SENT, (_E.RESPOND,)),
        # After a NACK the rejected version must not go out again; wait for new content.
        (_P.NACKED, _I.ACK): (_P.NACKED, ()),
        (_P.SENT, _I.RESUBSCRIBE): (_P.SENT, (_E.RECORD_ACK, _E.RESPOND)),
        (_P.ACKED, _I.RESUBSCRIBE): (_P.SENT, (_E.RESPOND,)),
        (_P.NACKED, _I.RESUBSCRIBE): (_P.NACKED, ()),
        (_P.SENT, _I.NACK): (_P.NACKED, (_E.RECORD_NACK,)),
        (_P.ACKED, _I.NACK): (_P.NACKED, (_E.RECORD_NACK,)),
        # A repeated NACK of the same response is recorded once.
        (_P.NACKED, _I.NACK): (_P.NACKED, ()),
        # IDLE and WAITING have no nonce outstanding, so ACK, RESUBSCRIBE and NACK cannot be
        # classified for them (any non-empty nonce is STALE): those pairs are absent on
        # purpose and a lookup of one is a bug.
    }
)


@dataclass(frozen=True, slots=True)
class NodeSeen:
    """The first request named the node (and its Envoy cluster) this stream serves."""

    node_id: str
    cluster: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    """Envoy's subscription to a type changed (or was made)."""

    type_url: str
    names: tuple[str, ...]
    wildcard: bool


@dataclass(frozen=True, slots=True)
class Sent:
    """A response went out: its version, nonce and the names of the resources it carried."""

    type_url: str
    version: str
    nonce: str
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Acked:
    """Envoy applied `version` of `type_url`."""

    type_url: str
    version: str
    nonce: str


@dataclass(frozen=True, slots=True)
class Nacked:
    """Envoy rejected `rejected_version`; `kept_version` (its last good) stays in force."""

    node_id: str
    type_url: str
    rejected_version: str
    kept_version: str
    nonce: str
    message: str


@dataclass(frozen=True, slots=True)
class StaleIgnored:
    """A request answered a superseded response and was ignored."""

    type_url: str
    nonce: str


Event = NodeSeen | Subscribed | Sent | Acked | Nacked | StaleIgnored


@dataclass(slots=True)
class _TypeState:
    phase: Phase = Phase.IDLE
    names: frozenset[str] = frozenset()
    wildcard: bool = False
    sent_version: str | None = None
    nonce: str | None = None


def truncate(message: str, limit: int = NACK_MESSAGE_LIMIT) -> str:
    """`message` cut to `limit` characters, marked with an ellipsis when cut."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


class DiscoveryStream:
    """The protocol state of one SotW stream; feed it requests and snapshots, send what it returns.

    `wildcard_types` are the types whose empty name list means "all" (LDS and CDS for ADS;
    none for a secrets-only SDS stream).
    """

    def __init__(self, *, wildcard_types: frozenset[str] = WILDCARD_TYPES) -> None:
        self.wildcard_types = wildcard_types
        self.node_id: str | None = None
        self._snapshot: xds_snapshot.Snapshot | None = None
        self._types: dict[str, _TypeState] = {}
        self._events: list[Event] = []
        self._nonces = 0

    def on_request(
        self, request: discovery_pb2.DiscoveryRequest
    ) -> list[discovery_pb2.DiscoveryResponse]:
        """Classify one request from Envoy and return the responses it calls for (0 or 1)."""
        if self.node_id is None:
            # Only the first request carries the node (set_node_on_first_message_only).
            self.node_id = request.node.id
            self._events.append(NodeSeen(request.node.id, request.node.cluster))
        type_url: str = request.type_url
        state = self._types.setdefault(type_url, _TypeState())
        names = frozenset(request.resource_names)
        wildcard = "*" in names or (type_url in self.wildcard_types and not names)
        what = self._classify(state, request, names, wildcard)
        if what is Input.STALE:
            # Its names are ignored too: Envoy repeats its whole subscription in the ACK of
            # the response in flight.
            self._events.append(StaleIgnored(type_url, request.response_nonce))
        elif what is not Input.NACK and (
            (names, wildcard) != (state.names, state.wildcard) or state.phase is Phase.IDLE
        ):
            state.names, state.wildcard = names, wildcard
            self._events.append(Subscribed(type_url, tuple(sorted(names)), wildcard))
        return self._apply(type_url, state, what, request)

    def on_snapshot(self, snapshot: xds_snapshot.Snapshot) -> list[discovery_pb2.DiscoveryResponse]:
        """Adopt a new snapshot; return a response for each subscribed type whose version changed.

        Types go out in `TYPE_ORDER` (clusters before the listeners that use them).
        """
        self._snapshot = snapshot
        order = list(xds_snapshot.TYPE_ORDER) + sorted(
            set(self._types) - set(xds_snapshot.TYPE_ORDER)
        )
        responses: list[discovery_pb2.DiscoveryResponse] = []
        for type_url in order:
            state = self._types.get(type_url)
            if state is None:
                continue
            changed = snapshot.version(type_url) != state.sent_version
            what = Input.NEW_CONTENT if changed else Input.SAME_CONTENT
            responses.extend(self._apply(type_url, state, what, None))
        return responses

    def phase(self, type_url: str) -> Phase:
        """The phase of `type_url` on this stream (IDLE if never requested)."""
        state = self._types.get(type_url)
        return Phase.IDLE if state is None else state.phase

    def take_events(self) -> tuple[Event, ...]:
        """Every event recorded since the last call, oldest first."""
        events, self._events = tuple(self._events), []
        return events

    def _classify(
        self,
        state: _TypeState,
        request: discovery_pb2.DiscoveryRequest,
        names: frozenset[str],
        wildcard: bool,
    ) -> Input:
        nonce: str = request.response_nonce
        if not nonce:
            return Input.INITIAL
        if nonce != state.nonce:
            return Input.STALE
        if request.HasField("error_detail"):
            return Input.NACK
        if (names, wildcard) != (state.names, state.wildcard):
            return Input.RESUBSCRIBE
        return Input.ACK

    def _apply(
        self,
        type_url: str,
        state: _TypeState,
        what: Input,
        request: discovery_pb2.DiscoveryRequest | None,
    ) -> list[discovery_pb2.DiscoveryResponse]:
        next_phase, effects = TRANSITIONS[(state.phase, what)]
        responses: list[discovery_pb2.DiscoveryResponse] = []
        for effect in effects:
            if effect is Effect.RECORD_ACK:
                assert state.sent_version is not None and state.nonce is not None
                self._events.append(Acked(type_url, state.sent_version, state.nonce))
            elif effect is Effect.RECORD_NACK:
                assert request is not None and state.sent_version is not None
                self._events.append(
                    Nacked(
                        node_id=self.node_id or "",
                        type_url=type_url,
                        rejected_version=state.sent_version,
                        kept_version=request.version_info,
                        nonce=request.response_nonce,
                        message=truncate(request.error_detail.message),
                    )
                )
            elif effect is Effect.RESPOND:
                response = self._respond(type_url, state)
                if response is None:
                    next_phase = Phase.WAITING
                else:
                    responses.append(response)
        state.phase = next_phase
        return responses

    def _respond(self, type_url: str, state: _TypeState) -> discovery_pb2.DiscoveryResponse | None:
        if self._snapshot is None:
            return None
        available = self._snapshot.of_type(type_url)
        if state.wildcard:
            chosen = sorted(available)
        else:
            # By-name: only subscribed names; a name the snapshot lacks is not sent.
            chosen = sorted(name for name in state.names if name in available)
        self._nonces += 1
        nonce = str(self._nonces)
        version = self._snapshot.version(type_url)
        response = discovery_pb2.DiscoveryResponse(
            version_info=version, type_url=type_url, nonce=nonce
        )
        for name in chosen:
            message = available[name]
            # The snapshot serialised each resource once; packing those bytes costs a copy per
            # stream, where Pack would serialise every resource again for every stream.
            data = self._snapshot.encoding(type_url, name)
            if data is None:
                data = message.SerializeToString(deterministic=True)
            response.resources.add(type_url=_TYPE_PREFIX + message.DESCRIPTOR.full_name, value=data)
        state.sent_version, state.nonce = version, nonce
        self._events.append(Sent(type_url, version, nonce, tuple(chosen)))
        return response
