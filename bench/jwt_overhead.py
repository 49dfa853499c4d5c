"""JWT validation overhead: the same wrk load through an Envoy mTLS pair whose server side
has no RequestAuthentication, or validates a token and requires its principal, in one run.
(Named jwt_overhead.py: a `jwt.py` would shadow PyJWT on the script's import path.)

    .venv/bin/python bench/jwt_overhead.py [--quick] [--rounds R] [--duration S] [--no-save]

The pair is bench/dataplane.py's (c) (wrk → Envoy → mTLS h2 → Envoy → httpbin, static
config, one worker each; bench/authz.py's server config with path normalisation and an
admin listener). Only the server's HTTP filters and the request's headers differ, and the
filters come from meshward's own translators, as a sidecar's inbound port gets them:
  none       no RequestAuthentication, no AuthorizationPolicy (the baseline); requests
             carry the same Authorization header, ignored
  jwt        xds/jwt_authn.py for one RS256 rule (key set inline, as the control plane
             pushes it) and xds/rbac.py for an ALLOW policy requiring `requestPrincipals:
             [<iss>/*]`: every request's token is verified (signature, time, audience) and
             its principal matched
  jwt-only   jwt_authn alone (the token is verified; no policy reads it)
Rounds rotate the order; figures are medians. Afterwards every measured request must have
been answered 2xx (a refused token would be 401/403) and the server's jwt_authn `allowed`
counter must have counted them. Output: a table and JSON in bench/results/jwt-<UTC>.json
(req/s, p50/p99, server CPU µs per request, ratios to the baseline). Every process is
started and stopped here by PID.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import authz
import certs
import dataplane
import harness
from google.protobuf import json_format

from meshward.model import authorization
from meshward.model.request_authn import JwtRule
from meshward.samples.idp import keys, tokens
from meshward.xds import jwt_authn, rbac

ISSUER = "https://idp.bench"
AUDIENCE = "bench"
VARIANTS = ("none", "jwt", "jwt-only")


def _rule(jwks: str) -> JwtRule:
    return JwtRule(
        origin="bench/jwt jwtRules[0]",
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        key_source="inline",
        jwks=jwks,
        from_headers=(),
        from_params=(),
        from_cookies=(),
        output_payload_to_header="",
        forward_original_token=False,
        output_claim_to_headers=(),
        timeout_seconds=5.0,
    )


REQUIRE_PRINCIPAL = authorization.PortAuthz(
    (
        authorization.AuthzPolicy(
            "bench",
            "need-jwt",
            "ALLOW",
            (
                authorization.AuthzRule(
                    0,
                    sources=(
                        authorization.SourceMatch(
                            request_principals=(authorization.StringMatch("prefix", ISSUER + "/"),)
                        ),
                    ),
                ),
            ),
        ),
    )
)


def server_filters(variant: str, rule: JwtRule) -> list[dict[str, Any]]:
    filters = []
    if variant != "none":
        filters += jwt_authn.http_filters([rule])
    if variant == "jwt":
        filters += rbac.rbac_filters_for(REQUIRE_PRINCIPAL, http=True)
    return [json_format.MessageToDict(f) for f in filters]


def start(
    processes: harness.Processes, variant: str, workdir: Path, backend_port: int,
    pki: certs.Pki, rule: JwtRule, token: str,
) -> tuple[harness.Pair, int]:  # fmt: skip
    directory = workdir / variant
    directory.mkdir()
    ports = (harness.free_port(), harness.free_port(), backend_port)
    admin_port = harness.free_port()
    client, server = authz.pair_configs(pki, authz.allow_variant(1), ports, admin_port)
    manager = server["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = manager["typed_config"]["http_filters"]
    filters[:] = [*server_filters(variant, rule), filters[-1]]  # keep only the router
    if variant != "none":
        manager["typed_config"]["local_reply_config"] = json_format.MessageToDict(
            jwt_authn.local_reply([rule])
        )
    pair = dataplane.start_envoy_pair(
        processes,
        directory,
        (client, server),
        ports[:2],
        key=variant,
        name=variant,
        headers=(("Authorization", f"Bearer {token}"),),
    )
    return pair, admin_port


def counter(admin_port: int, suffix: str) -> int:
    url = f"http://127.0.0.1:{admin_port}/stats?filter=jwt_authn"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(
        int(value)
        for name, _, value in (line.rpartition(": ") for line in text.splitlines())
        if name.endswith(suffix) and value.isdigit()
    )


def measure_all(rounds: int, seconds: float, workdir: Path) -> dict[str, dict[str, Any]]:
    with dataplane.started(workdir) as processes:
        pki = certs.write_pki(workdir)
        store = keys.KeyStore(workdir / "idp")
        now = time.time()
        store.ensure(now)
        rule = _rule(json.dumps(store.public_jwks(now, 0)))
        token = tokens.issue(
            store, issuer=ISSUER, subject="bench", now=now, ttl_seconds=3600,
            audiences=(AUDIENCE,),
        )  # fmt: skip
        backend_port = harness.free_port()
        backend = processes.start(
            "backend",
            [sys.executable, "-m", "meshward.samples.httpbin", "--quiet", "--host", "127.0.0.1",
             "--port", str(backend_port)],
        )  # fmt: skip
        harness.wait_http_ok(backend_port, dataplane.DEFAULT_PATH, backend)
        running = {
            v: start(processes, v, workdir, backend_port, pki, rule, token) for v in VARIANTS
        }
        samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        order = list(VARIANTS)
        for round_ in range(rounds):
            shift = round_ % len(order)
            for variant in (*order[shift:], *order[:shift]):
                pair, _ = running[variant]
                measured = dataplane.measure(pair, dataplane.DEFAULT_PATH, seconds, pki)
                cpu = {p["role"]: p["cpu_s"] for p in measured.proxies}
                requests = max(measured.load["requests"], 1)
                samples[variant].append(
                    {**measured.load,
                     "server_cpu_us_per_request": round(cpu["server"] / requests * 1e6, 1)}
                )  # fmt: skip
                print(f"  round {round_ + 1} {variant}: {measured.load['rps']:.0f} req/s")
        results = {}
        for variant in VARIANTS:
            taken = samples[variant]
            summary: dict[str, Any] = {
                name: round(statistics.median(s[name] for s in taken), 3)
                for name in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_request")
            }
            summary["requests"] = sum(s["requests"] for s in taken)
            summary["errors"] = sum(s["non_2xx"] + s["socket_errors"] for s in taken)
            _, admin_port = running[variant]
            summary["jwt_allowed"] = counter(admin_port, "jwt_authn.allowed")
            summary["jwt_denied"] = counter(admin_port, "jwt_authn.denied")
            checked = variant == "none" or summary["jwt_allowed"] >= summary["requests"]
            summary["verified"] = checked and not summary["errors"] and not summary["jwt_denied"]
            summary["samples"] = taken
            results[variant] = summary
        return results


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    base = results["none"]
    return {
        variant: {
            "rps": round(results[variant]["rps"] / base["rps"], 3),
            "server_cpu_us_per_request": round(
                results[variant]["server_cpu_us_per_request"] / base["server_cpu_us_per_request"], 3
            ),
            "p50_ms": round(results[variant]["p50_ms"] / base["p50_ms"], 3),
        }
        for variant in VARIANTS[1:]
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of load per sample")
    parser.add_argument("--rounds", type=int, default=3, help="samples per variant (median)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s per variant")
    parser.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    options = parser.parse_args(argv)
    seconds, rounds = (1.0, 2) if options.quick else (options.duration, options.rounds)
    with tempfile.TemporaryDirectory(prefix="meshward-bench-jwt-") as tmp:
        results = measure_all(rounds, seconds, Path(tmp))
    rates = ratios(results)
    print(f"{'variant':10} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'srv µs/req':>10}  ratio")
    for variant in VARIANTS:
        r = results[variant]
        ratio = rates.get(variant, {}).get("rps", 1.0)
        print(f"{variant:10} {r['rps']:9.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
              f"{r['server_cpu_us_per_request']:10.1f}  {ratio:.3f}"
              + ("" if r["verified"] else "  (NOT VERIFIED)"))  # fmt: skip
    report = {
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "load": {"tool": "wrk", "threads": dataplane.THREADS,
                 "connections": dataplane.CONNECTIONS, "seconds_per_sample": seconds,
                 "rounds": rounds, "path": dataplane.DEFAULT_PATH},
        "pair": "bench/dataplane.py (c): Envoy mTLS pair, h2, 1 worker each; server validates",
        "variants": results,
        "ratios_to_none": rates,
    }  # fmt: skip
    if not options.no_save:
        harness.save_report("jwt", report)
    failed = [v for v, r in results.items() if not r["verified"]]
    if failed:
        print(f"FAILED checks: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
