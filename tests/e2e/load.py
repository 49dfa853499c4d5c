"""A bounded load generator for resilience tests: requests through a client sidecar, counted."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Load:
    """Sends GET requests through `proxy` (a client sidecar's outbound HTTP listener) from
    `workers` threads until stopped or `max_seconds` pass; every non-200 is a failure."""

    proxy: tuple[str, int]
    host: str
    path: str = "/get"
    workers: int = 4
    max_seconds: float = 120.0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for n in range(self.workers):
            # Half the workers reuse one connection, half open a new one per request, so both
            # pooled and fresh upstream connections are exercised.
            thread = threading.Thread(target=self._run, args=(n % 2 == 0,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _run(self, keep_alive: bool) -> None:
        deadline = time.monotonic() + self.max_seconds
        connection: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            if connection is None:
                connection = http.client.HTTPConnection(*self.proxy, timeout=10)
            try:
                connection.request(
                    "GET", f"http://{self.host}{self.path}", headers={"Host": self.host}
                )
                response = connection.getresponse()
                response.read()
                outcome = None if response.status == 200 else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as error:
                outcome = f"{type(error).__name__}: {error}"
                connection.close()
                connection = None
            with self._lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures.append(outcome)
            if not keep_alive and connection is not None:
                connection.close()
                connection = None
            time.sleep(0.005)
        if connection is not None:
            connection.close()
