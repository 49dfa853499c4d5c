"""Fixtures for the sample-app tests: in-process servers on real sockets, child processes
(apps, redis-server) stopped by PID, and free ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from meshward.samples import server

REPO = Path(__file__).resolve().parents[2]
ServeFn = Callable[..., int]
SpawnFn = Callable[..., "subprocess.Popen[bytes]"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture
def serve() -> Iterator[ServeFn]:
    """`serve(respond, offload=False) -> port`: run an app in this process on a free port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers: list[asyncio.Server] = []

    def start(respond: server.Respond, *, offload: bool = False) -> int:
        future = asyncio.run_coroutine_threadsafe(
            server.start(respond, "127.0.0.1", 0, offload=offload), loop
        )
        started = future.result(timeout=5)
        servers.append(started)
        return server.bound_port(started)

    yield start

    async def shutdown() -> None:
        for started in servers:
            started.close()
            await started.wait_closed()

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture
def spawn() -> Iterator[SpawnFn]:
    """`spawn(argv, port, env=None)`: start a child, wait until it listens; stopped by PID."""
    children: list[subprocess.Popen[bytes]] = []

    def start(
        argv: list[str], port: int, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        child_env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        child_env.update(env or {})
        process = subprocess.Popen(
            argv, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
        )
        children.append(process)
        wait_for_port(port, process)
        return process

    yield start
    for process in children:
        if process.poll() is None:
            process.terminate()
    for process in children:
        try:
            process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    """A function returning a currently free loopback port."""
    return free_port


@pytest.fixture
def spawn_module(spawn: SpawnFn) -> Callable[..., tuple[int, subprocess.Popen[bytes]]]:
    """`spawn_module(module, *args, env=None) -> (port, process)`: run `python -m module *args
    --host 127.0.0.1 --port <free>` and wait until it listens."""

    def start(
        module: str, *args: str, env: Mapping[str, str] | None = None
    ) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        argv = [sys.executable, "-m", module, *args, "--host", "127.0.0.1", "--port", str(port)]
        return port, spawn(argv, port, env)

    return start


@pytest.fixture
def redis_port(spawn: SpawnFn) -> int:
    """A real redis-server on a free loopback port (no persistence), stopped by PID."""
    port = free_port()
    spawn(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ],
        port,
    )
    return port
