"""Access-log cost benchmark: the same wrk load through an Envoy mTLS pair whose server side
writes meshward's inbound access log in different shapes, in one run.

    .venv/bin/python bench/accesslog.py [--quick] [--rounds R] [--duration S] [--no-save]

The pair is bench/dataplane.py's (c) (static config, one worker each, bench/certs.py), with
path normalisation on the server as meshward's connection manager has. Only the server's
HCM `access_log` differs between variants (all built from `meshward.xds.access_log`):
  none        no access log (what (c) has)
  json        every request, every key, JSON (meshward before this benchmark)
  json-omit   the same with `omit_empty_values`
  text        the same keys as one `key=value` text line (to price JSON formatting itself)
  sampled-1   what a sidecar logs now: the `inbound_filter` (denials, failures, probes,
              audit hints, then 1% of the rest); the load is successful requests, so this
              prices the filter plus 1% of the lines
  sampled-0   the filter with sampling at 0% (the filter alone)
Rounds rotate the order; figures are medians. Output: a table, and JSON in
bench/results/accesslog-<UTC>.json. Every process is started and stopped here by PID.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import certs
import dataplane
import harness
from google.protobuf import json_format

from meshward.xds import access_log

Shape = Callable[[], list[dict[str, Any]]]


def _as_json(*logs: Any) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(log) for log in logs]


def _json() -> list[dict[str, Any]]:
    return _as_json(access_log.access_log("inbound", http=True))


def _json_omit() -> list[dict[str, Any]]:
    logs = _json()
    logs[0]["typedConfig"]["logFormat"]["omitEmptyValues"] = True
    return logs


def _text() -> list[dict[str, Any]]:
    logs = _json()
    fields = logs[0]["typedConfig"]["logFormat"].pop("jsonFormat")
    text = " ".join(f"{key}={value}" for key, value in fields.items()) + "\n"
    logs[0]["typedConfig"]["logFormat"]["textFormat"] = text
    return logs


def _sampled(percent: int) -> Shape:
    def shape() -> list[dict[str, Any]]:
        log = access_log.access_log("inbound", http=True)
        log.filter.CopyFrom(access_log.inbound_filter(sampled_percent=percent))
        return _as_json(log)

    return shape


VARIANTS: dict[str, Shape] = {
    "none": lambda: [],
    "json": _json,
    "json-omit": _json_omit,
    "text": _text,
    "sampled-1": _sampled(1),
    "sampled-0": _sampled(0),
}


@dataclass
class Result:
    key: str
    rps: float = 0.0
    p99_ms: float = 0.0
    server_us: float = 0.0
    client_us: float = 0.0
    server_us_range: tuple[float, float] = (0.0, 0.0)
    samples: list[dict[str, Any]] = field(default_factory=list)


def configs(
    pki: certs.Pki, key: str, ports: tuple[int, int, int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    client, server = dataplane.envoy_configs(pki, *ports)
    manager = server["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    manager["typed_config"]["normalize_path"] = True
    logs = VARIANTS[key]()
    if logs:
        manager["typed_config"]["access_log"] = logs
    return client, server


def sample(pair: harness.Pair, seconds: float, pki: certs.Pki) -> dict[str, Any]:
    measured = dataplane.measure(pair, dataplane.DEFAULT_PATH, seconds, pki)
    cpu = {p["role"]: p["cpu_s"] for p in measured.proxies}
    requests = max(measured.load["requests"], 1)
    return {
        "rps": measured.load["rps"],
        "p99_ms": measured.load["p99_ms"],
        "errors": measured.load["non_2xx"] + measured.load["socket_errors"],
        "server_us": round(cpu["server"] / requests * 1e6, 1),
        "client_us": round(cpu["client"] / requests * 1e6, 1),
    }


def measure_all(keys: list[str], rounds: int, seconds: float, workdir: Path) -> list[Result]:
    with dataplane.started(workdir) as processes:
        pki = certs.write_pki(workdir)
        backend_port = harness.free_port()
        backend = processes.start(
            "backend",
            [sys.executable, "-m", "meshward.samples.httpbin", "--quiet", "--host", "127.0.0.1",
             "--port", str(backend_port)],
        )  # fmt: skip
        harness.wait_http_ok(backend_port, dataplane.DEFAULT_PATH, backend)
        pairs = {}
        for key in keys:
            directory = workdir / key
            directory.mkdir()
            ports = (harness.free_port(), harness.free_port(), backend_port)
            pairs[key] = dataplane.start_envoy_pair(
                processes, directory, configs(pki, key, ports), ports[:2], key=key, name=key
            )
        samples: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
        for round_ in range(rounds):
            shift = round_ % len(keys)
            for key in (*keys[shift:], *keys[:shift]):
                taken = sample(pairs[key], seconds, pki)
                samples[key].append(taken)
                print(f"  round {round_ + 1} {key}: {taken}")
    results = []
    for key in keys:
        result = Result(key, samples=samples[key])
        for name in ("rps", "p99_ms", "server_us", "client_us"):
            setattr(result, name, round(statistics.median(s[name] for s in samples[key]), 2))
        server = [s["server_us"] for s in samples[key]]
        result.server_us_range = (min(server), max(server))
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per sample")
    parser.add_argument("--rounds", type=int, default=4, help="samples per variant (median)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s per variant")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="variants to run")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    options = parser.parse_args(argv)
    seconds, rounds = (1.0, 2) if options.quick else (options.duration, options.rounds)
    keys = options.only or list(VARIANTS)
    with tempfile.TemporaryDirectory(prefix="meshward-bench-accesslog-") as tmp:
        results = measure_all(keys, rounds, seconds, Path(tmp))
    base = next((r for r in results if r.key == "none"), None)
    print("| variant | req/s | p99 ms | server µs/req (range) | over none | client µs/req |")
    print("|---|---|---|---|---|---|")
    for r in results:
        over = f"{r.server_us - base.server_us:+.1f}" if base else "-"
        low, high = r.server_us_range
        print(
            f"| {r.key} | {r.rps:.0f} | {r.p99_ms:.2f} | {r.server_us:.1f} ({low:.0f}-{high:.0f})"
            f" | {over} | {r.client_us:.1f} |"
        )
    if not options.no_save:
        report = {
            "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": {"cpus": os.cpu_count(), "load": os.getloadavg()},
            "seconds_per_sample": seconds,
            "rounds": rounds,
            "variants": [asdict(r) for r in results],
        }
        harness.save_report("accesslog", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
