"""Rounds of a benchmark and what is made of them: each path's result (`PathResult`), the
rounds rotated so a host that gets busier does not always hit one path (`rotated_rounds`),
the round with the median throughput, and the throughput ratios between paths.

Used by bench/dataplane.py, bench/ingress.py and bench/egress.py (and the other benchmarks
through dataplane's `measure`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import Pair


@dataclass
class PathResult:
    key: str
    name: str
    run: bool = True
    reason: str = ""
    load: dict[str, Any] = field(default_factory=dict)
    proxies: list[dict[str, Any]] = field(default_factory=list)
    strict_mtls_verified: bool | None = None
    others: list[dict[str, Any]] = field(default_factory=list)


# The throughput ratios between the paths that ran, (top, bottom) each.
RATIOS = (
    *(("c", "a"), ("d", "a"), ("c", "d"), ("b", "c"), ("b", "d"), ("b", "a")),
    *(("e", "b"), ("e", "c"), ("e", "a")),
)


def ratios(
    results: dict[str, PathResult], pairs: tuple[tuple[str, str], ...] = RATIOS
) -> dict[str, float]:
    """req/s of `top` over `bottom` for each of `pairs` where both paths ran."""
    out: dict[str, float] = {}
    for top, bottom in pairs:
        if top in results and bottom in results and results[top].run and results[bottom].run:
            out[f"{top}/{bottom}"] = round(
                results[top].load["rps"] / results[bottom].load["rps"], 3
            )
    return out


def median_sample(taken: list[PathResult]) -> PathResult:
    """The round with the median throughput (the lower one of two middles): one real
    measurement, so its latency, CPU and RSS belong together."""
    ordered = sorted(taken, key=lambda result: float(result.load["rps"]))
    return ordered[(len(ordered) - 1) // 2]


def median_ratios(
    samples: dict[str, list[PathResult]], pairs: tuple[tuple[str, str], ...] = RATIOS
) -> dict[str, float]:
    """Each ratio per round (paths of one round ran close together), then its median."""
    rounds = min(len(taken) for taken in samples.values())
    per_round = [
        ratios({key: taken[i] for key, taken in samples.items()}, pairs) for i in range(rounds)
    ]
    return {key: round(statistics.median(r[key] for r in per_round), 3) for key in per_round[0]}


def rotated_rounds(
    pairs: dict[str, Pair], rounds: int, measure_one: Callable[[Pair], PathResult]
) -> dict[str, list[PathResult]]:
    """Every pair is up (idle ones cost nothing); each round loads each once, one path later
    each round, so a host that gets busier during the run does not always hit one path.
    Also used by bench/ingress.py and bench/egress.py."""
    samples: dict[str, list[PathResult]] = {}
    keys = list(pairs)
    for round_ in range(rounds):
        shift = round_ % len(keys)
        for key in (*keys[shift:], *keys[:shift]):
            samples.setdefault(key, []).append(measure_one(pairs[key]))
    return samples


def sample_summary(result: PathResult) -> dict[str, Any]:
    """One round of one path: load, and CPU µs per request of each proxy and other process."""
    requests = max(result.load["requests"], 1)
    return {
        **result.load,
        "cpu_us_per_request": {
            p["role"]: round(p["cpu_s"] / requests * 1e6, 1)
            for p in (*result.proxies, *result.others)
        },
    }
