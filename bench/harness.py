"""Bench processes and their costs: children stopped by PID, readiness, RSS and CPU from /proc.

Shared by bench/dataplane.py and bench/authz.py (which import these names from here).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- processes -------------------------------------------------------------------------------


class Processes:
    """Children started by this run; `stop_all` stops each by PID (never by name).

    `defer` registers a stop action for processes this run did not parent itself (the
    meshward mesh, which `meshward down` stops); those run first, newest first.
    """

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._children: list[subprocess.Popen[bytes]] = []
        self._deferred: list[Callable[[], None]] = []

    def defer(self, stop: Callable[[], None]) -> None:
        self._deferred.append(stop)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self._logs / f"{name}.log").open("wb")
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self._logs)
        log.close()
        self._children.append(child)
        return child

    def stop_all(self) -> None:
        failures: list[Exception] = []
        while self._deferred:
            try:
                self._deferred.pop()()
            except Exception as error:  # stop the children anyway, then report it
                failures.append(error)
        for child in reversed(self._children):
            if child.poll() is None:
                child.terminate()
        for child in self._children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if failures:
            raise failures[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http_ok(
    port: int,
    path: str,
    child: subprocess.Popen[bytes] | None,
    timeout: float = 20,
    *,
    host: str = "127.0.0.1",
    headers: tuple[tuple[str, str], ...] = (),
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Poll until GET path on host:port answers 200 (the whole chain is up); its body.
    `tls`: over HTTPS with this client context."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"process {child.pid} exited with {child.returncode}")
        connection = (
            http.client.HTTPConnection(host, port, timeout=2)
            if tls is None
            else http.client.HTTPSConnection(host, port, timeout=2, context=tls)
        )
        try:
            connection.request("GET", path, headers=dict(headers))
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                return body
            last = f"HTTP {response.status} {body[:200]!r}"
        except OSError as error:
            last = str(error)
        finally:
            connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"{host}:{port}{path} not ready after {timeout}s: {last}")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx: master and worker), from /proc/*/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree.extend(children)
        frontier = children
    return tree


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    # proc(5): fields 14 and 15 are utime and stime in clock ticks; the command name (field 2)
    # may contain spaces, so split after its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy of a pair; `pid` is its main process (descendants are counted with it)."""

    role: str  # "client" or "server"
    pid: int


@dataclass(frozen=True, slots=True)
class Pair:
    """A proxy pair ready for load: wrk sends to `host`:`port` with `headers`.

    `others` are processes measured like the proxies but reported apart (meshward's control
    plane, agent and its own backend instance): they are not on the request path.
    """

    key: str  # "a", "b", "c", "d"
    name: str
    port: int
    proxies: tuple[Proxy, ...] = ()
    server_port: int = 0  # the mTLS side, probed for STRICT; 0 for the direct path
    host: str = "127.0.0.1"
    server_host: str = "127.0.0.1"
    headers: tuple[tuple[str, str], ...] = ()
    trust_root: Path | None = None  # CA of the mTLS side; None: the bench PKI's root
    others: tuple[Proxy, ...] = ()
    netns: str = ""  # wrk runs inside this network namespace (meshward's netns mode)


def load_options(description: str, *, quick: str) -> argparse.ArgumentParser:
    """The options of a benchmark that loads paths in rounds (bench/ingress.py,
    bench/egress.py): --duration (default 10 s), --quick (`quick` says what it does), --rounds,
    --no-save. The caller adds its own and parses."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per path")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--rounds", type=int, default=1, help="load each path R times (medians)")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    return parser


RESULTS = Path(__file__).resolve().parent / "results"


def save_report(kind: str, report: dict[str, Any]) -> Path:
    """`results/<kind>-<UTC stamp>.json`, the one place every benchmark writes its report."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{kind}-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(RESULTS.parent.parent)}")
    return out


# --- wrk: the load generator every benchmark runs -------------------------------------------

CONNECTIONS = 16
THREADS = 2  # the machine this was sized for has 2 cores, shared by wrk and every proxy

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, Any]:
    """req/s, p50/p99 in ms, and error counts from `wrk --latency` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if rps is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    latency = {
        percent: float(value) * _UNITS[unit]
        for percent, value, unit in re.findall(
            r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", output, re.M
        )
    }
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    requests = re.search(r"^\s+(\d+) requests in", output, re.M)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "rps": float(rps.group(1)),
        "p50_ms": round(latency["50"], 3),
        "p99_ms": round(latency["99"], 3),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }


def run_wrk(
    port: int,
    path: str,
    seconds: float,
    *,
    host: str = "127.0.0.1",
    headers: tuple[tuple[str, str], ...] = (),
    netns: str = "",
    scheme: str = "http",
) -> dict[str, Any]:
    """`scheme` "https": wrk does the TLS handshake itself (certificates are not checked)."""
    inside = ["ip", "netns", "exec", netns] if netns else []
    argv = [*inside,
        "wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds:g}s", "--latency",
        *(arg for name, value in headers for arg in ("-H", f"{name}: {value}")),
        f"{scheme}://{host}:{port}{path}",
    ]  # fmt: skip
    # wrk runs in a session of its own. Linux (sched_autogroup_enabled=1, the default on
    # desktop and many cloud kernels) shares CPU fairly between sessions first, then between
    # the processes of each: `meshward up --detach` puts the whole mesh in its own session,
    # so with wrk in the bench's session (b)'s proxies and app got one of the two cores while
    # (c)'s, in wrk's session, got 3/5 of both; b/c measured that, not the proxies. With wrk
    # alone in its session every pair's data plane shares one group against it.
    result = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 30,
        start_new_session=True,
    )  # fmt: skip
    return parse_wrk(result.stdout)
