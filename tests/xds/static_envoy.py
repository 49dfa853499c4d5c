"""Run one Envoy from a static bootstrap for a test: start, wait for /ready, stop by PID.

Shared by the xds traffic tests and the RBAC differential harness.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import time
from collections.abc import Iterator
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
