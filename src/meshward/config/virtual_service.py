"""`networking.istio.io/v1` (and v1beta1, v1alpha3) VirtualService → `networking.VirtualService`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/networking/virtual-service/) and pilot's
ValidateVirtualService: `hosts` required (MW0181), `gateways` are `name`, `ns/name` or `mesh`
(MW0182), destinations need a host and weights summing to 100 when several (MW0183), regexes
must compile under RE2's rules (MW0184), `tls` routes need `sniHosts` (MW0185).

Traffic features that change no security property but that meshward does not implement
(fault injection, mirroring, CORS, delegation, subsets) are refused with MW0186 rather than
silently dropped: a user who wrote them would get a different routing than asked.
Which gateway a route binds to, and whether its destination exists, is decided by
`meshward.model.gateway`.
"""

from __future__ import annotations

import re

from meshward.config import duration, names
from meshward.config.fields import Fields, open_mapping
from meshward.config.networking import (
    Destination,
    HeaderOperations,
    HttpMatch,
    HttpRedirect,
    HttpRoute,
    RouteDestination,
    StringMatch,
    TcpMatch,
    TcpRoute,
    TlsMatch,
    TlsRoute,
    VirtualService,
)
from meshward.config.resources import Labels, Meta

MESH = "mesh"
# RE2 (Envoy's regex engine) has no look-around and no back-references.
_NOT_RE2 = re.compile(r"\(\?[=!<]|\\[1-9]")
_UNSUPPORTED_HTTP = ("fault", "mirror", "mirrors", "mirrorPercentage", "corsPolicy", "delegate")
_REDIRECT_CODES = (301, 302, 303, 307, 308)


def parse(spec: Fields, meta: Meta, labels: Labels) -> VirtualService | None:
    """The VirtualService, or None if any field was reported as an error."""
    del labels
    hosts = spec.strings("hosts", required=True) or ()
    for host in hosts:
        if not _is_host(host):
            spec.disallow("hosts", f"host {host!r} is not *, *.suffix or a DNS name", "MW0181")
    gateways = _gateways(spec, "gateways", meta.namespace)
    http = tuple(_http(item, meta.namespace) for item in spec.items("http") or ())
    tls = tuple(_tls(item, meta.namespace) for item in spec.items("tls") or ())
    tcp = tuple(_tcp(item, meta.namespace) for item in spec.items("tcp") or ())
    spec.strings("exportTo")  # visibility across namespaces: one machine sees everything
    spec.finish()
    if spec.report.failed:
        return None
    return VirtualService(
        meta, tuple(h.lower() for h in hosts), gateways or (MESH,), http, tls, tcp
    )


def _is_host(name: str) -> bool:
    if name == "*":
        return True
    bare = name[2:] if name.startswith("*.") else name
    return bool(bare) and names.is_dns_subdomain(bare.lower())


def _gateways(fields: Fields, key: str, namespace: str) -> tuple[str, ...]:
    """`name` → `namespace/name` (the VirtualService's), `ns/name` kept, `mesh` kept."""
    result: list[str] = []
    for ref in fields.strings(key) or ():
        scope, slash, name = ref.rpartition("/")
        if ref == MESH:
            result.append(MESH)
        elif names.is_dns_subdomain(name) and (not slash or names.is_dns_label(scope)):
            result.append(f"{scope if slash else namespace}/{name}")
        else:
            fields.disallow(key, f"gateway {ref!r} is not name, namespace/name or mesh", "MW0182")
    return tuple(result)


def _string_match(fields: Fields, key: str) -> StringMatch | None:
    match = fields.mapping(key)
    return None if match is None else _read_match(match, fields, key)


def _read_match(match: Fields, parent: Fields, key: str) -> StringMatch | None:
    found = [(kind, match.string(kind)) for kind in ("exact", "prefix", "regex")]
    given = [(kind, value) for kind, value in found if value is not None]
    match.finish()
    if len(given) != 1:
        parent.disallow(key, "a string match needs exactly one of exact, prefix, regex")
        return None
    kind, value = given[0]
    assert value is not None
    if kind == "regex" and not _is_re2(value):
        parent.disallow(key, f"regex {value!r} does not compile as RE2", code="MW0184")
        return None
    return StringMatch(kind, value)  # type: ignore[arg-type]


def _is_re2(pattern: str) -> bool:
    if _NOT_RE2.search(pattern):
        return False
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _header_matches(fields: Fields, key: str) -> tuple[tuple[str, StringMatch], ...]:
    found: list[tuple[str, StringMatch]] = []
    for entry in fields.entries(key) or ():
        path = f"{fields.field(key)}.{entry.key}"
        opened = open_mapping(entry.value, path, fields.report, entry.line)
        match = None if opened is None else _read_match(opened, fields, key)
        if match is not None:
            found.append((entry.key.lower(), match))
    return tuple(found)


def _match(item: Fields, namespace: str) -> HttpMatch:
    uri = _string_match(item, "uri")
    method = _string_match(item, "method")
    authority = _string_match(item, "authority")
    headers = _header_matches(item, "headers")
    without = _header_matches(item, "withoutHeaders")
    port = item.port("port")
    gateways = _gateways(item, "gateways", namespace)
    ignore_case = bool(item.boolean("ignoreUriCase"))
    name = item.string("name") or ""
    for key in ("queryParams", "sourceLabels", "sourceNamespace", "scheme", "statPrefix"):
        if item.take(key) is not None:
            item.disallow(key, f"match.{key} is not supported; refused", code="MW0186")
    item.finish()
    return HttpMatch(uri, method, authority, headers, without, port, gateways, ignore_case, name)


def _destinations(item: Fields) -> tuple[RouteDestination, ...]:
    found: list[RouteDestination] = []
    for route in item.items("route") or ():
        target = route.mapping("destination", required=True)
        host, port = None, None
        if target is not None:
            host = target.string("host", required=True)
            if host is not None and not _is_host(host):
                target.disallow("host", f"{host!r} is not a DNS name", code="MW0183")
            selector = target.mapping("port")
            if selector is not None:
                port = selector.port("number", required=True)
                selector.finish()
            if target.take("subset") is not None:
                target.disallow("subset", "subsets are not supported; refused", code="MW0186")
            target.finish()
        weight = route.integer("weight")
        if weight is not None and not 0 <= weight <= 100:
            route.disallow("weight", f"weight {weight} is outside 0-100", code="MW0183")
        if route.take("headers") is not None:
            route.disallow("headers", "per-destination headers are not supported", "MW0186")
        route.finish()
        if host is not None:
            found.append(RouteDestination(Destination(host.lower(), port), weight or 0))
    if len(found) > 1 and sum(d.weight for d in found) != 100:
        item.disallow("route", "weights of several destinations must sum to 100", "MW0183")
    return tuple(found)


def _http(item: Fields, namespace: str) -> HttpRoute:
    name = item.string("name") or ""
    matches = tuple(_match(m, namespace) for m in item.items("match") or ())
    route = _destinations(item)
    redirect = _redirect(item)
    rewrite_uri = rewrite_authority = ""
    rewrite = item.mapping("rewrite")
    if rewrite is not None:
        rewrite_uri = rewrite.string("uri") or ""
        rewrite_authority = rewrite.string("authority") or ""
        rewrite.finish()
    timeout = _millis(item, "timeout")
    attempts = per_try = None
    retry_on = ""
    retries = item.mapping("retries")
    if retries is not None:
        attempts = retries.integer("attempts")
        per_try = _millis(retries, "perTryTimeout")
        retry_on = retries.string("retryOn") or ""
        retries.accept("retryRemoteLocalities")
        retries.finish()
    request, response = _headers(item)
    if item.take("directResponse") is not None:
        item.disallow("directResponse", "directResponse is not supported; refused", "MW0186")
    for key in _UNSUPPORTED_HTTP:
        if item.take(key) is not None:
            item.disallow(key, f"http.{key} is not supported; refused", code="MW0186")
    if not route and redirect is None:
        item.disallow("route", "an http route needs route or redirect", code="MW0183")
    if route and redirect is not None:
        item.disallow("redirect", "an http route has route or redirect, not both", "MW0183")
    item.finish()
    return HttpRoute(
        name, matches, route, redirect, rewrite_uri, rewrite_authority, timeout, attempts,
        per_try, retry_on, request, response,
    )  # fmt: skip


def _redirect(item: Fields) -> HttpRedirect | None:
    redirect = item.mapping("redirect")
    if redirect is None:
        return None
    uri = redirect.string("uri") or ""
    authority = redirect.string("authority") or ""
    port = redirect.port("port")
    scheme = redirect.choice("scheme", ("http", "https")) or ""
    code = redirect.integer("redirectCode")
    if code is not None and code not in _REDIRECT_CODES:
        redirect.disallow("redirectCode", f"redirectCode {code} is not one of {_REDIRECT_CODES}")
    redirect.finish()
    return HttpRedirect(uri, authority, port, scheme, code or 301)


def _millis(fields: Fields, key: str) -> int | None:
    text = fields.string(key)
    if text is None:
        return None
    seconds = duration.parse_duration(text)
    if seconds is None or seconds < 0:
        fields.disallow(key, f"{text!r} is not a duration like 10s or 500ms", code="MW0114")
        return None
    return int(seconds * 1000)


def _operations(fields: Fields | None) -> HeaderOperations:
    if fields is None:
        return HeaderOperations()
    set_ = fields.string_map("set") or {}
    add = fields.string_map("add") or {}
    remove = fields.strings("remove") or ()
    fields.finish()
    return HeaderOperations(tuple(sorted(set_.items())), tuple(sorted(add.items())), remove)


def _headers(item: Fields) -> tuple[HeaderOperations, HeaderOperations]:
    headers = item.mapping("headers")
    if headers is None:
        return HeaderOperations(), HeaderOperations()
    request = _operations(headers.mapping("request"))
    response = _operations(headers.mapping("response"))
    headers.finish()
    return request, response


def _tls(item: Fields, namespace: str) -> TlsRoute:
    matches: list[TlsMatch] = []
    for match in item.items("match", required=True) or ():
        sni = match.strings("sniHosts", required=True) or ()
        for host in sni:
            if not _is_host(host):
                match.disallow("sniHosts", f"{host!r} is not a DNS name", code="MW0185")
        port = match.port("port")
        gateways = _gateways(match, "gateways", namespace)
        _refuse_source(match)
        match.finish()
        matches.append(TlsMatch(tuple(h.lower() for h in sni), port, gateways))
    route = _destinations(item)
    if not route:
        item.disallow("route", "a tls route needs a destination", code="MW0183")
    item.finish()
    return TlsRoute(tuple(matches), route)


def _tcp(item: Fields, namespace: str) -> TcpRoute:
    matches: list[TcpMatch] = []
    for match in item.items("match") or ():
        port = match.port("port")
        gateways = _gateways(match, "gateways", namespace)
        _refuse_source(match)
        match.finish()
        matches.append(TcpMatch(port, gateways))
    route = _destinations(item)
    if not route:
        item.disallow("route", "a tcp route needs a destination", code="MW0183")
    item.finish()
    return TcpRoute(tuple(matches), route)


def _refuse_source(match: Fields) -> None:
    for key in ("destinationSubnets", "sourceLabels", "sourceNamespace"):
        if match.take(key) is not None:
            match.disallow(key, f"match.{key} is not supported; refused", code="MW0186")
