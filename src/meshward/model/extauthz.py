"""External authorization providers resolved against the mesh's services (`ExtAuthz`).

Called by model/mesh.py before the proxies are built; the result goes into the
`authz.AuthzIndex`, where `authz.compile_port` picks the provider of each inbound port.
A provider's `service` (Istio: `[<namespace>/]<host>`) must name a mesh service port whose
protocol fits the provider: gRPC ext_authz speaks HTTP/2, so a grpc provider needs a
`grpc`/`http2` port; an HTTP provider needs an HTTP-family port. A provider that does not
resolve is left out, so the CUSTOM policies naming it fail closed (findings MW0271/MW0272),
as Istio does for a provider it cannot build ("invalid provider": deny the CUSTOM rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshward.config.resources import ExtAuthzProvider, MeshConfig
from meshward.diagnostics import Diagnostic, Location, catalog
from meshward.model import ir
from meshward.model.authorization import ExtAuthz, StringMatch

# Which port protocols each provider kind can use (see the module docstring).
_FITS: Mapping[str, tuple[ir.Protocol, ...]] = {
    "grpc": ("GRPC", "HTTP2"),
    "http": ("HTTP", "HTTP2", "GRPC"),
}


@dataclass(frozen=True, slots=True)
class Providers:
    """The usable providers by name, and what was wrong with the others."""

    usable: Mapping[str, ExtAuthz]
    findings: tuple[Diagnostic, ...]


def resolve(mesh: MeshConfig, services: Sequence[ir.Service]) -> Providers:
    usable: dict[str, ExtAuthz] = {}
    findings: list[Diagnostic] = []
    by_key = {(s.namespace, s.name): s for s in services}
    for provider in mesh.extension_providers:
        namespace, name = service_key(provider.service)
        service = by_key.get((namespace, name))
        ports = service.ports if service is not None else ()
        port = next((p for p in ports if p.port == provider.port), None)
        if service is None or port is None:
            what = f"service {name}.{namespace}" if service is None else f"port {provider.port}"
            findings.append(
                _finding(
                    "MW0271",
                    mesh,
                    provider,
                    f"extension provider {provider.name!r}: {what} is not in the mesh; "
                    "CUSTOM policies using it deny the requests they match",
                )
            )
            continue
        if port.protocol not in _FITS[provider.kind]:
            findings.append(
                _finding(
                    "MW0272",
                    mesh,
                    provider,
                    f"extension provider {provider.name!r} ({provider.kind}) cannot use "
                    f"{service.fqdn}:{port.port}, a {port.protocol} port; name the port "
                    f"{'grpc' if provider.kind == 'grpc' else 'http'}; CUSTOM policies using "
                    "it deny the requests they match",
                )
            )
            continue
        usable[provider.name] = _ext_authz(provider, service, port.port)
    return Providers(usable, tuple(findings))


def service_key(written: str) -> tuple[str, str]:
    """(namespace, name) of `[ns/]name.ns[.svc[.cluster.local]]` (config/ checked the form)."""
    _, _, host = written.rpartition("/")
    labels = host.split(".")
    return labels[1], labels[0]


def _ext_authz(provider: ExtAuthzProvider, service: ir.Service, port: int) -> ExtAuthz:
    return ExtAuthz(
        name=provider.name,
        kind=provider.kind,
        cluster=f"outbound|{port}||{service.fqdn}",
        authority=f"{service.fqdn}:{port}",
        timeout_ms=provider.timeout_ms,
        fail_open=provider.fail_open,
        status_on_error=provider.status_on_error,
        path_prefix=provider.path_prefix,
        include_request_headers=_matches(provider.include_request_headers),
        include_additional_headers=provider.include_additional_headers,
        headers_to_upstream_on_allow=_matches(provider.headers_to_upstream_on_allow),
        headers_to_downstream_on_deny=_matches(provider.headers_to_downstream_on_deny),
        headers_to_downstream_on_allow=_matches(provider.headers_to_downstream_on_allow),
        max_request_bytes=provider.max_request_bytes,
        allow_partial_message=provider.allow_partial_message,
        pack_as_bytes=provider.pack_as_bytes,
        clear_route_cache=provider.clear_route_cache,
    )


def _matches(values: Sequence[str]) -> tuple[StringMatch, ...]:
    """Istio's header patterns: `x*` prefix, `*x` suffix, else exact (config/ refused the
    rest)."""
    out = []
    for value in values:
        if value.endswith("*"):
            out.append(StringMatch("prefix", value[:-1]))
        elif value.startswith("*"):
            out.append(StringMatch("suffix", value[1:]))
        else:
            out.append(StringMatch("exact", value))
    return tuple(out)


def _finding(code: str, mesh: MeshConfig, provider: ExtAuthzProvider, message: str) -> Diagnostic:
    meta = mesh.meta
    return Diagnostic(
        code=code,
        level=catalog.lookup(code).level,
        resource=meta.ref if meta is not None else "MeshConfig",
        location=Location(
            file=meta.file if meta is not None else "",
            line=provider.line,
            field=f"{provider.path}.service",
        ),
        message=message,
    )
