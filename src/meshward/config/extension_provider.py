"""MeshConfig `extensionProviders` → `resources.ExtAuthzProvider` (external authorization).

Called by `meshward.config.mesh_config`. Istio's MeshConfig.ExtensionProvider, field for
field, for the two kinds an AuthorizationPolicy with `action: CUSTOM` can name:
`envoyExtAuthzGrpc` (EnvoyExternalAuthorizationGrpcProvider) and `envoyExtAuthzHttp`
(EnvoyExternalAuthorizationHttpProvider). Semantics from the Istio reference:
- `service` is `[<namespace>/]<host>`; meshward hosts are mesh services, written
  `name.ns.svc.cluster.local`, `name.ns.svc` or `name.ns` (resolved by model/extauthz.py);
- `timeout` defaults to 10m, `failOpen` to false, `statusOnError` to "403";
- header lists take exact names or one `*` at the start or end (prefix/suffix match);
- the tracing and logging provider kinds are refused (MW0190): meshward does not
  implement them, and accepting them silently would drop what the user asked for.
A bad field is an error of the MeshConfig, so the whole change is refused and the last good
configuration stays (a provider half-read could authorize less than the user wrote).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshward.config import duration, names
from meshward.config.document import Scalar
from meshward.config.fields import Fields
from meshward.config.resources import ExtAuthzKind, ExtAuthzProvider

KINDS: dict[str, ExtAuthzKind] = {"envoyExtAuthzGrpc": "grpc", "envoyExtAuthzHttp": "http"}
# Istio's other ExtensionProvider kinds: known, so the message can say "not supported".
OTHER_KINDS = (
    "zipkin",
    "lightstep",
    "datadog",
    "stackdriver",
    "opencensus",
    "skywalking",
    "opentelemetry",
    "prometheus",
    "envoyFileAccessLog",
    "envoyHttpAls",
    "envoyTcpAls",
    "envoyOtelAls",
    "sds",
)
DEFAULT_TIMEOUT_MS = 600_000
_HTTP_ONLY = (
    "pathPrefix",
    "includeRequestHeadersInCheck",
    "includeHeadersInCheck",
    "includeAdditionalHeadersInCheck",
    "headersToUpstreamOnAllow",
    "headersToDownstreamOnDeny",
    "headersToDownstreamOnAllow",
)


def parse_all(spec: Fields) -> tuple[ExtAuthzProvider, ...]:
    """Every valid provider in `spec.extensionProviders`, in written order."""
    items = spec.items("extensionProviders")
    if items is None:
        return ()
    providers: list[ExtAuthzProvider] = []
    seen: set[str] = set()
    for item in items:
        provider = _provider(item, seen)
        if provider is not None:
            providers.append(provider)
    return tuple(providers)


def _provider(item: Fields, seen: set[str]) -> ExtAuthzProvider | None:
    name = item.string("name", required=True)
    if name is not None and name in seen:
        item.disallow("name", f"extension provider {name!r} is defined twice", code="MW0191")
        name = None
    if name is not None:
        seen.add(name)
    given = [key for key in KINDS if item.has(key)]
    other = [key for key in OTHER_KINDS if item.has(key)]
    item.accept(*other)
    bodies = {key: item.mapping(key) for key in given}
    if other:
        item.disallow(
            other[0],
            f"extension provider kind {other[0]} is not supported; meshward providers are "
            "envoyExtAuthzGrpc and envoyExtAuthzHttp",
            code="MW0190",
        )
    elif len(given) != 1:
        item.disallow(
            "name",
            "an extension provider needs exactly one of envoyExtAuthzGrpc, envoyExtAuthzHttp",
            code="MW0190",
        )
    item.finish()
    if len(given) != 1 or other or name is None:
        return None
    body = bodies[given[0]]
    if body is None:
        return None
    return _body(body, name, KINDS[given[0]], item)


def _body(body: Fields, name: str, kind: ExtAuthzKind, item: Fields) -> ExtAuthzProvider | None:
    service = body.string("service", required=True)
    if service is not None and service and not is_service_host(service):
        body.disallow(
            "service",
            f"{service!r} is not a mesh service host; write name.namespace.svc.cluster.local "
            "or name.namespace",
            code="MW0192",
        )
    port = body.port("port", required=True)
    timeout_ms = _timeout(body)
    fail_open = body.boolean("failOpen") or False
    status = _status(body)
    bytes_, partial, pack = _body_check(body)
    clear_route_cache = False
    if kind == "grpc":
        clear_route_cache = body.boolean("clearRouteCache") or False
        for key in _HTTP_ONLY:
            if body.has(key):
                body.accept(key)
                body.disallow(key, f"{key} is for envoyExtAuthzHttp only", code="MW0106")
        http = _Http()
    else:
        http = _http_fields(body)
    body.finish()
    if service is None or port is None:
        return None
    return ExtAuthzProvider(
        name=name,
        kind=kind,
        service=service,
        port=port,
        timeout_ms=timeout_ms,
        fail_open=fail_open,
        status_on_error=status,
        path_prefix=http.path_prefix,
        include_request_headers=http.include,
        include_additional_headers=http.additional,
        headers_to_upstream_on_allow=http.upstream_on_allow,
        headers_to_downstream_on_deny=http.downstream_on_deny,
        headers_to_downstream_on_allow=http.downstream_on_allow,
        max_request_bytes=bytes_,
        allow_partial_message=partial,
        pack_as_bytes=pack,
        clear_route_cache=clear_route_cache,
        line=item.line,
        path=item.path,
    )


def is_service_host(value: str) -> bool:
    """`[ns/]name.ns`, `[ns/]name.ns.svc` or `[ns/]name.ns.svc.cluster.local`."""
    _, _, host = value.rpartition("/")
    labels = host.split(".")
    for suffix in (["svc", "cluster", "local"], ["svc"], []):
        if suffix and labels[-len(suffix) :] != suffix:
            continue
        rest = labels[: len(labels) - len(suffix)]
        if len(rest) == 2 and all(names.is_dns_label(label) for label in rest):
            return True
    return False


def _timeout(body: Fields) -> int:
    text = body.string("timeout")
    if text is None:
        return DEFAULT_TIMEOUT_MS
    seconds = duration.parse_duration(text)
    if seconds is None:
        body.disallow("timeout", f"{text!r} is not a duration like 1s or 250ms", code="MW0114")
        return DEFAULT_TIMEOUT_MS
    millis = int(seconds * 1000)
    if millis <= 0:
        body.disallow("timeout", f"timeout {text} must be at least 1ms", code="MW0193")
        return DEFAULT_TIMEOUT_MS
    return millis


def _status(body: Fields) -> int:
    """Istio writes statusOnError as a string ("403"); an integer is accepted too."""
    if not body.has("statusOnError"):
        body.accept("statusOnError")
        return 403
    entry = body.take("statusOnError")
    raw = entry.value.value if entry is not None and isinstance(entry.value, Scalar) else None
    text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if text.isdigit() and 200 <= int(text) <= 599:
        return int(text)
    body.disallow(
        "statusOnError", f"statusOnError {raw!r} is not an HTTP status 200-599", code="MW0194"
    )
    return 403


def _body_check(body: Fields) -> tuple[int, bool, bool]:
    check = body.mapping("includeRequestBodyInCheck")
    if check is None:
        return 0, False, False
    max_bytes = check.integer("maxRequestBytes")
    partial = check.boolean("allowPartialMessage") or False
    pack = check.boolean("packAsBytes") or False
    check.finish()
    if max_bytes is not None and max_bytes <= 0:
        check.disallow("maxRequestBytes", "maxRequestBytes must be positive", code="MW0195")
        max_bytes = None
    # Envoy requires a positive buffer size; Istio leaves it to the proxy. meshward: 8 KiB.
    return max_bytes or 8192, partial, pack


@dataclass(frozen=True, slots=True)
class _Http:
    """The envoyExtAuthzHttp-only fields (empty for a gRPC provider)."""

    path_prefix: str = ""
    include: tuple[str, ...] = ()
    additional: tuple[tuple[str, str], ...] = ()
    upstream_on_allow: tuple[str, ...] = ()
    downstream_on_deny: tuple[str, ...] = ()
    downstream_on_allow: tuple[str, ...] = ()


def _http_fields(body: Fields) -> _Http:
    prefix = body.string("pathPrefix")
    if prefix is not None and not prefix.startswith("/"):
        body.disallow("pathPrefix", f"pathPrefix {prefix!r} must start with /", code="MW0196")
        prefix = None
    # includeHeadersInCheck is Istio's deprecated name of includeRequestHeadersInCheck.
    include = _headers(body, "includeRequestHeadersInCheck") + _headers(
        body, "includeHeadersInCheck"
    )
    additional = body.string_map("includeAdditionalHeadersInCheck") or {}
    for header in additional:
        if not _header_ok(header, wildcard=False):
            body.disallow(
                "includeAdditionalHeadersInCheck",
                f"{header!r} is not a header name",
                code="MW0195",
            )
    return _Http(
        path_prefix=prefix or "",
        include=tuple(dict.fromkeys(include)),
        additional=tuple(sorted((k.lower(), v) for k, v in additional.items())),
        upstream_on_allow=_headers(body, "headersToUpstreamOnAllow"),
        downstream_on_deny=_headers(body, "headersToDownstreamOnDeny"),
        downstream_on_allow=_headers(body, "headersToDownstreamOnAllow"),
    )


def _headers(body: Fields, key: str) -> tuple[str, ...]:
    values = body.strings(key) or ()
    for value in values:
        if not _header_ok(value, wildcard=True):
            body.disallow(
                key,
                f"{value!r} is not a header name, `prefix*` or `*suffix`",
                code="MW0195",
            )
    return tuple(v.lower() for v in values)


def _header_ok(value: str, *, wildcard: bool) -> bool:
    core = value
    if wildcard and value.endswith("*"):
        core = value[:-1]
    elif wildcard and value.startswith("*"):
        core = value[1:]
    # RFC 9110 §5.1 field names are tokens; `:` starts an HTTP/2 pseudo-header.
    return (
        bool(core)
        and all(c.isalnum() or c in "!#$%&'*+-.^_`|~:" for c in core)
        and ("*" not in core)
    )
