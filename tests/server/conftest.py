"""Fixtures for the server and agent tests: a loop thread, a short temporary directory, and
real Envoy processes that are stopped by PID (helpers live in server_harness.py)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_harness import EnvoyProcess, LoopThread

from meshward.xds.envoy_binary import envoy_path


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short temporary directory (Unix socket paths must stay under 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="mw-") as name:
        yield Path(name)


@pytest.fixture
def envoy(short_dir: Path) -> Iterator[Callable[[dict[str, Any]], EnvoyProcess]]:
    """`envoy(bootstrap)` starts a real Envoy; every one started is stopped by PID."""
    started: list[EnvoyProcess] = []

    def start(bootstrap: dict[str, Any]) -> EnvoyProcess:
        index = len(started)
        config = short_dir / f"envoy{index}.json"
        config.write_text(json.dumps(bootstrap))
        log = short_dir / f"envoy{index}.log"
        admin_file = short_dir / f"admin{index}"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    str(envoy_path()),
                    "-c", str(config),
                    "--concurrency", "1",
                    "--disable-hot-restart",
                    "--log-level", "info",
                    "--admin-address-path", str(admin_file),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        running = EnvoyProcess(process, log, admin_file)
        started.append(running)
        return running

    yield start
    for running in started:
        running.process.terminate()
        try:
            running.process.wait(5)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(5)
