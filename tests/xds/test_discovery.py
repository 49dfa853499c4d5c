"""Sans-I/O tests of DiscoveryStream: requests and snapshots in, responses and events out.

No sockets: every case feeds a scripted conversation and asserts the whole responses (type,
version, nonce, resource names) and the whole event list.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

from meshward.xds import discovery
from meshward.xds import snapshot as xs
from meshward.xds.discovery import (
    Acked,
    DiscoveryStream,
    Input,
    Nacked,
    NodeSeen,
    Phase,
    Sent,
    StaleIgnored,
    Subscribed,
)
from meshward.xds.secret import trust_bundle_secret

LDS, CDS, EDS, RDS, SDS = xs.LISTENER, xs.CLUSTER, xs.ENDPOINT, xs.ROUTE, xs.SECRET


def _snapshot(*, body: str = "v1", clusters: Sequence[str] = ("c1",)) -> xs.Snapshot:
    routes = [
        route_pb2.RouteConfiguration(
            name=name,
            virtual_hosts=[route_components_pb2.VirtualHost(name="all", domains=["*"])],
        )
        for name in ("r1", "r2")
    ]
    routes[0].virtual_hosts[0].routes.add().direct_response.body.inline_string = body
    eds = cluster_pb2.Cluster.DiscoveryType.Value("EDS")
    return xs.make_snapshot(
        listeners=[listener_pb2.Listener(name="l1")],
        clusters=[
            cluster_pb2.Cluster(
                name=name,
                type=eds,
                eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
                    eds_config=config_source_pb2.ConfigSource(ads={})
                ),
            )
            for name in clusters
        ],
        endpoints=[endpoint_pb2.ClusterLoadAssignment(cluster_name=name) for name in clusters],
        routes=routes,
        secrets=[trust_bundle_secret("s1", b"roots")],
    )


V1 = _snapshot()
V2_ROUTES = _snapshot(body="v2")  # only RDS differs from V1
V3_CLUSTERS = _snapshot(clusters=("c1", "c2"))  # CDS and EDS differ from V1


def _request(
    type_url: str,
    names: Sequence[str] = (),
    *,
    nonce: str = "",
    version: str = "",
    error: str | None = None,
    node: str | None = None,
) -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=list(names), response_nonce=nonce, version_info=version
    )
    if node is not None:
        request.node.id = node
        request.node.cluster = "test"
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def _names(packed: Sequence[any_pb2.Any], type_url: str) -> tuple[str, ...]:
    names = []
    for item in packed:
        assert item.type_url == type_url
        message = xs.MESSAGE_TYPES[type_url]()
        item.Unpack(message)
        names.append(getattr(message, "cluster_name" if type_url == EDS else "name"))
    return tuple(names)


Summary = tuple[str, str, str, tuple[str, ...]]


def _summary(responses: Sequence[discovery_pb2.DiscoveryResponse]) -> list[Summary]:
    return [
        (r.type_url, r.version_info, r.nonce, _names(r.resources, r.type_url)) for r in responses
    ]


def _started(*types_and_names: tuple[str, Sequence[str]]) -> DiscoveryStream:
    """A stream that has V1, was asked for each type, and ACKed every response."""
    stream = DiscoveryStream()
    stream.on_snapshot(V1)
    for index, (type_url, names) in enumerate(types_and_names):
        node = "n1" if index == 0 else None
        (response,) = stream.on_request(_request(type_url, names, node=node))
        assert (
            stream.on_request(
                _request(type_url, names, nonce=response.nonce, version=response.version_info)
            )
            == []
        )
    stream.take_events()
    return stream


def test_initial_request_is_answered_from_the_snapshot() -> None:
    stream = DiscoveryStream()
    assert stream.on_snapshot(V1) == []  # nothing asked for yet: nothing sent
    responses = stream.on_request(_request(CDS, node="n1"))
    assert _summary(responses) == [(CDS, V1.version(CDS), "1", ("c1",))]
    assert stream.node_id == "n1"
    assert stream.take_events() == (
        NodeSeen("n1", "test"),
        Subscribed(CDS, (), True),
        Sent(CDS, V1.version(CDS), "1", ("c1",)),
    )
    assert stream.phase(CDS) is Phase.SENT


def test_request_before_any_snapshot_waits_then_the_snapshot_answers_it() -> None:
    stream = DiscoveryStream()
    assert stream.on_request(_request(LDS, node="n1")) == []
    assert stream.phase(LDS) is Phase.WAITING
    assert _summary(stream.on_snapshot(V1)) == [(LDS, V1.version(LDS), "1", ("l1",))]
    assert stream.phase(LDS) is Phase.SENT


def test_ack_sends_nothing_and_is_recorded() -> None:
    stream = DiscoveryStream()
    stream.on_snapshot(V1)
    (response,) = stream.on_request(_request(LDS, node="n1"))
    stream.take_events()
    ack = _request(LDS, nonce=response.nonce, version=response.version_info)
    assert stream.on_request(ack) == []
    assert stream.take_events() == (Acked(LDS, V1.version(LDS), "1"),)
    assert stream.phase(LDS) is Phase.ACKED


def test_nack_is_recorded_once_and_the_rejected_version_is_not_resent() -> None:
    stream = _started((RDS, ("r1",)))
    (push,) = stream.on_snapshot(V2_ROUTES)
    stream.take_events()
    nack = _request(RDS, ("r1",), nonce=push.nonce, version=V1.version(RDS), error="x" * 5000)
    assert stream.on_request(nack) == []
    assert stream.on_request(nack) == []  # Envoy repeating itself: no second record
    assert stream.take_events() == (
        Nacked(
            node_id="n1",
            type_url=RDS,
            rejected_version=V2_ROUTES.version(RDS),
            kept_version=V1.version(RDS),
            nonce=push.nonce,
            message="x" * (discovery.NACK_MESSAGE_LIMIT - 1) + "…",
        ),
    )
    assert stream.phase(RDS) is Phase.NACKED
    # The same content again (a rebuild that changed nothing for RDS): still not resent.
    assert stream.on_snapshot(V2_ROUTES) == []
    # An ACK-shaped request of the NACKed nonce (e.g. a re-request): still not resent.
    assert stream.on_request(_request(RDS, ("r1",), nonce=push.nonce)) == []
    # New content is the way out.
    assert _summary(stream.on_snapshot(V1)) == [(RDS, V1.version(RDS), "3", ("r1",))]


def test_stale_nonce_is_ignored_with_its_names() -> None:
    stream = _started((EDS, ("c1",)))
    (push,) = stream.on_snapshot(V3_CLUSTERS)
    assert push.nonce == "2"
    stale = _request(EDS, ("c1", "c2"), nonce="1", version=V1.version(EDS))
    assert stream.on_request(stale) == []
    assert stream.take_events() == (
        Sent(EDS, V3_CLUSTERS.version(EDS), "2", ("c1",)),
        StaleIgnored(EDS, "1"),
    )
    # The ACK of the response in flight carries the widened names: answered at once.
    ack = _request(EDS, ("c1", "c2"), nonce="2", version=V3_CLUSTERS.version(EDS))
    assert _summary(stream.on_request(ack)) == [(EDS, V3_CLUSTERS.version(EDS), "3", ("c1", "c2"))]
    assert stream.take_events() == (
        Subscribed(EDS, ("c1", "c2"), False),
        Acked(EDS, V3_CLUSTERS.version(EDS), "2"),
        Sent(EDS, V3_CLUSTERS.version(EDS), "3", ("c1", "c2")),
    )


def test_eds_re_request_after_cds_update_is_answered_with_a_new_nonce() -> None:
    stream = _started((CDS, ()), (EDS, ("c1",)))
    # Envoy asks again with the version and nonce it already ACKed (warming a new cluster).
    again = _request(EDS, ("c1",), nonce="2", version=V1.version(EDS))
    assert _summary(stream.on_request(again)) == [(EDS, V1.version(EDS), "3", ("c1",))]


def test_rds_sends_only_subscribed_names_that_exist() -> None:
    stream = DiscoveryStream()
    stream.on_snapshot(V1)
    first = stream.on_request(_request(RDS, ("r1", "absent"), node="n1"))
    assert _summary(first) == [(RDS, V1.version(RDS), "1", ("r1",))]
    widened = _request(RDS, ("r1", "r2", "absent"), nonce="1", version=V1.version(RDS))
    assert _summary(stream.on_request(widened)) == [(RDS, V1.version(RDS), "2", ("r1", "r2"))]


@pytest.mark.parametrize(
    ("new", "pushed"),
    [
        (V1, []),  # nothing changed: nothing pushed
        (V2_ROUTES, [(RDS, V2_ROUTES.version(RDS), "6", ("r1",))]),
        (
            V3_CLUSTERS,  # clusters before their endpoints (TYPE_ORDER)
            [
                (CDS, V3_CLUSTERS.version(CDS), "6", ("c1", "c2")),
                (EDS, V3_CLUSTERS.version(EDS), "7", ("c1",)),
            ],
        ),
    ],
    ids=["same", "routes-only", "clusters"],
)
def test_snapshot_change_pushes_only_changed_types(new: xs.Snapshot, pushed: list[Summary]) -> None:
    stream = _started((CDS, ()), (EDS, ("c1",)), (LDS, ()), (RDS, ("r1",)), (SDS, ("s1",)))
    assert _summary(stream.on_snapshot(new)) == pushed


def test_types_never_requested_are_never_sent() -> None:
    stream = _started((LDS, ()))
    assert stream.on_snapshot(V3_CLUSTERS) == []


def test_node_is_taken_from_the_first_request_only() -> None:
    stream = DiscoveryStream()
    stream.on_request(_request(LDS, node="n1"))
    stream.on_request(_request(CDS, node="other"))
    assert stream.node_id == "n1"
    assert [e for e in stream.take_events() if isinstance(e, NodeSeen)] == [NodeSeen("n1", "test")]


def test_by_name_types_are_wildcard_only_with_a_star() -> None:
    stream = DiscoveryStream()
    stream.on_snapshot(V1)
    assert _summary(stream.on_request(_request(RDS, ("*",), node="n1"))) == [
        (RDS, V1.version(RDS), "1", ("r1", "r2"))
    ]
    assert _summary(stream.on_request(_request(EDS, ()))) == [(EDS, V1.version(EDS), "2", ())]


# Pairs the table leaves out on purpose: with no nonce outstanding, a request is INITIAL or
# STALE, never ACK/RESUBSCRIBE/NACK.
_IMPOSSIBLE = {
    (phase, what)
    for phase in (Phase.IDLE, Phase.WAITING)
    for what in (Input.ACK, Input.RESUBSCRIBE, Input.NACK)
}


def test_transition_table_covers_every_possible_pair() -> None:
    every = {(phase, what) for phase in Phase for what in Input}
    assert every - set(discovery.TRANSITIONS) == _IMPOSSIBLE


def test_truncate() -> None:
    assert discovery.truncate("abc", 3) == "abc"
    assert discovery.truncate("abcd", 3) == "ab…"
