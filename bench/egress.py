"""Egress benchmark: an app calling an external HTTPS API four ways, side by side in one run.

    .venv/bin/python bench/egress.py [--quick] [--duration S] [--rounds R] [--no-save]

The external API is nginx (one worker) on 127.0.0.1 terminating TLS 1.3 with certificates from
a throwaway CA (meshward.samples.edge_pki), one per server name, answering every GET with a
small fixed JSON of what it saw (TLS version, SNI, peer address). wrk plays the app
(2 threads, 16 keep-alive connections, GET /v1/status):
  (a) direct   wrk → HTTPS → server: the app does TLS itself, no proxy
  (b) sidecar  wrk → HTTP → meshward sidecar → TLS (DestinationRule SIMPLE) → server
  (c) gateway  wrk → HTTP → meshward sidecar → mesh mTLS → meshward egress gateway → TLS
               (DestinationRule SIMPLE) → server
  (d) envoy    wrk → HTTP → a hand-written static Envoy → TLS → server: (b)'s job by hand
(b) and (c) are one real mesh, started as a user starts it (`meshward up --detach`,
bench/egress-mesh/, pool 127.179): the client's sidecar routes by Host, sidecar.api.example
to (b)'s origination and gateway.api.example to the gateway. Every Envoy verifies the server
(CA and DNS SAN) and runs one worker. Before any load each path's answer is checked: TLS 1.3
at the server and the path's SNI, and for (c) the sidecar's and the gateway's counters.
Every pair is started first; each round then loads each path once in rotated order; a path's
figures are from its median round, ratios (b/a, c/b, b/d, c/a, d/a) the median of the
per-round ratios. Output: a table and bench/results/egress-<UTC>.json with req/s, p50/p99,
RSS and CPU µs per request per proxy and for the server. Every process is started and
stopped here by PID (the mesh by `meshward down`, checked to leave nothing). See
bench/README.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.client
import json
import os
import re
import ssl
import string
import sys
import tempfile
from pathlib import Path
from typing import Any

from dataplane import (
    _TLS_NS,
    NGINX,
    Mesh,
    _envoy_cluster,
    _envoy_listener,
    _nginx_conf,
    measure,
    started,
    table,
)
from harness import (
    CONNECTIONS,
    THREADS,
    Pair,
    Processes,
    Proxy,
    free_port,
    load_options,
    process_tree,
    save_report,
    wait_http_ok,
)
from rounds import median_ratios, median_sample, rotated_rounds, sample_summary

from meshward.runner import network
from meshward.samples.edge_pki import Ca
from meshward.xds import envoy_binary

BENCH = Path(__file__).resolve().parent
MESH_TEMPLATE = BENCH / "egress-mesh" / "mesh.yaml"
MESH_POOLS = (179,)  # this benchmark's loopback /16 (no other bench or test uses it)
CLIENT_POD, GATEWAY_POD = "bench/client-0", "istio-system/egressgateway-0"
OUTBOUND_HTTP_PORT = 15001  # meshward.model.ir.OUTBOUND_HTTP_PORT: the sidecar's HTTP proxy
ADMIN_PORT = 15000  # meshward.model.ir.ADMIN_PORT: a meshward Envoy's admin, on its pod address
SIDECAR_HOST = "sidecar.api.example"  # (b) and (d): origination at the first proxy
GATEWAY_HOST = "gateway.api.example"  # (c): origination at the egress gateway
TO_GATEWAY = "outbound|80||egressgateway.istio-system.svc.cluster.local"  # the sidecar's
GATEWAY_TO_API = f"outbound|443||{GATEWAY_HOST}"  # the gateway's cluster to the server
API_PATH = "/v1/status"
RATIOS = (("b", "a"), ("c", "b"), ("b", "d"), ("c", "a"), ("d", "a"))
SCHEMES = {"a": "https"}  # wrk's scheme per path; http elsewhere (the proxy does the TLS)


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    """The external HTTPS API: nginx on 127.0.0.1:`port`, certificates signed by `ca`;
    `pid` is its worker's."""

    port: int
    ca: Path
    pid: int


def nginx_api(processes: Processes, workdir: Path) -> Server:
    """nginx terminating TLS for both server names (chosen by SNI; the first is the default),
    answering GET with a fixed JSON; 10^6 requests per keep-alive connection, so no path
    reconnects during a run."""
    ca = Ca("external-api", workdir)
    port = free_port()
    servers = []
    for index, name in enumerate((SIDECAR_HOST, GATEWAY_HOST)):
        cert, key, _ = ca.issue(name, dns=name)
        default = " default_server" if index == 0 else ""
        servers.append(
            f"""  server {{
    listen 127.0.0.1:{port} ssl{default};
    server_name {name};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      default_type application/json;
      return 200 '{{"tls":"$ssl_protocol","sni":"$ssl_server_name","peer":"$remote_addr"}}\\n';
    }}
  }}
"""
        )
    path = workdir / "nginx-api.conf"
    path.write_text(_nginx_conf(workdir, "api", "".join(servers)))
    child = processes.start(
        "nginx-api",
        [NGINX, "-p", str(workdir), "-c", str(path), "-e", str(workdir / "nginx-api-error.log"),
         "-g", "daemon off;"],
    )  # fmt: skip
    # Its one worker serves every request; the master only watches it (and the bench counts
    # an `other` process alone, not with its children, so the worker is the one to count).
    wait_http_ok(port, API_PATH, child, tls=client_context(ca.cert_file))
    (worker,) = process_tree(child.pid)[1:]
    return Server(port, ca.cert_file, worker)


def client_context(ca: Path) -> ssl.SSLContext:
    """A TLS client trusting only the bench CA, for a check that dials an address (as wrk
    does in (a)), so there is no host name to check."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    return context


def served(pair: Pair, ca: Path) -> dict[str, str]:
    """What the server saw of one GET on `pair` (retried until the path answers 200)."""
    tls = client_context(ca) if SCHEMES.get(pair.key) == "https" else None
    body = wait_http_ok(pair.port, API_PATH, None, host=pair.host, headers=pair.headers, tls=tls)
    seen: dict[str, str] = json.loads(body)
    return seen


def direct_path(server: Server) -> Pair:
    return Pair("a", "direct HTTPS (no proxy)", server.port)


def envoy_config(server: Server, port: int) -> dict[str, Any]:
    """(b)'s job by hand: an HTTP listener, one route, one cluster that originates TLS as
    meshward's origination cluster does (TLS 1.2-1.3, no ALPN, HTTP/1.1 upstream, the server
    checked against the CA and its DNS SAN)."""
    upstream_tls = {
        "@type": f"{_TLS_NS}.UpstreamTlsContext",
        "sni": SIDECAR_HOST,
        "common_tls_context": {
            "tls_params": {
                "tls_minimum_protocol_version": "TLSv1_2",
                "tls_maximum_protocol_version": "TLSv1_3",
            },
            "validation_context": {
                "trusted_ca": {"filename": str(server.ca)},
                "match_typed_subject_alt_names": [
                    {"san_type": "DNS", "matcher": {"exact": SIDECAR_HOST}}
                ],
            },
        },
    }
    return {
        "static_resources": {
            "listeners": [_envoy_listener(port, "api", {})],
            "clusters": [_envoy_cluster("api", server.port, False, upstream_tls)],
        }
    }


def envoy_path(processes: Processes, workdir: Path, server: Server) -> Pair:
    port = free_port()
    config = workdir / "envoy-egress.json"
    config.write_text(json.dumps(envoy_config(server, port), indent=2))
    child = processes.start(
        "envoy-egress",
        [str(envoy_binary.envoy_path()), "-c", str(config), "--concurrency", "1",
         "--disable-hot-restart", "--log-level", "warning"],
    )  # fmt: skip
    wait_http_ok(port, API_PATH, child)
    return Pair("d", "hand-written Envoy (origination)", port, (Proxy("envoy", child.pid),))


def mesh_yaml(workdir: Path, server: Server) -> Path:
    # safe_substitute: the template's `$(MESHWARD_APP_HOST)` is meshward's, left as it is.
    text = string.Template(MESH_TEMPLATE.read_text()).safe_substitute(
        server_port=server.port, ca_file=server.ca
    )
    path = workdir / "egress-mesh.yaml"
    path.write_text(text)
    return path


def meshward_paths(processes: Processes, workdir: Path, server: Server) -> tuple[Pair, Pair]:
    """(b) and (c) from one real mesh: wrk sends to the client sidecar's outbound HTTP
    listener with the Host of the path. The mesh is stopped by `meshward down` when
    `processes` stops (which raises if a recorded process is left)."""
    mesh = Mesh(workdir / "meshward-state")
    processes.defer(mesh.down)  # before `up`: a half-started mesh is stopped too
    mesh.up(mesh_yaml(workdir, server), network.unused_pool(MESH_POOLS))
    pods, envoys = mesh.pods(), mesh.envoy_pids()
    client, gateway = pods[CLIENT_POD], pods[GATEWAY_POD]
    others = tuple(
        Proxy(role, pid)
        for role, pid in (
            ("control-plane", mesh.pid("control-plane.json")),
            ("agent", mesh.pid("agent.json")),
        )
        if pid
    )
    sidecar = Proxy("sidecar", envoys[CLIENT_POD])
    return (
        Pair(
            "b",
            "meshward sidecar origination",
            OUTBOUND_HTTP_PORT,
            (sidecar,),
            host=client["pod_ip"],
            headers=(("Host", SIDECAR_HOST),),
            others=others,
        ),
        Pair(
            "c",
            "meshward egress gateway",
            OUTBOUND_HTTP_PORT,
            (sidecar, Proxy("gateway", envoys[GATEWAY_POD])),
            host=client["pod_ip"],
            server_host=gateway["pod_ip"],  # the peer the server sees
            headers=(("Host", GATEWAY_HOST),),
            others=others,
        ),
    )


def expected(pair: Pair) -> dict[str, str]:
    """What the server must see on each path: TLS 1.3 and the SNI of the path's origination."""
    sni = {"b": SIDECAR_HOST, "c": GATEWAY_HOST, "d": SIDECAR_HOST}
    return {"tls": "TLSv1.3"} | ({"sni": sni[pair.key]} if pair.key in sni else {})


def counter(host: str, name: str) -> int:
    """One counter of the Envoy whose admin listens on `host`:15000 (a meshward proxy's)."""
    connection = http.client.HTTPConnection(host, ADMIN_PORT, timeout=5)
    try:
        connection.request("GET", f"/stats?filter=^{re.escape(name)}$")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    values = [int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.strip()]
    return sum(values)


def through_gateway(pair: Pair, ca: Path) -> dict[str, int]:
    """Proof that (c) passes the gateway, from the two Envoys' counters: one request adds a
    request on the sidecar's cluster to the gateway and on the gateway's cluster to the
    server, and both clusters have done TLS handshakes (mesh mTLS; origination). In loopback
    mode no proxy binds a source address, so the server sees 127.0.0.1 on every path."""
    sidecar, gateway = pair.host, pair.server_host
    requests = {
        "sidecar → gateway requests": (sidecar, f"cluster.{TO_GATEWAY}.upstream_rq_total"),
        "gateway → server requests": (gateway, f"cluster.{GATEWAY_TO_API}.upstream_rq_total"),
    }
    before = {label: counter(*key) for label, key in requests.items()}
    served(pair, ca)
    return {label: counter(*key) - before[label] for label, key in requests.items()} | {
        "sidecar → gateway TLS handshakes": counter(sidecar, f"cluster.{TO_GATEWAY}.ssl.handshake"),
        "gateway → server TLS handshakes": counter(
            gateway, f"cluster.{GATEWAY_TO_API}.ssl.handshake"
        ),
    }


def run(seconds: float, rounds: int) -> dict[str, Any]:
    """Start the server and the four paths, check each, load them in rotated rounds, stop
    everything; the report (also printed as a table)."""
    with (
        tempfile.TemporaryDirectory(prefix="meshward-egress-bench-") as tmp,
        started(Path(tmp)) as processes,
    ):
        workdir = Path(tmp)
        server = nginx_api(processes, workdir)
        api = (Proxy("external API (nginx)", server.pid),)
        pairs = {"a": direct_path(server)}
        pairs["b"], pairs["c"] = meshward_paths(processes, workdir, server)
        pairs["d"] = envoy_path(processes, workdir, server)
        pairs = {k: dataclasses.replace(p, others=(*api, *p.others)) for k, p in pairs.items()}
        seen = {key: served(pair, server.ca) for key, pair in pairs.items()}
        wrong: dict[str, Any] = {
            key: seen[key]
            for key, pair in pairs.items()
            if any(seen[key].get(k) != v for k, v in expected(pair).items())
        }
        gateway = through_gateway(pairs["c"], server.ca)
        if wrong or not all(gateway.values()):
            wrong["c-through-gateway"] = gateway
            raise RuntimeError(f"a path does not reach the server as it should: {wrong}")
        samples = rotated_rounds(
            pairs,
            rounds,
            lambda pair: measure(
                pair, API_PATH, seconds, None, scheme=SCHEMES.get(pair.key, "http")
            ),
        )
    results = {key: median_sample(taken) for key, taken in sorted(samples.items())}
    rates = median_ratios(samples, RATIOS)
    print(table(results, rates).replace("RSS MB c+s", "RSS MB    ").replace("CPU s c+s", "CPU s"))
    return {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "load": {"tool": "wrk", "threads": THREADS, "connections": CONNECTIONS,
                 "seconds_per_path": seconds, "path": API_PATH},
        "server": {"app": "nginx", "worker_processes": 1, "tls": "TLS 1.3, EC P-256"},
        "rounds": rounds,
        "server_saw": seen,
        "through_gateway": gateway,
        "paths": {key: dataclasses.asdict(result) for key, result in results.items()},
        "rounds_per_path": {k: [sample_summary(t) for t in samples[k]] for k in sorted(samples)},
        "ratios_rps": rates,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = load_options(__doc__.split("\n\n")[0], quick="2 s per path, one round")
    options = parser.parse_args(argv)
    seconds, rounds = (2.0, 1) if options.quick else (options.duration, options.rounds)
    if rounds < 1:
        parser.error("--rounds must be positive")
    report = run(seconds, rounds)
    if not options.no_save:
        save_report("egress", report)
    # Every request of every round answered 2xx, or the run failed.
    loads = [load for taken in report["rounds_per_path"].values() for load in taken]
    return 1 if any(load["non_2xx"] or load["socket_errors"] for load in loads) else 0


if __name__ == "__main__":
    sys.exit(main())
