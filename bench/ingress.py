"""Ingress benchmark: TLS termination in front of one HTTP backend, three proxies, one run.

    .venv/bin/python bench/ingress.py [--quick] [--duration S] [--rounds R] [--no-save]

Paths (wrk over HTTPS, 2 threads, 16 connections, TLS 1.2+/1.3 as negotiated):
  (g) meshward   wrk → meshward ingress gateway (SIMPLE, credential from the secret store over
                 SDS) → httpbin; a real mesh (`meshward up --detach`, bench/ingress-mesh/)
  (e) envoy      wrk → a hand-written static Envoy (TLS listener, one route) → httpbin
  (n) nginx      wrk → nginx (ssl server, keep-alive upstream) → httpbin
All three present the same certificate and key (meshward.samples.edge_pki) and run one worker;
the backend is the httpbin sample (the mesh runs its own instance, warmed like the shared one;
it has no sidecar, so every path is TLS termination + plaintext upstream). Each pair is
checked to present the certificate before it is measured. Output: a table and JSON in
bench/results/ingress-<UTC timestamp>.json with req/s, p50/p99, RSS and CPU µs per request,
and the ratios g/e, g/n, e/n. Every process is started and stopped here by PID.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dataplane import (
    _HCM,
    _ROUTER,
    _TLS,
    _TLS_NS,
    APP_ROLE,
    APP_WARM_UP_S,
    DEFAULT_PATH,
    NGINX,
    Mesh,
    _envoy_cluster,
    _nginx_conf,
    measure,
    run_wrk,
    started,
    table,
)
from harness import (
    Pair,
    Processes,
    Proxy,
    free_port,
    load_options,
    save_report,
    wait_http_ok,
)
from rounds import median_ratios, median_sample, rotated_rounds, sample_summary

from meshward.runner import network
from meshward.samples.edge_pki import Ca
from meshward.xds import envoy_binary

BENCH = Path(__file__).resolve().parent
MESH_DIR = BENCH / "ingress-mesh"
MESH_POOLS = (152, 157, 156)  # 127.152 first (dataplane.py and the e2e test take others)
GATEWAY_POD, APP_POD = "istio-system/ingressgateway-0", "bench/httpbin-0"
GATEWAY_PORT = 8443
SERVER_NAME = "bench.example.com"


@dataclasses.dataclass(frozen=True, slots=True)
class Cert:
    cert: Path
    key: Path
    ca: Path


def presents(host: str, port: int, cert: Cert) -> bool:
    """True if a TLS client trusting only the bench CA completes a handshake for the name
    (waiting up to 20 s for the port to open)."""
    context = ssl.create_default_context(cafile=str(cert.ca))
    deadline = time.monotonic() + 20
    while True:
        try:
            raw = socket.create_connection((host, port), timeout=3)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with raw:
        try:
            with context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
                return tls.getpeercert() is not None
        except ssl.SSLError:
            return False


def envoy_config(cert: Cert, port: int, backend_port: int, admin_port: int) -> dict[str, Any]:
    """One TLS listener, one route, one plaintext cluster: what a gateway does, by hand."""
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "https",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "transport_socket": {
                                "name": _TLS,
                                "typed_config": {
                                    "@type": f"{_TLS_NS}.DownstreamTlsContext",
                                    "common_tls_context": {
                                        "alpn_protocols": ["h2", "http/1.1"],
                                        "tls_certificates": [
                                            {
                                                "certificate_chain": {"filename": str(cert.cert)},
                                                "private_key": {"filename": str(cert.key)},
                                            }
                                        ],
                                    },
                                },
                            },
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": _HCM,
                                        "stat_prefix": "ingress",
                                        "codec_type": "AUTO",
                                        "use_remote_address": True,
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "route": {"cluster": "backend"},
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
                                    },
                                }
                            ],
                        }
                    ],
                }
            ],
            "clusters": [_envoy_cluster("backend", backend_port, False, None)],
        },
    }


def envoy_gateway(processes: Processes, workdir: Path, backend_port: int, cert: Cert) -> Pair:
    port, admin = free_port(), free_port()
    config = workdir / "envoy-ingress.json"
    config.write_text(json.dumps(envoy_config(cert, port, backend_port, admin)))
    child = processes.start(
        "envoy-ingress",
        [str(envoy_binary.envoy_path()), "-c", str(config), "--concurrency", "1",
         "--disable-hot-restart", "--log-level", "warning"],
    )  # fmt: skip
    wait_http_ok(admin, "/ready", child)
    return Pair("e", "hand-written Envoy", port, (Proxy("gateway", child.pid),), port)


def nginx_gateway(processes: Processes, workdir: Path, backend_port: int, cert: Cert) -> Pair:
    port = free_port()
    conf = _nginx_conf(
        workdir,
        "ingress",
        f"""  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 32;
                         keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert.cert};
    ssl_certificate_key {cert.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
""",
    )
    path = workdir / "nginx-ingress.conf"
    path.write_text(conf)
    child = processes.start(
        "nginx-ingress",
        [NGINX, "-p", str(workdir), "-c", str(path), "-e", str(workdir / "nginx-ingress-error.log"),
         "-g", "daemon off;"],
    )  # fmt: skip
    return Pair("n", "nginx", port, (Proxy("gateway", child.pid),), port)


def meshward_gateway(processes: Processes, workdir: Path, backend_port: int, cert: Cert) -> Pair:
    """A real mesh with the gateway's credential created by `meshward secret create tls`."""
    del backend_port
    mesh = Mesh(workdir / "meshward-state")
    processes.defer(mesh.down)
    created = mesh.cli(
        "secret", "create", "tls", "bench-cert", "--cert", str(cert.cert), "--key", str(cert.key)
    )
    if created.returncode != 0:
        raise RuntimeError(created.stderr)
    mesh.up(MESH_DIR, network.unused_pool(MESH_POOLS))
    pods, envoys = mesh.pods(), mesh.envoy_pids()
    gateway, app = pods[GATEWAY_POD], pods[APP_POD]
    run_wrk(8000, DEFAULT_PATH, APP_WARM_UP_S, host=app["app_ip"])
    others = (
        Proxy("control-plane", mesh.pid("control-plane.json")),
        Proxy("agent", mesh.pid("agent.json")),
        Proxy(APP_ROLE, mesh.app_pid(app)),
    )
    return Pair(
        "g",
        "meshward ingress gateway",
        GATEWAY_PORT,
        (Proxy("gateway", envoys[GATEWAY_POD]),),
        GATEWAY_PORT,
        host=gateway["pod_ip"],
        server_host=gateway["pod_ip"],
        others=tuple(o for o in others if o.pid),
    )


RATIOS = (("g", "e"), ("g", "n"), ("e", "n"))


def main(argv: list[str] | None = None) -> int:
    parser = load_options(__doc__.split("\n\n")[0], quick="3 s per path")
    options = parser.parse_args(argv)
    seconds = 3.0 if options.quick else options.duration
    with (
        tempfile.TemporaryDirectory(prefix="meshward-ingress-bench-") as tmp,
        started(Path(tmp)) as processes,
    ):
        workdir = Path(tmp)
        ca = Ca("bench-servers", workdir)
        leaf, key, _ = ca.issue("bench", dns=SERVER_NAME)
        cert = Cert(leaf, key, ca.cert_file)
        backend_port = free_port()
        backend = processes.start(
            "backend",
            [sys.executable, "-m", "meshward.samples.httpbin", "--quiet", "--host", "127.0.0.1",
             "--port", str(backend_port)],
        )  # fmt: skip
        wait_http_ok(backend_port, DEFAULT_PATH, backend)
        run_wrk(backend_port, DEFAULT_PATH, APP_WARM_UP_S)
        app = (Proxy(APP_ROLE, backend.pid),)
        pairs: dict[str, Pair] = {}
        for factory in (meshward_gateway, envoy_gateway, nginx_gateway):
            pair = factory(processes, workdir, backend_port, cert)
            if pair.key != "g":
                pair = dataclasses.replace(pair, others=app)
            pairs[pair.key] = pair
        for pair in pairs.values():
            if not presents(pair.host, pair.port, cert):
                raise RuntimeError(f"{pair.name} does not present the bench certificate")
        samples = rotated_rounds(
            pairs,
            options.rounds,
            lambda pair: measure(pair, DEFAULT_PATH, seconds, None, scheme="https"),
        )
    results = {key: median_sample(taken) for key, taken in sorted(samples.items())}
    rates = median_ratios(samples, RATIOS)
    print(
        table(results, rates).replace("RSS MB c+s", "RSS MB    ").replace("CPU s c+s", "CPU s    ")
    )
    report = {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "load": {
            "tool": "wrk",
            "scheme": "https",
            "seconds_per_path": seconds,
            "path": DEFAULT_PATH,
        },
        "rounds": options.rounds,
        "paths": {key: dataclasses.asdict(result) for key, result in results.items()},
        "rounds_per_path": {k: [sample_summary(t) for t in samples[k]] for k in sorted(samples)},
        "ratios_rps": rates,
    }
    if not options.no_save:
        save_report("ingress", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
