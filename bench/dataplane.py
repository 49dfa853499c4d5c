"""Data-plane benchmark: the same wrk load through each proxy pair with STRICT mTLS, in one run.

    .venv/bin/python bench/dataplane.py [--quick] [--duration S] [--with-meshward]
                                        [--with-netns] [--rounds R]

Paths, all to the httpbin sample (`meshward.samples.httpbin`) on 127.0.0.1:
  (a) direct        wrk → backend
  (b) meshward      wrk → meshward sidecar → (mTLS, HTTP/2) → meshward sidecar → backend
                    only with --with-meshward: a real mesh (`meshward up --detach`, bench/mesh/)
  (c) envoy         wrk → Envoy → (mTLS, HTTP/2) → Envoy → backend; static config, 1 worker each
  (d) nginx         wrk → nginx → (mTLS, HTTP/1.1 keep-alive) → nginx → backend; 1 worker each
  (e) meshward netns  wrk inside the client pod → service VIP, captured by iptables into the
                    client sidecar → (mTLS, HTTP/2) → captured into the server sidecar → backend
                    only with --with-netns (root on Linux): `meshward up --network netns`;
                    beside (b), one run gives e/b, the price of transparent capture
Every pair is started first; then each round loads each path once (rotated order), and a
path's figures are from its median round, ratios the median of the per-round ratios
(`--rounds`, default 1). Every pair uses the same certificates (bench/certs.py). Before
measuring, each pair is checked to refuse a client with no certificate. Output: a table on
stdout and JSON in bench/results/dataplane-<UTC timestamp>.json: req/s, p50/p99 latency, RSS
(VmRSS) and CPU seconds (utime+stime during the measured run) per proxy and per backend
instance, CPU µs per request, and throughput ratios.
Every process is started here and stopped here by PID. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import certs
from harness import (
    CONNECTIONS,
    THREADS,
    Pair,
    Processes,
    Proxy,
    cpu_seconds,
    free_port,
    process_tree,
    rss_kb,
    run_wrk,
    save_report,
    wait_http_ok,
)
from rounds import (
    PathResult,
    median_ratios,
    median_sample,
    rotated_rounds,
    sample_summary,
)

from meshward import process
from meshward.netns import enter
from meshward.runner import network
from meshward.xds import envoy_binary

BENCH = Path(__file__).resolve().parent
DEFAULT_PATH = "/robots.txt"  # httpbin's fixed response: the backend costs as little as it can
APP_ROLE = "app httpbin"
APP_WARM_UP_S = 5.0  # direct load on (b)'s own backend instance before it is measured


# --- (c) Envoy pair ----------------------------------------------------------------------------


_TYPE = "type.googleapis.com/envoy.extensions."
_HCM = _TYPE + "filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = _TYPE + "filters.http.router.v3.Router"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_TLS = "envoy.transport_sockets.tls"
_TLS_NS = _TYPE + "transport_sockets.tls.v3"


def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _cert(leaf: certs.Leaf) -> dict[str, Any]:
    return {
        "certificate_chain": {"filename": str(leaf.cert)},
        "private_key": {"filename": str(leaf.key)},
    }


def _validation(pki: certs.Pki, peer: certs.Leaf) -> dict[str, Any]:
    # Check the chain against the root AND the peer's SPIFFE ID, as a mesh sidecar does.
    return {
        "trusted_ca": {"filename": str(pki.root)},
        "match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"exact": peer.spiffe_id}}
        ],
    }


def _envoy_listener(port: int, cluster: str, extra_hcm: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "ingress",
        "address": _socket(port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": "bench",
                            "codec_type": "AUTO",
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                "route": {"cluster": cluster},
                                            }
                                        ],
                                    }
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": _ROUTER},
                                }
                            ],
                            **extra_hcm,
                        },
                    }
                ]
            }
        ],
    }


def _envoy_cluster(name: str, port: int, http2: bool, tls: dict[str, Any] | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(port)}}]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    if tls is not None:
        cluster["transport_socket"] = {"name": _TLS, "typed_config": tls}
    return cluster


def envoy_configs(
    pki: certs.Pki, client_port: int, server_port: int, backend_port: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client config, server config): plaintext in → mTLS + HTTP/2 → plaintext to backend."""
    upstream_tls = {
        "@type": f"{_TLS_NS}.UpstreamTlsContext",
        "sni": pki.server.dns_name,
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificates": [_cert(pki.client)],
            "validation_context": _validation(pki, pki.server),
        },
    }
    client = {
        "static_resources": {
            "listeners": [_envoy_listener(client_port, "server_envoy", {})],
            "clusters": [_envoy_cluster("server_envoy", server_port, True, upstream_tls)],
        }
    }
    server_listener = _envoy_listener(
        server_port,
        "backend",
        # As an Istio sidecar does: hand the app the verified peer identity in XFCC.
        {
            "forward_client_cert_details": "SANITIZE_SET",
            "set_current_client_cert_details": {"uri": True},
        },
    )
    server_listener["filter_chains"][0]["transport_socket"] = {
        "name": _TLS,
        "typed_config": {
            "@type": f"{_TLS_NS}.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [_cert(pki.server)],
                "validation_context": _validation(pki, pki.client),
            },
        },
    }
    server = {
        "static_resources": {
            "listeners": [server_listener],
            "clusters": [_envoy_cluster("backend", backend_port, False, None)],
        }
    }
    return client, server


def envoy_pair(processes: Processes, workdir: Path, backend_port: int, pki: certs.Pki) -> Pair:
    client_port, server_port = free_port(), free_port()
    client, server = envoy_configs(pki, client_port, server_port, backend_port)
    return start_envoy_pair(processes, workdir, (client, server), (client_port, server_port))


def start_envoy_pair(
    processes: Processes,
    workdir: Path,
    configs: tuple[dict[str, Any], dict[str, Any]],
    ports: tuple[int, int],
    *,
    key: str = "c",
    name: str = "envoy mTLS pair (h2)",
    headers: tuple[tuple[str, str], ...] = (),
) -> Pair:
    """Start a (client, server) pair of static Envoy configs listening on `ports` (client,
    server), server first, and wait until a request (with `headers`, which the pair then
    sends under load) passes through both. Also used by bench/authz.py, whose server configs
    carry RBAC filters, and bench/jwt_overhead.py, whose requests carry a token."""
    client, server = configs
    client_port, server_port = ports
    started: list[Proxy] = []
    last: subprocess.Popen[bytes] | None = None
    for role, config in (("server", server), ("client", client)):
        path = workdir / f"envoy-{role}.json"
        path.write_text(json.dumps(config, indent=2))
        argv = [
            str(envoy_binary.envoy_path()),
            "-c", str(path),
            "--concurrency", "1",
            "--disable-hot-restart",  # no shared memory: several Envoys may run on this host
            "-l", "warning",
        ]  # fmt: skip
        last = processes.start(f"envoy-{role}", argv)
        started.append(Proxy(role, last.pid))
    assert last is not None
    wait_http_ok(client_port, DEFAULT_PATH, last, headers=headers)
    return Pair(key, name, client_port, tuple(started), server_port, headers=headers)


# --- (d) nginx pair ----------------------------------------------------------------------------

NGINX = "/usr/sbin/nginx"


def _nginx_conf(prefix: Path, role: str, http_block: str) -> str:
    # Running as root, nginx would switch its worker to `nobody`, which cannot enter this
    # private temp directory; keep the worker as the current user instead.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"  {kind}_temp_path {prefix}/{role}-{kind}-temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {prefix}/nginx-{role}.pid;\n"
        f"error_log {prefix}/nginx-{role}-error.log warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\n  access_log off;\n  keepalive_requests 1000000;\n{temp}\n{http_block}}}\n"
    )


def nginx_configs(
    prefix: Path, pki: certs.Pki, client_port: int, server_port: int, backend_port: int
) -> tuple[str, str]:
    """(client nginx.conf, server nginx.conf). nginx proxies upstream in HTTP/1.1 only."""
    client = _nginx_conf(
        prefix,
        "client",
        f"""  upstream server_nginx {{ server 127.0.0.1:{server_port}; keepalive 32;
                              keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{client_port};
    location / {{
      proxy_pass https://server_nginx;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate {pki.client.cert};
      proxy_ssl_certificate_key {pki.client.key};
      proxy_ssl_trusted_certificate {pki.root};
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      # nginx checks the upstream certificate by host name (DNS SAN), not by SPIFFE URI SAN.
      proxy_ssl_name {pki.server.dns_name};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }}
  }}
""",
    )
    server = _nginx_conf(
        prefix,
        "server",
        f"""  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 32;
                         keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{server_port} ssl;
    ssl_certificate {pki.server.cert};
    ssl_certificate_key {pki.server.key};
    # STRICT: a client certificate chaining to the root is required (nginx cannot also match
    # the client's SPIFFE ID without scripting, so it checks a little less than Envoy here).
    ssl_client_certificate {pki.root};
    ssl_verify_client on;
    ssl_verify_depth 2;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
""",
    )
    return client, server


def nginx_pair(processes: Processes, workdir: Path, backend_port: int, pki: certs.Pki) -> Pair:
    client_port, server_port = free_port(), free_port()
    client, server = nginx_configs(workdir, pki, client_port, server_port, backend_port)
    started: list[Proxy] = []
    last: subprocess.Popen[bytes] | None = None
    for role, conf in (("server", server), ("client", client)):
        path = workdir / f"nginx-{role}.conf"
        path.write_text(conf)
        argv = [
            NGINX,
            "-p",
            str(workdir),
            "-c",
            str(path),
            "-e",
            str(workdir / f"nginx-{role}-error.log"),
            "-g",
            "daemon off;",
        ]
        last = processes.start(f"nginx-{role}", argv)
        started.append(Proxy(role, last.pid))
    assert last is not None
    wait_http_ok(client_port, DEFAULT_PATH, last)
    return Pair("d", "nginx mTLS pair (http/1.1)", client_port, tuple(started), server_port)


# --- (b) meshward pair ------------------------------------------------------------------------

MESH_DIR = BENCH / "mesh"  # the bench mesh: namespace `bench`, STRICT, httpbin + idle client
# Its own loopback /16s (127.150 first, else 158 or 159 when another checkout's run holds
# it; bench/ingress.py and the ingress e2e test take others), so no other mesh answers there.
MESH_POOLS = (150, 159, 158)
CLIENT_POD, SERVER_POD = "bench/client-0", "bench/httpbin-0"
SERVER_HOST = "httpbin.bench:8000"  # the Host header the client sidecar routes by
SERVER_PORT = 8000
OUTBOUND_HTTP_PORT = 15001  # meshward.model.ir.OUTBOUND_HTTP_PORT: the sidecar's HTTP proxy port


@dataclass(frozen=True, slots=True)
class Mesh:
    """A meshward mesh driven through its CLI, as a user runs one: `meshward up --detach` on
    its own state directory, the state files for addresses and PIDs, `meshward down`."""

    state: Path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "meshward.cli.main", "--state-dir", str(self.state), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def up(self, source: Path, pool: str, network: str = "loopback") -> None:
        result = self.cli(
            *("up", str(source), "--detach", "--address-pool", pool, "--timeout", "90"),
            *("--network", network),
        )
        if result.returncode != 0:
            raise RuntimeError(f"meshward up failed:\n{result.stdout}{result.stderr}")

    def record(self, name: str) -> dict[str, Any]:
        path = self.state / name
        value: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return value

    def pods(self) -> dict[str, dict[str, Any]]:
        """mesh.json's pods by `<namespace>/<pod>`."""
        return {f"{p['namespace']}/{p['pod']}": p for p in self.record("mesh.json").get("pods", [])}

    def envoy_pids(self) -> dict[str, int]:
        """agent.json's sidecar Envoy PIDs by `<namespace>/<pod>`."""
        pods = self.record("agent.json").get("pods") or {}
        return {name: int(pod["envoy_pid"]) for name, pod in pods.items() if pod.get("envoy_pid")}

    def pid(self, record: str) -> int:
        return int(self.record(record).get("pid") or 0)

    def app_pid(self, pod: dict[str, Any]) -> int:
        """The pod's app process: the runner's descendant whose command line has its app IP."""
        for pid in process_tree(self.pid("runner.json"))[1:]:
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if pod["app_ip"].encode() in argv:
                    return pid
        return 0

    def down(self) -> None:
        """`meshward down`, then check that every process the mesh recorded is gone."""
        pids = [self.pid(name) for name in ("runner.json", "control-plane.json", "agent.json")]
        pids += self.envoy_pids().values()
        result = self.cli("down")
        left = [pid for pid in pids if pid and process.pid_alive(pid)]
        if left:
            raise RuntimeError(f"meshward down left processes {left}: {result.stderr}")


def meshward_pair(processes: Processes, workdir: Path, backend_port: int, pki: certs.Pki) -> Pair:
    """(b) wrk → client sidecar (outbound HTTP listener) → STRICT mTLS, h2 by ALPN → server
    sidecar → httpbin, everything programmed by meshward's control plane over ADS and
    certified by its CA (EC P-256 leaves under an EC root, the same shape as certs.py).

    The mesh runs its own httpbin (same module and flags as the shared backend, on the server
    pod's app address, since a sidecar forwards to its own pod's app): `backend_port` and
    `pki` are unused. The mesh is stopped by `meshward down` when `processes` stops, which
    raises if any recorded process (runner, control plane, agent, Envoy) is left.
    """
    del backend_port, pki
    mesh = Mesh(workdir / "meshward-state")
    processes.defer(mesh.down)  # before `up`: a half-started mesh is stopped too
    mesh.up(MESH_DIR, network.unused_pool(MESH_POOLS))
    pods, envoys = mesh.pods(), mesh.envoy_pids()
    client, server = pods[CLIENT_POD], pods[SERVER_POD]
    headers = (("Host", SERVER_HOST),)
    wait_http_ok(OUTBOUND_HTTP_PORT, DEFAULT_PATH, None, host=client["pod_ip"], headers=headers)
    # Warm the mesh's fresh httpbin as path (a) warms the shared backend before (c) and (d):
    # measured, a new instance spent ~40 µs per request for its first few hundred thousand
    # requests against ~20 µs afterwards, and that, not the sidecars, set b/c (bench/README.md).
    run_wrk(SERVER_PORT, DEFAULT_PATH, APP_WARM_UP_S, host=server["app_ip"])
    others = (
        Proxy("control-plane", mesh.pid("control-plane.json")),
        Proxy("agent", mesh.pid("agent.json")),
        Proxy(APP_ROLE, mesh.app_pid(server)),
    )
    return Pair(
        "b",
        "meshward sidecar pair",
        OUTBOUND_HTTP_PORT,
        (Proxy("client", envoys[CLIENT_POD]), Proxy("server", envoys[SERVER_POD])),
        SERVER_PORT,
        host=client["pod_ip"],
        server_host=server["pod_ip"],
        headers=headers,
        trust_root=mesh.state / "ca" / "root-cert.pem",
        others=tuple(other for other in others if other.pid),
    )


NETNS_POOL = "127.151.0.0/16"  # (e): pods on 198.18.151.0/24


def _get_in(netns: str, address: tuple[str, int], path: str) -> int | None:
    """GET `path` from inside `netns`; the status, or None."""
    connection = http.client.HTTPConnection(*address, timeout=2)
    try:
        connection.sock = enter.connect(netns, address, timeout=2)
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def meshward_netns_pair(
    processes: Processes, workdir: Path, backend_port: int, pki: certs.Pki
) -> Pair:
    """(e) the same mesh as (b) in the netns network mode: wrk runs inside the client pod and
    sends to the service's VIP; the pod's iptables hand every connection to the client
    sidecar's virtual outbound listener, the server pod's to its sidecar's virtual inbound
    listener. Everything else as (b)."""
    del backend_port, pki
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        raise NotImplementedError("needs root on Linux (network namespaces)")
    mesh = Mesh(workdir / "meshward-netns-state")
    processes.defer(mesh.down)
    mesh.up(MESH_DIR, NETNS_POOL, network="netns")
    pods, envoys = mesh.pods(), mesh.envoy_pids()
    client, server = pods[CLIENT_POD], pods[SERVER_POD]
    vip = next(v for namespace, name, v in mesh.record("mesh.json")["vips"] if name == "httpbin")
    deadline = time.monotonic() + 20
    while _get_in(client["netns"], (vip, SERVER_PORT), DEFAULT_PATH) != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the netns mesh does not answer through the client sidecar")
        time.sleep(0.2)
    # Warm the server's app as (b) does, from inside its own pod (over lo, not captured).
    run_wrk(SERVER_PORT, DEFAULT_PATH, APP_WARM_UP_S, host=server["pod_ip"], netns=server["netns"])
    others = (
        Proxy("control-plane", mesh.pid("control-plane.json")),
        Proxy("agent", mesh.pid("agent.json")),
        Proxy(APP_ROLE, mesh.app_pid(server)),
    )
    return Pair(
        "e",
        "meshward sidecar pair, netns capture",
        SERVER_PORT,
        (Proxy("client", envoys[CLIENT_POD]), Proxy("server", envoys[SERVER_POD])),
        SERVER_PORT,
        host=vip,
        server_host=server["pod_ip"],
        trust_root=mesh.state / "ca" / "root-cert.pem",
        others=tuple(other for other in others if other.pid),
        netns=client["netns"],
    )


# --- measurement -------------------------------------------------------------------------------


def refuses_without_client_cert(
    port: int, pki: certs.Pki, *, host: str = "127.0.0.1", trust_root: Path | None = None
) -> bool:
    """True if the server side of a pair refuses a TLS client that has no certificate.

    `trust_root` is the CA that signed the server (default: the bench PKI's root): the probe
    must trust the server, or a failed server check would pass for a refusal.
    """
    context = ssl.create_default_context(cafile=str(trust_root or pki.root))
    context.check_hostname = False
    # Connecting is outside the `try`: a closed port is a broken probe, not a refusal.
    with socket.create_connection((host, port), timeout=3) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=pki.server.dns_name) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = tls.recv(64)
        except (ssl.SSLError, ConnectionError):
            # TLS 1.3: the server's alert for the missing certificate arrives on first read.
            return True
    # nginx completes the handshake and then answers 400 "No required SSL certificate".
    return not answer.startswith(b"HTTP/1.1 2")


def measure(
    pair: Pair, path: str, seconds: float, pki: certs.Pki | None, *, scheme: str = "http"
) -> PathResult:
    """One path under load. With `pki`, the pair's server side is first checked to refuse a
    client without a certificate (bench/ingress.py, whose servers are plain TLS, passes None)."""
    result = PathResult(pair.key, pair.name)
    if pair.server_port and pki is not None:
        result.strict_mtls_verified = refuses_without_client_cert(
            pair.server_port, pki, host=pair.server_host, trust_root=pair.trust_root
        )
    # Warm-up: connections, TLS sessions, allocator pools.
    run_wrk(
        pair.port, path, 1, host=pair.host, headers=pair.headers, netns=pair.netns, scheme=scheme
    )
    measured = (*pair.proxies, *pair.others)
    # A proxy counts with its descendants (nginx's worker); an `other` alone (meshward's
    # agent is the parent of the sidecar Envoys, which are counted as proxies).
    trees = {proxy.role: process_tree(proxy.pid) for proxy in pair.proxies}
    trees |= {other.role: [other.pid] for other in pair.others}
    before = {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in trees.items()}
    result.load = run_wrk(
        pair.port,
        path,
        seconds,
        host=pair.host,
        headers=pair.headers,
        netns=pair.netns,
        scheme=scheme,
    )
    for proxy in measured:
        pids = trees[proxy.role]
        (result.proxies if proxy in pair.proxies else result.others).append(
            {
                "role": proxy.role,
                "pids": pids,
                "rss_mb": round(sum(rss_kb(pid) for pid in pids) / 1024, 1),
                "cpu_s": round(sum(cpu_seconds(pid) for pid in pids) - before[proxy.role], 2),
            }
        )
    return result


def table(results: dict[str, PathResult], rates: dict[str, float]) -> str:
    lines = [
        f"{'path':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB c+s':>12} "
        f"{'CPU s c+s':>11} {'mTLS':>5}"
    ]
    for result in results.values():
        label = f"({result.key}) {result.name}"
        if not result.run:
            lines.append(f"{label:<34} not run: {result.reason}")
            continue
        rss = "+".join(str(p["rss_mb"]) for p in result.proxies) or "-"
        cpu = "+".join(str(p["cpu_s"]) for p in result.proxies) or "-"
        strict = {None: "-", True: "yes", False: "NO"}[result.strict_mtls_verified]
        load = result.load
        errors = load["non_2xx"] + load["socket_errors"]
        lines.append(
            f"{label:<34} {load['rps']:>9.0f} {load['p50_ms']:>8.2f} {load['p99_ms']:>8.2f} "
            f"{rss:>12} {cpu:>11} {strict:>5}" + (f"  ERRORS {errors}" if errors else "")
        )
        requests = max(load["requests"], 1)
        per_request = [
            f"{p['role']} {p['cpu_s'] / requests * 1e6:.0f}"
            for p in (*result.proxies, *result.others)
        ]
        lines.append("    CPU µs/request: " + ", ".join(per_request))
        if result.others:
            lines.append(
                "    off the request path: "
                + ", ".join(f"{o['role']} {o['rss_mb']} MB {o['cpu_s']} s" for o in result.others)
            )
    lines.append("ratios (req/s): " + ", ".join(f"{k} {v}" for k, v in rates.items()))
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


@contextlib.contextmanager
def started(workdir: Path) -> Iterator[Processes]:
    processes = Processes(workdir)
    try:
        yield processes
    finally:
        processes.stop_all()


PairFactory = Callable[[Processes, Path, int, certs.Pki], Pair]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per path")
    parser.add_argument("--quick", action="store_true", help="3 s per path")
    parser.add_argument("--path", default=DEFAULT_PATH, help=f"URL path (default {DEFAULT_PATH})")
    parser.add_argument("--with-meshward", action="store_true", help="also run (b)")
    parser.add_argument(
        "--with-netns", action="store_true", help="also run (e): (b) in netns mode (root)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="load each path R times, rotated (medians)"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    options = parser.parse_args(argv)
    seconds = 3.0 if options.quick else options.duration
    if options.rounds < 1:
        parser.error("--rounds must be positive")

    factories: dict[str, tuple[str, PairFactory | None]] = {
        "b": ("meshward sidecar pair", meshward_pair if options.with_meshward else None),
        "c": ("envoy mTLS pair (h2)", envoy_pair),
        "d": ("nginx mTLS pair (http/1.1)", nginx_pair),
        "e": (
            "meshward sidecar pair, netns capture",
            meshward_netns_pair if options.with_netns else None,
        ),
    }
    results: dict[str, PathResult] = {}
    with (
        tempfile.TemporaryDirectory(prefix="meshward-bench-") as tmp,
        started(Path(tmp)) as processes,
    ):
        workdir = Path(tmp)
        pki = certs.write_pki(workdir)
        backend_port = free_port()
        backend = processes.start(
            "backend",
            [sys.executable, "-m", "meshward.samples.httpbin", "--quiet", "--host", "127.0.0.1",
             "--port", str(backend_port)],
        )  # fmt: skip
        wait_http_ok(backend_port, options.path, backend)
        backend_cpu = cpu_seconds(backend.pid)
        # The shared backend is measured on each path like (b)'s own instance, so the app's
        # CPU per request can be compared between paths (it differs with the request rate).
        app = (Proxy(APP_ROLE, backend.pid),)
        pairs = {"a": Pair("a", "direct", backend_port, others=app)}
        for key, (name, factory) in factories.items():
            if factory is None:
                flag = "--with-netns" if key == "e" else "--with-meshward"
                results[key] = PathResult(key, name, run=False, reason=f"pass {flag}")
                continue
            try:
                pair = factory(processes, workdir, backend_port, pki)
            except NotImplementedError as error:
                results[key] = PathResult(key, name, run=False, reason=str(error))
                continue
            pairs[key] = (
                pair
                if key in ("b", "e")
                else dataclasses.replace(pair, others=(*pair.others, *app))
            )
        samples = rotated_rounds(
            pairs, options.rounds, lambda pair: measure(pair, options.path, seconds, pki)
        )
        results |= {key: median_sample(taken) for key, taken in samples.items()}
        backend_cpu = cpu_seconds(backend.pid) - backend_cpu

    ordered = {key: results[key] for key in sorted(results)}
    rates = median_ratios(samples)
    print(table(ordered, rates))
    report = {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "load": {"tool": "wrk", "threads": THREADS, "connections": CONNECTIONS,
                 "seconds_per_path": seconds, "path": options.path},
        "backend": {"app": "meshward.samples.httpbin", "cpu_s_all_paths": round(backend_cpu, 2)},
        "rounds": options.rounds,
        "paths": {key: asdict(result) for key, result in ordered.items()},
        "rounds_per_path": {
            key: [sample_summary(taken) for taken in samples[key]] for key in sorted(samples)
        },
        "ratios_rps": rates,
    }  # fmt: skip
    if not options.no_save:
        save_report("dataplane", report)
    failed = [r.key for r in ordered.values() if r.run and r.strict_mtls_verified is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
