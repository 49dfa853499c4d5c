"""Run one Envoy from a static bootstrap for a test: start, wait for /ready, stop by PID —
plus the small pieces around it: a port free on several addresses, and the tiny HTTP apps
behind the listeners.

Shared by the xds traffic tests and the RBAC differential harness.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from meshward.xds.envoy_binary import envoy_path


@contextlib.contextmanager
def static_envoy(
    config: dict[str, Any], log_file: Path, admin: tuple[str, int], *, poll: float = 0.05
) -> Iterator[subprocess.Popen[bytes]]:
    """Envoy with `config` (written next to `log_file`), ready when the block starts, stopped
    (SIGTERM, then SIGKILL after 10 s) when it ends."""
    config_file = log_file.with_suffix(".json")
    config_file.write_text(json.dumps(config))
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [str(envoy_path()), "-c", str(config_file), "--concurrency", "1"]
            + ["--disable-hot-restart", "--log-level", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(admin, process, log_file, poll)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(
    admin: tuple[str, int], process: subprocess.Popen[bytes], log: Path, poll: float
) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"envoy exited during start-up:\n{log.read_text()[-3000:]}")
        connection = http.client.HTTPConnection(*admin, timeout=1)
        try:
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(poll)
    raise AssertionError("envoy not ready within 20 s")


def free_port(*ips: str) -> int:
    """A port free on every one of `ips` (bound with port 0 on the first, checked on the rest)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((ips[0], 0))
            port = int(first.getsockname()[1])
            try:
                for ip in ips[1:]:
                    with socket.socket() as other:
                        other.bind((ip, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no common free port")


@contextlib.contextmanager
def http_apps(
    ip: str, ports: Sequence[int], handler: type[BaseHTTPRequestHandler], *, poll: float = 0.5
) -> Iterator[None]:
    """A threaded HTTP server with `handler` on `ip` at each port, shut down afterwards.
    (`poll`: shutdown() waits up to one serve_forever poll interval per server.)"""
    servers = [ThreadingHTTPServer((ip, port), handler) for port in ports]
    threads = [threading.Thread(target=s.serve_forever, args=(poll,), daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
