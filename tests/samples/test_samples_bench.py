"""bench/: the wrk-output parser, the benchmark PKI, and the Envoy and nginx mTLS pairs (real
processes, one request each, STRICT checked both ways)."""

from __future__ import annotations

import http.client
import importlib
import json
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
certs: Any = importlib.import_module("certs")
dataplane: Any = importlib.import_module("dataplane")
rounds: Any = importlib.import_module("rounds")
harness: Any = importlib.import_module("harness")

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:1/robots.txt
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.41ms  {p99}
  Latency Distribution
     50%  {p50}
     75%    2.60ms
     90%    3.01ms
     99%  {p99}
  17505 requests in 3.00s, 2.59MB read
{errors}Requests/sec:   5834.29
Transfer/sec:    883.44KB
"""


@pytest.mark.parametrize(
    ("p50", "p99", "errors", "expected"),
    [
        ("288.00us", "2.14ms", "", (0.288, 2.14, 0, 0)),
        ("1.50ms", "1.20s", "  Non-2xx or 3xx responses: 7\n", (1.5, 1200.0, 7, 0)),
        (
            "2.00ms",
            "4.00ms",
            "  Socket errors: connect 1, read 2, write 0, timeout 3\n",
            (2.0, 4.0, 0, 6),
        ),
    ],
)
def test_parse_wrk(p50: str, p99: str, errors: str, expected: tuple[float, ...]) -> None:
    parsed = harness.parse_wrk(WRK_OUTPUT.format(p50=p50, p99=p99, errors=errors))
    assert parsed == {
        "requests": 17505,
        "rps": 5834.29,
        "p50_ms": expected[0],
        "p99_ms": expected[1],
        "non_2xx": expected[2],
        "socket_errors": expected[3],
    }


def test_ratios_only_between_paths_that_ran() -> None:
    def result(key: str, rps: float | None) -> Any:
        if rps is None:
            return rounds.PathResult(key, key, run=False, reason="x")
        return rounds.PathResult(key, key, load={"rps": rps})

    results = {
        "a": result("a", 1000.0),
        "b": result("b", None),
        "c": result("c", 250.0),
        "d": result("d", 500.0),
    }
    assert rounds.ratios(results) == {"c/a": 0.25, "d/a": 0.5, "c/d": 0.5}


@pytest.fixture(scope="module")
def pki() -> Iterator[Any]:
    with tempfile.TemporaryDirectory(prefix="meshward-bench-test-") as tmp:
        yield certs.write_pki(Path(tmp))


def test_pki_leaves_chain_to_root_with_spiffe_and_dns_sans(pki: Any) -> None:
    root = x509.load_pem_x509_certificate(pki.root.read_bytes())
    found = []
    for leaf in (pki.client, pki.server):
        cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
        cert.verify_directly_issued_by(root)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found.append(
            (
                sans.get_values_for_type(x509.UniformResourceIdentifier),
                sans.get_values_for_type(x509.DNSName),
            )
        )
    assert found == [
        (["spiffe://cluster.local/ns/bench/sa/client"], ["client.bench.svc.cluster.local"]),
        (["spiffe://cluster.local/ns/bench/sa/server"], ["server.bench.svc.cluster.local"]),
    ]


def _open_tls_server(pki: Any) -> tuple[int, threading.Thread]:
    """A TLS server that does NOT ask for a client certificate: the negative control."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server.cert, pki.server.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        with listener, context.wrap_socket(listener.accept()[0], server_side=True) as conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    return port, thread


def test_strict_probe_detects_a_server_that_accepts_anyone(pki: Any) -> None:
    port, thread = _open_tls_server(pki)
    assert dataplane.refuses_without_client_cert(port, pki) is False
    thread.join(timeout=5)


def _get_json(port: int, path: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.e2e
@pytest.mark.parametrize("factory", ["envoy_pair", "nginx_pair"])
def test_pair_carries_requests_over_strict_mtls(pki: Any, factory: str) -> None:
    with tempfile.TemporaryDirectory(prefix="meshward-bench-test-") as tmp:
        workdir = Path(tmp)
        processes = dataplane.Processes(workdir)
        try:
            backend_port = dataplane.free_port()
            backend = processes.start(
                "backend",
                [sys.executable, "-m", "meshward.samples.httpbin", "--quiet",
                 "--port", str(backend_port)],
            )  # fmt: skip
            dataplane.wait_http_ok(backend_port, "/robots.txt", backend)
            pair = getattr(dataplane, factory)(processes, workdir, backend_port, pki)
            status, body = _get_json(pair.port, "/headers")
            refused = dataplane.refuses_without_client_cert(pair.server_port, pki)
        finally:
            processes.stop_all()
    xfcc = body["headers"].get("X-Forwarded-Client-Cert")
    if xfcc is not None:  # Hash= is the certificate digest, fresh for every generated PKI
        xfcc = ";".join(part for part in xfcc.split(";") if not part.startswith("Hash="))
    expected_xfcc = {
        # Envoy's server side hands the app the verified client identity (SANITIZE_SET).
        "envoy_pair": "By=spiffe://cluster.local/ns/bench/sa/server;"
        "URI=spiffe://cluster.local/ns/bench/sa/client",
        "nginx_pair": None,
    }[factory]
    assert (status, xfcc, refused, [p.role for p in pair.proxies]) == (
        200,
        expected_xfcc,
        True,
        ["server", "client"],
    )
