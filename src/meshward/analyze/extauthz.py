"""Check: external authorization providers that let requests through when they fail (MW0558).

Reference: Istio MeshConfig `failOpen` ("If true, the HTTP request or TCP connection will be
allowed even if the communication with the authorization service has failed"; default
false) — the same trade Kiali and Istio's docs warn about: with it set, taking the provider
down switches the CUSTOM check off. Reported once per provider that a CUSTOM policy in force
consults. Called from the check table in analyze/analysis.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshward.analyze.facts import Facts, finding
from meshward.diagnostics import Diagnostic, Location

_KIND_FIELD = {"grpc": "envoyExtAuthzGrpc", "http": "envoyExtAuthzHttp"}


def fail_open_providers(facts: Facts) -> Iterator[Diagnostic]:
    """MW0558 for every failOpen provider some sidecar port consults."""
    consulted = {
        port.authz.ext_authz.name
        for proxy in facts.model.proxies
        for port in proxy.inbound
        if port.authz.ext_authz is not None
    }
    resource, where = facts.mesh_resource()
    for provider in facts.config.mesh.extension_providers:
        if not provider.fail_open or provider.name not in consulted:
            continue
        yield finding(
            "MW0558",
            resource,
            Location(where.file, provider.line, f"{provider.path}.{_KIND_FIELD[provider.kind]}"),
            f"extension provider {provider.name!r} has failOpen: while it is down or slow, "
            "the requests its CUSTOM policies match pass unchecked",
        )
