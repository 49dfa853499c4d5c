"""Supervised child processes: start with a log file, restart on crash, stop by PID.

Used by the runner (app processes, the control plane, the agent) and by the agent (Envoy).
Children get PR_SET_PDEATHSIG on Linux so that a runner killed with SIGKILL does not leave
them behind; `stop` sends SIGTERM, waits, then SIGKILL — always to the child's own PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    restart: bool = True
    group: int | None = None  # run with this GID and no supplementary groups (UID unchanged)


@dataclass
class Supervised:
    """One supervised process. `start` launches it and a watcher that restarts it (with
    backoff, like a kubelet) until `stop` is called."""

    spec: ProcessSpec
    on_exit: Callable[[int], None] | None = None
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    _stopping: bool = False
    _watcher: asyncio.Task[None] | None = None
    started_at: float = field(default=0.0)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None

    async def start(self) -> None:
        await self._launch()
        self._watcher = asyncio.create_task(self._watch(), name=f"watch {self.spec.name}")

    async def _launch(self) -> None:
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spec.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                env=dict(self.spec.env),
                cwd=self.spec.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                group=self.spec.group,
                extra_groups=None if self.spec.group is None else [],
            )
        self.started_at = time.monotonic()
        log.debug("started %s pid %s", self.spec.name, self.process.pid)

    async def _watch(self) -> None:
        backoff = 0.5
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            if self.on_exit is not None:
                self.on_exit(code)
            if not self.spec.restart:
                return
            if time.monotonic() - self.started_at > 30:
                backoff = 0.5
            log.warning("%s exited with %s; restarting in %.1fs", self.spec.name, code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            if self._stopping:
                return
            self.restarts += 1
            await self._launch()

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            await terminate(process.pid, process.wait, timeout)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher


async def terminate(pid: int, wait: Callable[[], object], timeout: float) -> None:
    """SIGTERM `pid`, wait up to `timeout`, then SIGKILL. Only ever this one PID."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(wait(), timeout)  # type: ignore[arg-type]
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await wait()  # type: ignore[misc]


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def kill_and_wait(pid: int, timeout: float = 10.0) -> bool:
    """Synchronous stop of a process we do not parent (e.g. `meshward down` → runner PID):
    SIGTERM, poll until gone, SIGKILL after `timeout`. Returns True if it had been running."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while pid_alive(pid):
        time.sleep(0.05)
    return True


def python_module(module: str, *args: str) -> tuple[str, ...]:
    """argv running `module` under this interpreter."""
    return (sys.executable, "-m", module, *args)


def inherited_env(
    extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env
