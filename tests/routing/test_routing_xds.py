"""Sidecar routes from `mesh` VirtualServices as Envoy config: golden outbound routes and
listeners in both network modes, Envoy accepts them (`--mode validate`), and the semantics
that matter asserted directly (routes replace the default route, 404 when none matches, the
caller's non-rejecting jwt_authn with the destination's providers per virtual host)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import routing_cases
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import json_format

from meshward.jwks import resolve
from meshward.model import ir
from meshward.xds import bootstrap, jwt_authn, snapshot, translate

if TYPE_CHECKING:
    from tests.conftest import EnvoyValidate

SVC = "outbound|8000||svc.shop.svc.cluster.local"
SVC_ADMIN = "outbound|9000||svc.shop.svc.cluster.local"
V2 = "outbound|8000||svc-v2.shop.svc.cluster.local"


def _snapshot(mode: ir.NetworkModeName) -> snapshot.Snapshot:
    return translate.proxy_snapshot(routing_cases.client(routing_cases.model(mode)))


def _dict(message: Any) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _hcm(chain: Any) -> hcm_pb2.HttpConnectionManager:
    manager = hcm_pb2.HttpConnectionManager()
    assert chain.filters[-1].typed_config.Unpack(manager)
    return manager


def _loopback() -> tuple[route_pb2.RouteConfiguration, listener_pb2.Listener]:
    snap = _snapshot("loopback")
    config = snap.of_type(snapshot.ROUTE)["outbound_http"]
    outbound = snap.of_type(snapshot.LISTENER)["outbound_http"]
    assert isinstance(config, route_pb2.RouteConfiguration)
    assert isinstance(outbound, listener_pb2.Listener)
    return config, outbound


def _virtual_outbound() -> listener_pb2.Listener:
    found = _snapshot("netns").of_type(snapshot.LISTENER)["virtualOutbound"]
    assert isinstance(found, listener_pb2.Listener)
    return found


def test_golden_outbound(golden: Callable[[str, Any], None]) -> None:
    config, outbound = _loopback()
    golden("xds/mesh-routes/routes.json", _dict(config))
    golden("xds/mesh-routes/outbound_http.json", _dict(outbound))
    golden("xds/mesh-routes/virtual_outbound.json", _dict(_virtual_outbound()))


@pytest.mark.parametrize("mode", ["loopback", "netns"])
def test_envoy_accepts_the_routes(
    tmp_path: Path, envoy_validate: EnvoyValidate, mode: ir.NetworkModeName
) -> None:
    proxy = routing_cases.client(routing_cases.model(mode))
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy),
        admin=("127.0.0.1", 0),
        node_id=proxy.node_id,
        secrets_dir=None,
        sds_socket=str(tmp_path / "sds.sock"),
    )
    done = envoy_validate(config)
    assert done.returncode == 0, done.stdout + done.stderr


def _routes_of(host: Any) -> list[tuple[str, str]]:
    """(route name, what it does) of each route of a virtual host."""
    found = []
    for made in host.routes:
        if made.HasField("direct_response"):
            action = f"direct {made.direct_response.status}"
        elif made.HasField("redirect"):
            action = f"redirect {made.redirect.path_redirect}"
        elif made.route.cluster:
            action = made.route.cluster
        else:
            action = " ".join(
                f"{c.name}={c.weight.value}" for c in made.route.weighted_clusters.clusters
            )
        found.append((made.name, action))
    return found


def test_virtual_service_routes_replace_the_default_route() -> None:
    config, _ = _loopback()
    hosts = {h.name: h for h in config.virtual_hosts}
    assert _routes_of(hosts["svc.shop.svc.cluster.local:8000"]) == [
        ("VirtualService shop/svc http[0] match[0]", V2),
        ("VirtualService shop/svc http[1] match[0]", V2),
        ("VirtualService shop/svc http[2] match[0]", "redirect /new"),
        ("VirtualService shop/svc http[4] match[0]", f"{SVC}=90 {V2}=10"),
        # Claim routes: a request must reach a route of this host before its token is
        # verified, for the per-route jwt_authn requirement to apply.
        ("no route matched", "direct 404"),
    ]
    # match.port 9000 only on the admin port; match.port 8000 only on 8000.
    assert _routes_of(hosts["svc.shop.svc.cluster.local:9000"]) == [
        ("VirtualService shop/svc http[0] match[0]", V2),
        ("VirtualService shop/svc http[2] match[0]", "redirect /new"),
        ("VirtualService shop/svc http[3] match[0]", SVC_ADMIN),
        ("VirtualService shop/svc http[4] match[0]", f"{SVC}=90 {V2}=10"),
        ("no route matched", "direct 404"),
    ]
    # plain: its claim route dropped (MW0269, no RequestAuthentication), `/gone` dropped
    # (MW0262); no claims left, so no jwt_authn and Envoy's own 404 when nothing matches.
    plain = hosts["plain.shop.svc.cluster.local:8000"]
    assert _routes_of(plain) == [
        (
            "VirtualService shop/plain http[2] match[0]",
            "outbound|8000||plain.shop.svc.cluster.local",
        )
    ]
    assert dict(plain.typed_per_filter_config) == {}
    # No VirtualService (edge-only is bound to a Gateway): the single default route.
    assert _routes_of(hosts["svc-v2.shop.svc.cluster.local:8000"]) == [("", V2)]
    claim = hosts["svc.shop.svc.cluster.local:8000"].routes[0].match
    assert [_dict(m) for m in claim.dynamic_metadata] == [
        _dict(jwt_authn.claim_matcher("group", string_pb2.StringMatcher(exact="beta")))
    ]


def _jwt(manager: hcm_pb2.HttpConnectionManager) -> jwt_pb2.JwtAuthentication:
    (found,) = [f for f in manager.http_filters if f.name == jwt_authn.JWT_FILTER]
    config = jwt_pb2.JwtAuthentication()
    assert found.typed_config.Unpack(config)
    return config


def test_caller_verifies_tokens_without_rejecting() -> None:
    config, outbound = _loopback()
    manager = _hcm(outbound.filter_chains[0])
    assert [f.name for f in manager.http_filters] == [
        jwt_authn.JWT_FILTER,
        "envoy.filters.http.router",
    ]
    authn = _jwt(manager)
    # Only the keyed rule is a provider (partners' jwksUri was never fetched here).
    assert sorted(authn.providers) == ["origins-0"]
    provider = authn.providers["origins-0"]
    # The token goes on to the destination (forward), which validates it again.
    assert (provider.issuer, provider.clear_route_cache, provider.forward) == (
        "https://idp.routes.test",
        True,
        True,
    )
    assert list(authn.rules) == []  # nothing verified outside the claim-routed hosts
    tolerant = {
        "requires_any": {
            "requirements": [{"provider_name": "origins-0"}, {"allow_missing_or_failed": {}}]
        }
    }
    assert {k: _dict(v) for k, v in authn.requirement_map.items()} == {
        SVC: tolerant,
        SVC_ADMIN: tolerant,
    }
    hosts = {h.name: h for h in config.virtual_hosts}
    per_route = jwt_pb2.PerRouteConfig()
    assert (
        hosts["svc.shop.svc.cluster.local:8000"]
        .typed_per_filter_config[jwt_authn.JWT_FILTER]
        .Unpack(per_route)
    )
    assert per_route.requirement_name == SVC
    # The caller never answers 401 itself: no local reply mapping on the outbound side.
    assert not manager.HasField("local_reply_config")


def test_netns_chain_of_the_vip_carries_the_routes() -> None:
    chains = {c.name: c for c in _virtual_outbound().filter_chains}
    manager = _hcm(chains[SVC])
    assert _routes_of(manager.route_config.virtual_hosts[0])[0] == (
        "VirtualService shop/svc http[0] match[0]",
        V2,
    )
    assert sorted(_jwt(manager).requirement_map) == [SVC]
    assert [f.name for f in _hcm(chains[V2]).http_filters] == ["envoy.filters.http.router"]


def test_fetched_keys_reach_the_callers_rules() -> None:
    """jwks.resolve fills a caller's route rules like the destination's own rules."""
    jwks = '{"keys": []}'
    model = resolve.resolve(routing_cases.model(), lambda url: jwks)
    client = routing_cases.client(model)
    (svc,) = [o for o in client.outbound if o.cluster_name == SVC]
    assert [(r.origin, r.jwks == jwks) for r in svc.route_jwt_rules] == [
        ("shop/svc-users jwtRules[0]", False),  # inline: untouched
        ("shop/partners jwtRules[0]", True),
    ]
