"""Rendering verification results: a table for people, JSON for machines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshward.verify.probe import ProbeResult


def passed(results: Sequence[ProbeResult]) -> bool:
    """True when every probe met its expectation and there was at least one probe."""
    return bool(results) and all(r.passed for r in results)


def as_json(results: Sequence[ProbeResult]) -> dict[str, Any]:
    return {
        "passed": passed(results),
        "total": len(results),
        "failed": sum(not r.passed for r in results),
        "probes": [
            {
                "check": r.check,
                "target": r.target,
                "expected": r.expected,
                "observed": r.observed,
                "passed": r.passed,
            }
            for r in results
        ],
    }


def as_text(results: Sequence[ProbeResult]) -> str:
    if not results:
        return "verification: no probes (is a mesh running from this state directory?)"
    lines = ["verification report", "==================="]
    by_check: dict[str, list[ProbeResult]] = {}
    for result in results:
        by_check.setdefault(result.check, []).append(result)
    for check, group in by_check.items():
        ok = sum(r.passed for r in group)
        lines.append(f"\n{check}: {ok}/{len(group)} passed")
        for r in group:
            mark = "PASS" if r.passed else "FAIL"
            lines.append(f"  [{mark}] {r.target}")
            lines.append(f"         expected {r.expected}; observed {r.observed}")
    failed = sum(not r.passed for r in results)
    verdict = "all expectations hold" if not failed else f"{failed} FAILED"
    lines.append(f"\n{len(results)} probes: {verdict}")
    return "\n".join(lines)
