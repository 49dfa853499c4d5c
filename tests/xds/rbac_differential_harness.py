"""Harness of the RBAC differential test: generated policies and requests, and a real Envoy.

Used by test_xds_rbac_differential.py only.

- hypothesis strategies for `PortAuthz` values as model/ compiles them (values already
  normalised: exact-only methods, CIDRs, no ports) and for `Probe`s — requests a client
  really sends: an mTLS client certificate for one of four SPIFFE identities (or plaintext),
  a source address among three loopback addresses, method, path, Host, SNI, headers. Every
  pool overlaps the others so that rules both match and miss.
- `ServerEnvoy`: one server Envoy per batch, started from a static bootstrap that the real
  translator (xds/translate.py, hence xds/rbac.py) built for a sidecar with one PERMISSIVE
  inbound port (HTTP, or TCP) per generated `PortAuthz`. The batch's probes are fired at it,
  Envoy is stopped by PID, and its access log (complete only once Envoy has exited) is read
  back by probe id (HTTP) or client address (TCP).
- `minimise`: after a disagreement, the smallest PortAuthz that still disagrees, found by
  greedy reductions judged by real Envoy runs.

Starting one Envoy per batch of 30 ports costs ~0.3 s (measured); pushing listeners over ADS
instead would need an ACK wait and a flushed access log per batch for no gain here. The
clients' TLS handshakes in Python are the bulk of the time (~6 ms per request).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import xds_cases
from hypothesis import strategies as st
from static_envoy import http_apps, static_envoy
from xds_pki import Pki

from meshward.model import authz, ir
from meshward.model.authorization import (
    ACTION_ORDER,
    AuthzAction,
    AuthzPolicy,
    AuthzRule,
    Condition,
    OperationMatch,
    PortAuthz,
    SourceMatch,
    StringMatch,
)
from meshward.model.authz_eval import Request
from meshward.xds import bootstrap, translate

SERVER_IP, APP_IP = "127.0.61.1", "127.0.61.2"
CLIENT_IPS = ("127.0.62.1", "127.0.62.2", "127.0.63.1")
SERVER_URI = f"spiffe://{xds_cases.TRUST_DOMAIN}/ns/default/sa/web"
# Istio principals (no scheme) of the client certificates: two namespaces, two accounts each.
IDENTITIES = (
    "cluster.local/ns/default/sa/client",
    "cluster.local/ns/default/sa/admin",
    "cluster.local/ns/data/sa/reader",
    "cluster.local/ns/data/sa/writer",
)
PROBE_HEADER = "x-meshward-probe"

# --- value pools (Istio's written forms; each overlaps what the probes send) ---------------

PRINCIPALS = (
    *IDENTITIES[:3],
    "cluster.local/ns/data/sa/nobody",
    "cluster.local/ns/default/*",
    "cluster.local/*",
    "*/sa/admin",
    "*writer",
    "*",
)
NAMESPACES = ("default", "data", "def*", "*ta", "*", "other")
CIDRS = (
    "127.0.62.1/32",
    "127.0.62.0/24",
    "127.0.63.0/24",
    "127.0.0.0/8",
    "10.0.0.0/8",
    "10.1.2.3/32",
)
REQUEST_PRINCIPALS = ("*", "https://issuer.example/alice", "https://issuer.example/*")
HOSTS = ("web", "web.default", "*.example.com", "api.*", "*", "WEB")
METHODS = ("GET", "POST", "DELETE", "PUT", "get")
PATHS = (
    "/admin",
    "/admin*",
    "/api/*",
    "*/42",
    "*",
    "/api/v1/users",
    "/",
    "/api/{*}/users",
    "/api/{**}",
    "/{*}/v1/{**}",
    "/public/{**}",
    "/{**}/c",
)
CONDITION_VALUES: dict[str, tuple[str, ...]] = {
    "request.headers[x-team]": ("blue", "gr*", "*een", "*", "blue,blue"),
    "source.ip": CIDRS,
    "remote.ip": CIDRS,
    "destination.ip": ("127.0.61.0/24", "10.0.0.0/8"),
    "source.principal": PRINCIPALS,
    "source.namespace": NAMESPACES,
    "connection.sni": ("web.default.svc.cluster.local", "web*", "*.local", "*", "other"),
    "request.auth.principal": REQUEST_PRINCIPALS,
}
POLICY_NAMESPACES = ("default", "istio-system", "data")
POLICY_NAMES = ("a", "b", "deny-x", "v1.dry")

# What probes send.
PROBE_HOSTS = ("web", "Web.Default", "api.example.com", "web:8080", "API.Example.COM")
PROBE_METHODS = ("GET", "POST", "DELETE", "PATCH")
PROBE_PATHS = (
    "/admin",
    "/admin/x",
    "/api/v1/users",
    "/api/v1/users/42",
    "/api/v2/users?q=1",
    "/api//users",
    "/public/a/b/c",
    "/",
    "/API/v1/users",
    "/apix/v1/users",
)
PROBE_HEADERS = (("x-team", "blue"), ("x-team", "green"), ("x-team", ""), ("x-other", "grey"))
PROBE_SNIS = ("", "web.default.svc.cluster.local", "other")
PROBE_XFF = ("", "10.1.2.3", "10.9.9.9, 127.0.62.1")


# --- probes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """One request as the client sends it. `identity`: the Istio principal of the client
    certificate ("" sends plaintext); `sni` only travels with TLS; `xff` is the
    X-Forwarded-For header ("" for none)."""

    identity: str
    source_ip: str
    method: str
    path: str
    host: str
    headers: tuple[tuple[str, str], ...]
    sni: str = ""
    xff: str = ""

    def request(self, port: int, *, http: bool = True) -> Request:
        """The evaluator's view: the connection manager (use_remote_address false, no
        trusted hops) takes the right-most X-Forwarded-For address as the remote address.
        On a TCP port the same bytes are only a stream: no headers, no remote address."""
        headers = self.headers + ((("x-forwarded-for", self.xff),) if self.xff else ())
        return Request(
            source_principal=self.identity,
            source_ip=self.source_ip,
            destination_ip=SERVER_IP,
            destination_port=port,
            remote_ip=self.xff.rsplit(",", 1)[-1].strip() if http else "",
            sni=self.sni if self.identity else "",
            host=self.host,
            method=self.method,
            path=self.path,
            headers=headers,
            is_http=http,
        )


@dataclass(frozen=True, slots=True)
class Case:
    """One generated port: its policies, the probes sent to it, and its protocol (a TCP
    port gets network RBAC filters; its probes send the same HTTP bytes over tcp_proxy)."""

    authz: PortAuthz
    probes: tuple[Probe, ...]
    http: bool = True


# --- strategies -------------------------------------------------------------------------------


def _some(pool: Sequence[str]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True).map(tuple)


def _matches(pool: Sequence[str]) -> st.SearchStrategy[tuple[StringMatch, ...]]:
    return _some(pool).map(lambda values: tuple(authz.string_match(v) for v in values))


def _path_matches() -> st.SearchStrategy[tuple[StringMatch, ...]]:
    return _some(PATHS).map(lambda values: tuple(authz.path_match(v) for v in values))


_SOURCE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "principals": _matches(PRINCIPALS),
    "not_principals": _matches(PRINCIPALS),
    "request_principals": _matches(REQUEST_PRINCIPALS),
    "not_request_principals": _matches(REQUEST_PRINCIPALS),
    "namespaces": _matches(NAMESPACES),
    "not_namespaces": _matches(NAMESPACES),
    "ip_blocks": _some(CIDRS),
    "not_ip_blocks": _some(CIDRS),
    "remote_ip_blocks": _some(CIDRS),
    "not_remote_ip_blocks": _some(CIDRS),
}
# On a TCP port model/ keeps only what the network filter can see (no requestPrincipals,
# operations or request.* conditions: an ALLOW rule with them is dropped, other rules lose them).
_TCP_SOURCE_FIELDS = {
    name: strategy for name, strategy in _SOURCE_FIELDS.items() if "request" not in name
}
_TCP_CONDITION_KEYS = tuple(sorted(k for k in CONDITION_VALUES if not k.startswith("request.")))
_OPERATION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "hosts": _matches(HOSTS),
    "not_hosts": _matches(HOSTS),
    "methods": _some(METHODS),
    "not_methods": _some(METHODS),
    "paths": _path_matches(),
    "not_paths": _path_matches(),
}


@st.composite
def _fields(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """One or two fields of a source or operation (Istio rejects an empty one)."""
    names = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=2, unique=True))
    return {name: draw(fields[name]) for name in names}


@st.composite
def conditions(draw: st.DrawFn, keys: Sequence[str] = tuple(sorted(CONDITION_VALUES))) -> Condition:
    key = draw(st.sampled_from(keys))
    values = CONDITION_VALUES[key]
    which = draw(st.sampled_from(("values", "not_values", "both")))
    return Condition(
        key,
        draw(_some(values)) if which != "not_values" else (),
        draw(_some(values)) if which != "values" else (),
    )


@st.composite
def rules(draw: st.DrawFn, index: int, http: bool) -> AuthzRule:
    if not http:
        return AuthzRule(
            index,
            sources=tuple(
                SourceMatch(**f) for f in draw(st.lists(_fields(_TCP_SOURCE_FIELDS), max_size=2))
            ),
            conditions=tuple(draw(st.lists(conditions(_TCP_CONDITION_KEYS), max_size=2))),
        )
    return AuthzRule(
        index,
        sources=tuple(
            SourceMatch(**f) for f in draw(st.lists(_fields(_SOURCE_FIELDS), max_size=2))
        ),
        operations=tuple(
            OperationMatch(**f) for f in draw(st.lists(_fields(_OPERATION_FIELDS), max_size=2))
        ),
        conditions=tuple(draw(st.lists(conditions(), max_size=2))),
    )


# (action, dry_run): dry-run applies to ALLOW and DENY (istio.io/dry-run).
_KINDS: tuple[tuple[AuthzAction, bool], ...] = (
    ("DENY", False),
    ("ALLOW", False),
    ("AUDIT", False),
    ("CUSTOM", False),
    ("ALLOW", True),
    ("DENY", True),
)


@st.composite
def policies(draw: st.DrawFn, http: bool) -> AuthzPolicy:
    action, dry_run = draw(st.sampled_from(_KINDS))
    # Rule indices as written: a compiled rule keeps its position even when model/ removed
    # the ones before it, and `rule[10]` sorts before `rule[2]` in Envoy's policy map.
    indices = draw(st.lists(st.integers(0, 11), max_size=3, unique=True))
    return AuthzPolicy(
        namespace=draw(st.sampled_from(POLICY_NAMESPACES)),
        name=draw(st.sampled_from(POLICY_NAMES)),
        action=action,
        rules=tuple(draw(rules(i, http)) for i in sorted(indices)),
        dry_run=dry_run,
        provider="ext-authz" if action == "CUSTOM" else "",
    )


def port_authz(*, http: bool) -> st.SearchStrategy[PortAuthz]:
    """1-3 policies with distinct (namespace, name), in model/'s evaluation order."""
    return st.lists(
        policies(http), min_size=1, max_size=3, unique_by=lambda p: (p.namespace, p.name)
    ).map(
        lambda found: PortAuthz(
            tuple(sorted(found, key=lambda p: (ACTION_ORDER.index(p.action), p.namespace, p.name)))
        )
    )


@st.composite
def probes(draw: st.DrawFn) -> Probe:
    identity = draw(st.sampled_from(("", *IDENTITIES)))
    return Probe(
        identity=identity,
        source_ip=draw(st.sampled_from(CLIENT_IPS)),
        method=draw(st.sampled_from(PROBE_METHODS)),
        path=draw(st.sampled_from(PROBE_PATHS)),
        host=draw(st.sampled_from(PROBE_HOSTS)),
        headers=tuple(draw(st.lists(st.sampled_from(PROBE_HEADERS), max_size=2))),
        sni=draw(st.sampled_from(PROBE_SNIS)) if identity else "",
        xff=draw(st.sampled_from(PROBE_XFF)),
    )


def cases(probes_per_case: int) -> st.SearchStrategy[Case]:
    """An HTTP port, or (one time in five) a TCP port."""
    sent = st.lists(probes(), min_size=probes_per_case, max_size=probes_per_case).map(tuple)
    return st.sampled_from((True, True, True, True, False)).flatmap(
        lambda http: st.builds(Case, port_authz(http=http), sent, st.just(http))
    )


@dataclass(frozen=True, slots=True)
class Batch:
    """The cases of one Envoy run. Its repr is short: a failure prints the one case that
    disagreed, not 100 kB of batch."""

    cases: tuple[Case, ...]

    def __repr__(self) -> str:
        return f"Batch(<{len(self.cases)} cases>)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """hypothesis' pretty printer looks for this before unpacking a dataclass."""
        del cycle
        printer.text(repr(self))


def batches(size: int, probes_per_case: int) -> st.SearchStrategy[Batch]:
    return st.lists(cases(probes_per_case), min_size=size, max_size=size).map(
        lambda found: Batch(tuple(found))
    )


# --- network ----------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on both the server and the app address."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as first:
            first.bind((SERVER_IP, 0))
            port = int(first.getsockname()[1])
            with contextlib.suppress(OSError), socket.socket() as other:
                other.bind((APP_IP, port))
                if port not in ports:
                    ports.append(port)
    return ports


class _Ok(BaseHTTPRequestHandler):
    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _ok  # noqa: N815 - http.server names

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


def apps(ports: Sequence[int]) -> contextlib.AbstractContextManager[None]:
    """The local app behind every inbound port (answers 200 to any method)."""
    return http_apps(APP_IP, ports, _Ok, poll=0.02)


def client_contexts(pki: Pki) -> dict[str, ssl.SSLContext]:
    """A TLS client context per identity, presenting its SPIFFE certificate."""
    contexts = {}
    for principal in IDENTITIES:
        directory = pki.leaf_dir(f"spiffe://{principal}")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # SVIDs carry a URI SAN, no DNS name
        context.load_verify_locations(directory / "root.pem")
        context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        contexts[principal] = context
    return contexts


DENIED_TCP = 0  # the status of a TCP connection that Envoy closed without an answer


def send(
    probe: Probe, port: int, probe_id: str, contexts: dict[str, ssl.SSLContext], *, tcp: bool
) -> tuple[int, str]:
    """Send `probe` to SERVER_IP:port from its source address: the HTTP status (DENIED_TCP
    when a TCP port closed the connection unanswered) and the client's "ip:port"."""
    raw = socket.create_connection(
        (SERVER_IP, port), timeout=10, source_address=(probe.source_ip, 0)
    )
    client = "{}:{}".format(*raw.getsockname())
    sock: socket.socket = raw
    if probe.identity:
        sock = contexts[probe.identity].wrap_socket(raw, server_hostname=probe.sni or None)
    connection = http.client.HTTPConnection(SERVER_IP, port, timeout=10)
    connection.sock = sock
    try:
        connection.putrequest(probe.method, probe.path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", probe.host)
        connection.putheader(PROBE_HEADER, probe_id)
        for name, value in probe.headers:
            connection.putheader(name, value)
        if probe.xff:
            connection.putheader("X-Forwarded-For", probe.xff)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status, client
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLError):
        # A TCP port's RBAC closes the connection; depending on timing the client sees it while
        # writing (broken pipe), while reading (EOF, reset) or inside TLS (EOF, zero return).
        if not tcp:
            raise
        return DENIED_TCP, client
    finally:
        connection.close()


# --- the server Envoy ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """What Envoy did with one probe: the client's status and the server's log entry."""

    status: int
    entry: dict[str, Any]


class ServerEnvoy:
    """Runs batches: one Envoy per batch, stopped by PID before its log is read."""

    def __init__(self, pki: Pki, ports: Sequence[int], directory: Path) -> None:
        self.ports = tuple(ports)
        self.directory = directory
        self.secrets = pki.leaf_dir(SERVER_URI)
        self.contexts = client_contexts(pki)
        self.batches = 0

    def run(self, batch: Sequence[Case]) -> list[list[Observed]]:
        """Observed results for every probe of every case (case i on port i)."""
        assert len(batch) <= len(self.ports)
        self.batches += 1
        server_pod = xds_cases.pod("web", SERVER_IP, APP_IP)
        proxy = xds_cases.proxy(
            server_pod,
            inbound=tuple(
                ir.InboundPort(
                    port, "HTTP" if case.http else "TCP", "PERMISSIVE", "differential", case.authz
                )
                for port, case in zip(self.ports, batch, strict=False)
            ),
        )
        log_file = self.directory / f"server-{self.batches}.log"
        sent: dict[str, tuple[int, str]] = {}
        with self._envoy(proxy, log_file) as admin:
            with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
                futures = {
                    f"{i}.{j}": pool.submit(
                        send, probe, self.ports[i], f"{i}.{j}", self.contexts, tcp=not case.http
                    )
                    for i, case in enumerate(batch)
                    for j, probe in enumerate(case.probes)
                }
                sent = {probe_id: f.result() for probe_id, f in futures.items()}
            # A TCP connection is logged when Envoy has seen it close: wait for that before
            # stopping Envoy, so that no entry is lost.
            _wait_idle(admin)
        # HTTP entries carry the probe header; a TCP entry only the client's address.
        entries: dict[str, dict[str, Any]] = {}
        for line in log_file.read_text().splitlines():
            if line.startswith("{") and '"meshward-access"' in line:
                entry = json.loads(line)
                entries[entry.get("probe") or entry["remote"]] = entry
        return [
            [
                Observed(
                    sent[f"{i}.{j}"][0], entries[f"{i}.{j}" if case.http else sent[f"{i}.{j}"][1]]
                )
                for j in range(len(case.probes))
            ]
            for i, case in enumerate(batch)
        ]

    @contextlib.contextmanager
    def _envoy(self, proxy: ir.ProxyModel, log_file: Path) -> Iterator[tuple[str, int]]:
        admin = (SERVER_IP, free_ports(1)[0])
        config = bootstrap.static_bootstrap(
            translate.proxy_snapshot(proxy),
            admin=admin,
            node_id=proxy.node_id,
            secrets_dir=self.secrets,
        )
        with static_envoy(config, log_file, admin, poll=0.02):
            yield admin


def _wait_idle(admin: tuple[str, int]) -> None:
    """Until no listener has an active downstream connection (admin `/stats`)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(*admin, timeout=2)
        try:
            connection.request("GET", "/stats?filter=downstream_cx_active")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        active = sum(
            int(value)
            for name, _, value in (line.partition(": ") for line in text.splitlines())
            if name.startswith("listener.") and not name.startswith("listener.admin")
        )
        if active == 0:
            return
        time.sleep(0.02)
    raise AssertionError("envoy connections still open after 10 s")


# --- minimising a disagreement ------------------------------------------------------------------

Disagrees = Callable[[Case, Probe, int, Observed], bool]


def minimise(server: ServerEnvoy, case: Case, probe: Probe, disagrees: Disagrees) -> PortAuthz:
    """The smallest PortAuthz (no policy, rule, part or value can go) for which Envoy and the
    evaluator still disagree on `probe`: greedy one-step reductions, each round's candidates
    judged by real Envoy runs of up to one batch each. Only runs after a failure."""
    authz, http = case.authz, case.http
    while True:
        candidates = list(_reductions(authz))
        found = None
        for start in range(0, len(candidates), len(server.ports)):
            chunk = candidates[start : start + len(server.ports)]
            results = server.run([Case(c, (probe,), http) for c in chunk])
            for candidate, port, (observation,) in zip(chunk, server.ports, results, strict=False):
                if disagrees(Case(candidate, (probe,), http), probe, port, observation):
                    found = candidate
                    break
            if found is not None:
                break
        if found is None:
            return authz
        authz = found


def _without_each(values: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    for i in range(len(values)):
        yield values[:i] + values[i + 1 :]


def _replacing_each(
    values: tuple[Any, ...], reduce: Callable[[Any], Iterator[Any]]
) -> Iterator[tuple[Any, ...]]:
    for i, value in enumerate(values):
        for smaller in reduce(value):
            yield (*values[:i], smaller, *values[i + 1 :])


def _fewer_values(match: Any) -> Iterator[Any]:
    """One value less in one field of a SourceMatch or OperationMatch, never leaving it empty."""
    empty = type(match)()
    for field in fields(match):
        for smaller in _without_each(getattr(match, field.name)):
            candidate = replace(match, **{field.name: smaller})
            if candidate != empty:
                yield candidate


def _fewer_condition_values(cond: Condition) -> Iterator[Condition]:
    for values in _without_each(cond.values):
        if values or cond.not_values:
            yield replace(cond, values=values)
    for not_values in _without_each(cond.not_values):
        if not_values or cond.values:
            yield replace(cond, not_values=not_values)


def _smaller_rules(rule: AuthzRule) -> Iterator[AuthzRule]:
    for sources in _without_each(rule.sources):
        yield replace(rule, sources=sources)
    for operations in _without_each(rule.operations):
        yield replace(rule, operations=operations)
    for conds in _without_each(rule.conditions):
        yield replace(rule, conditions=conds)
    for sources in _replacing_each(rule.sources, _fewer_values):
        yield replace(rule, sources=sources)
    for operations in _replacing_each(rule.operations, _fewer_values):
        yield replace(rule, operations=operations)
    for conds in _replacing_each(rule.conditions, _fewer_condition_values):
        yield replace(rule, conditions=conds)


def _smaller_policies(policy: AuthzPolicy) -> Iterator[AuthzPolicy]:
    for kept in _without_each(policy.rules):
        yield replace(policy, rules=kept)
    for smaller in _replacing_each(policy.rules, _smaller_rules):
        yield replace(policy, rules=smaller)


def _reductions(authz: PortAuthz) -> Iterator[PortAuthz]:
    """Every one-step reduction, biggest steps first (whole policies, then rules, ...)."""
    if len(authz.policies) > 1:
        for kept in _without_each(authz.policies):
            yield PortAuthz(kept)
    for smaller in _replacing_each(authz.policies, _smaller_policies):
        yield PortAuthz(smaller)
