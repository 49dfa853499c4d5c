"""Fill fetched key sets into a model's JwtRules: the step between model/ and xds/.

Called by the control plane after each model build and after each key-set change. The model
is pure (it cannot fetch), so a rule whose keys come from a jwksUri or OIDC discovery leaves
model/ with `jwks=""`; here it gets the cache's last good key set ("" while none was ever
fetched: xds/jwt_authn.py then gives Envoy an empty key set and the rule's tokens are
refused). Inline key sets are untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from meshward.jwks import fetch
from meshward.jwks.key_sets import Source
from meshward.model import ir
from meshward.model.request_authn import JwtRule


def sources(model: ir.MeshModel) -> list[Source]:
    """Every fetched key source the model's rules use (the smallest timeout wins)."""
    found: dict[str, Source] = {}
    for proxy in model.proxies:
        for rule in proxy.jwt_rules:
            if not rule.fetched:
                continue
            source = source_of(rule)
            known = found.get(source.url)
            if known is None or source.timeout < known.timeout:
                found[source.url] = source
    return sorted(found.values(), key=lambda s: s.url)


def mesh_resolver(
    model: ir.MeshModel, fallback: fetch.Resolver = fetch.system_resolver
) -> fetch.Resolver:
    """Resolve mesh service names (`idp.auth.svc.cluster.local`, `idp.auth.svc`,
    `idp.auth`) to their pods' addresses, anything else with `fallback` (system DNS). The
    control plane runs outside every pod and has no mesh DNS, yet an IdP often runs in the
    mesh (the example's `auth/idp`, a workload without a sidecar that listens on its pod
    address). The service port must equal the pod port. Blocked CIDRs apply to these
    addresses like to any other."""
    names: dict[str, tuple[str, ...]] = {}
    for service in model.services:
        addresses = tuple(
            pod.address.pod_ip for key in service.pods if (pod := model.pod(key)) is not None
        )
        short = f"{service.name}.{service.namespace}"
        for name in (short, f"{short}.svc", service.fqdn):
            names[name] = addresses

    def resolver(host: str, port: int) -> Sequence[str]:
        found = names.get(host.lower().rstrip("."))
        return found if found is not None else fallback(host, port)

    return resolver


def source_of(rule: JwtRule) -> Source:
    return Source(rule.key_source, rule.discovery, rule.timeout_seconds)


def resolve(model: ir.MeshModel, keys: Callable[[str], str]) -> ir.MeshModel:
    """The model with every fetched rule's `jwks` set from `keys` (source URL → key set
    JSON, "" for none): `KeySets.keys` in the control plane, the published status in the CLI."""

    def fill(rule: JwtRule) -> JwtRule:
        if not rule.fetched:
            return rule
        return dataclasses.replace(rule, jwks=keys(rule.key_source))

    filled: dict[int, ir.OutboundService] = {}

    def fill_service(service: ir.OutboundService) -> ir.OutboundService:
        # The rules a caller verifies claims with (claim routes of `mesh` VirtualServices).
        if not service.route_jwt_rules:
            return service
        made = filled.get(id(service))
        if made is None:
            rules = tuple(fill(r) for r in service.route_jwt_rules)
            made = filled[id(service)] = dataclasses.replace(service, route_jwt_rules=rules)
        return made

    proxies = tuple(
        dataclasses.replace(
            p,
            jwt_rules=tuple(fill(r) for r in p.jwt_rules),
            outbound=tuple(fill_service(s) for s in p.outbound),
        )
        if p.jwt_rules or any(s.route_jwt_rules for s in p.outbound)
        else p
        for p in model.proxies
    )
    return dataclasses.replace(model, proxies=proxies)
