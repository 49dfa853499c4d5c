"""External authorization cost: the same wrk load through an Envoy mTLS pair whose server side
has no policy, a CUSTOM policy that does not match the request, or one that sends every
request to `meshward extauthz` over gRPC or over HTTP — in one run.

    .venv/bin/python bench/extauthz.py [--quick] [--rounds R] [--duration S] [--no-save]

The pair is bench/authz.py's (bench/dataplane.py (c): wrk → Envoy → mTLS, HTTP/2 → Envoy →
httpbin, static config, one worker each). The server's HTTP filters come from meshward's own
translator (`meshward.xds.rbac.rbac_filters_for`) for a compiled `PortAuthz`, exactly as a
sidecar gets them:
  none            no AuthorizationPolicy: no filter (the baseline)
  custom-skip     CUSTOM on /admin only: the shadow RBAC engine runs, ext_authz is skipped
  custom-grpc     CUSTOM on every path: ext_authz asks the provider over gRPC (plaintext h2)
  custom-http     the same over the HTTP ext_authz protocol (HTTP/1.1)
The provider is one `meshward extauthz --plugin rules` process (a rule that allows all, no
decision log), started here and measured too: its CPU per request is the price of a Python
provider. Afterwards the server's ext_authz counters must show every measured request
checked (`ok`) on the consulted variants and none on the others (the run exits 1
otherwise). Output: a table and bench/results/extauthz-<UTC>.json with req/s, p50/p99,
server and provider CPU per request, and ratios to the baseline. Every process is started and
stopped here by PID. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import authz
import certs
import dataplane
import harness

from meshward.model import authorization

GRPC_CLUSTER = "extauthz-grpc"
HTTP_CLUSTER = "extauthz-http"
RULES = "rules:\n- {name: everyone, allow: true}\n"
VARIANTS = ("none", "custom-skip", "custom-grpc", "custom-http")
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _custom(path: str | None, provider: authorization.ExtAuthz) -> authorization.PortAuthz:
    operations = (
        (authorization.OperationMatch(paths=(authorization.StringMatch("exact", path),)),)
        if path
        else ()
    )
    policy = authorization.AuthzPolicy(
        authz.NAMESPACE,
        "ext",
        "CUSTOM",
        (authorization.AuthzRule(0, operations=operations),),
        provider=provider.name,
    )
    return authorization.PortAuthz((policy,), provider)


def variant(key: str) -> authz.Variant:
    grpc = authorization.ExtAuthz("bench-grpc", "grpc", GRPC_CLUSTER, "extauthz", 5000)
    http = authorization.ExtAuthz("bench-http", "http", HTTP_CLUSTER, "extauthz", 5000)
    made = {
        "none": authorization.NO_AUTHZ,
        "custom-skip": _custom("/admin", grpc),
        "custom-grpc": _custom(None, grpc),
        "custom-http": _custom(None, http),
    }
    return authz.Variant(key, 0 if key == "none" else 1, made[key])


def _cluster(name: str, port: int, *, h2: bool) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    if h2:
        cluster["typed_extension_protocol_options"] = {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def ext_authz_counters(admin_port: int) -> dict[str, int]:
    url = f"http://127.0.0.1:{admin_port}/stats?filter=ext_authz"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(": ")
        if name and value.isdigit():
            found[name] = int(value)
    return found


@dataclass
class Result:
    key: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu_us_per_request: float = 0.0
    provider_cpu_us_per_request: float = 0.0
    requests: int = 0
    errors: int = 0
    checks_ok: int = 0
    verified: bool = False
    samples: list[dict[str, Any]] = field(default_factory=list)


def run(rounds: int, seconds: float, workdir: Path) -> list[Result]:
    with dataplane.started(workdir) as processes:
        pki = certs.write_pki(workdir)
        backend_port = harness.free_port()
        backend = processes.start(
            "backend",
            [sys.executable, "-m", "meshward.samples.httpbin", "--quiet", "--host", "127.0.0.1",
             "--port", str(backend_port)],
        )  # fmt: skip
        harness.wait_http_ok(backend_port, dataplane.DEFAULT_PATH, backend)
        rules = workdir / "rules.yaml"
        rules.write_text(RULES)
        grpc_port, http_port = harness.free_port(), harness.free_port()
        provider = processes.start(
            "extauthz",
            [sys.executable, "-m", "meshward.cli.main", "extauthz", "--plugin", "rules",
             "--rules", str(rules), "--listen", f"127.0.0.1:{grpc_port}",
             "--http-listen", f"127.0.0.1:{http_port}"],
        )  # fmt: skip
        harness.wait_http_ok(http_port, "/", provider)
        running = []
        for key in VARIANTS:
            chosen = variant(key)
            directory = workdir / key
            directory.mkdir()
            ports = (harness.free_port(), harness.free_port(), backend_port)
            admin_port = harness.free_port()
            client, server = authz.pair_configs(pki, chosen, ports, admin_port)
            server["static_resources"]["clusters"] += [
                _cluster(GRPC_CLUSTER, grpc_port, h2=True),
                _cluster(HTTP_CLUSTER, http_port, h2=False),
            ]
            pair = dataplane.start_envoy_pair(
                processes, directory, (client, server), ports[:2], key=key, name=key
            )
            running.append(authz.Running(chosen, pair, admin_port))
        samples: dict[str, list[dict[str, Any]]] = {key: [] for key in VARIANTS}
        for round_ in range(rounds):
            shift = round_ % len(running)
            for each in (*running[shift:], *running[:shift]):
                before = harness.cpu_seconds(provider.pid)
                taken = authz.sample(each, seconds, pki)
                spent = harness.cpu_seconds(provider.pid) - before
                taken["provider_cpu_us_per_request"] = round(
                    spent / max(taken["requests"], 1) * 1e6, 1
                )
                samples[each.variant.key].append(taken)
                print(f"  round {round_ + 1} {each.variant.key}: {taken['rps']:.0f} req/s")
        return [_summarize(each, samples[each.variant.key]) for each in running]


def _summarize(running: authz.Running, samples: list[dict[str, Any]]) -> Result:
    result = Result(running.variant.key, samples=samples)
    for name in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_request",
                 "provider_cpu_us_per_request"):  # fmt: skip
        setattr(result, name, round(statistics.median(s[name] for s in samples), 3))
    result.requests = sum(s["requests"] for s in samples)
    result.errors = sum(s["non_2xx"] + s["socket_errors"] for s in samples)
    counters = ext_authz_counters(running.admin_port)
    result.checks_ok = sum(v for k, v in counters.items() if k.endswith("ext_authz.ok"))
    consulted = result.key in ("custom-grpc", "custom-http")
    checked = result.checks_ok >= result.requests if consulted else result.checks_ok == 0
    result.verified = checked and not result.errors
    return result


def table(results: Sequence[Result]) -> str:
    base = results[0]
    lines = [
        f"{'variant':<12} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'srv µs/req':>10} "
        f"{'prov µs/req':>11} {'x req/s':>8} {'x p50':>6}  check"
    ]
    for r in results:
        lines.append(
            f"{r.key:<12} {r.rps:>7.0f} {r.p50_ms:>7.2f} {r.p99_ms:>7.2f} "
            f"{r.server_cpu_us_per_request:>10.1f} {r.provider_cpu_us_per_request:>11.1f} "
            f"{r.rps / base.rps if base.rps else 0:>8.3f} "
            f"{r.p50_ms / base.p50_ms if base.p50_ms else 0:>6.2f}  "
            f"{'ok' if r.verified else 'FAILED'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of load per sample")
    parser.add_argument("--rounds", type=int, default=5, help="samples per variant (median)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s per variant")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    options = parser.parse_args(argv)
    seconds, rounds = (1.0, 2) if options.quick else (options.duration, options.rounds)
    with tempfile.TemporaryDirectory(prefix="meshward-bench-extauthz-") as tmp:
        results = run(rounds, seconds, Path(tmp))
    print(table(results))
    base = results[0]
    report = {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "load": {"tool": "wrk", "threads": dataplane.THREADS,
                 "connections": dataplane.CONNECTIONS, "seconds_per_sample": seconds,
                 "rounds": rounds, "path": dataplane.DEFAULT_PATH},
        "pair": "bench/dataplane.py (c) with CUSTOM filters on the server; provider: "
                "meshward extauthz --plugin rules (allow all)",
        "variants": [asdict(r) for r in results],
        "ratios_to_no_policy": {
            r.key: {"rps": round(r.rps / base.rps, 3) if base.rps else 0.0,
                    "p50_ms": round(r.p50_ms / base.p50_ms, 3) if base.p50_ms else 0.0}
            for r in results
        },
    }  # fmt: skip
    if not options.no_save:
        harness.save_report("extauthz", report)
    failed = [r.key for r in results if not r.verified]
    if failed:
        print(f"FAILED checks: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
