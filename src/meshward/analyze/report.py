"""Rendering findings: the table, JSON and SARIF 2.1.0 forms of `meshward analyze`, and the
`--fail-on` decision. Pure (strings and JSON-able values); cli/analyze.py prints them.

SARIF follows the OASIS SARIF 2.1.0 standard: one run, `tool.driver.rules` from the catalog
(id, shortDescription = summary, help = fix), results with ruleId/ruleIndex, level
(error/warning/note), message and a physical location (file URI + startLine) — what CI
systems (GitHub code scanning, GitLab) need to show a finding inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshward.diagnostics import CATALOG, Diagnostic, Level
from meshward.diagnostics.catalog import lookup

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Level.ERROR: "error", Level.WARNING: "warning", Level.INFO: "note"}
_RANK = {Level.INFO: 0, Level.WARNING: 1, Level.ERROR: 2}


def fix(diagnostic: Diagnostic) -> str:
    """The catalog's one-line fix for the finding's code ("" when it has none)."""
    return lookup(diagnostic.code).fix


def failing(findings: Sequence[Diagnostic], threshold: Level) -> bool:
    """True when any finding is at or above `threshold` (the `--fail-on` level)."""
    return any(_RANK[d.level] >= _RANK[threshold] for d in findings)


def table(findings: Sequence[Diagnostic]) -> str:
    """LEVEL CODE RESOURCE LOCATION MESSAGE, one row per finding, then its `fix:` line."""
    if not findings:
        return "no findings"
    rows = [
        (d.level.value, d.code, d.resource or "-", str(d.location), d.message) for d in findings
    ]
    header = ("LEVEL", "CODE", "RESOURCE", "LOCATION", "MESSAGE")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = []
    for i, row in enumerate((header, *rows)):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
        if i and fix(findings[i - 1]):
            lines.append(f"  fix: {fix(findings[i - 1])}")
    return "\n".join(lines)


def as_json(findings: Sequence[Diagnostic]) -> list[dict[str, Any]]:
    return [
        {
            "code": d.code,
            "level": d.level.value,
            "resource": d.resource,
            "file": d.location.file,
            "line": d.location.line,
            "field": d.location.field,
            "message": d.message,
            "fix": fix(d),
        }
        for d in findings
    ]


def sarif(findings: Sequence[Diagnostic], version: str = "") -> dict[str, Any]:
    """One SARIF 2.1.0 log with one run; every catalogued code is a rule."""
    codes = sorted(CATALOG)
    index = {code: i for i, code in enumerate(codes)}
    rules = []
    for code in codes:
        entry = CATALOG[code]
        rule: dict[str, Any] = {
            "id": code,
            "shortDescription": {"text": entry.summary},
            "defaultConfiguration": {"level": _SARIF_LEVEL[entry.level]},
        }
        if entry.fix:
            rule["help"] = {"text": entry.fix}
        rules.append(rule)
    driver: dict[str, Any] = {"name": "meshward", "rules": rules}
    if version:
        driver["version"] = version
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": [_result(d, index) for d in findings]}],
    }


def _result(d: Diagnostic, index: dict[str, int]) -> dict[str, Any]:
    text = f"{d.resource}: {d.message}" if d.resource else d.message
    result: dict[str, Any] = {
        "ruleId": d.code,
        "ruleIndex": index[d.code],
        "level": _SARIF_LEVEL[d.level],
        "message": {"text": text},
    }
    if d.location.file:
        physical: dict[str, Any] = {"artifactLocation": {"uri": d.location.file}}
        if d.location.line:
            physical["region"] = {"startLine": d.location.line}
        result["locations"] = [{"physicalLocation": physical}]
    if d.resource:
        result["properties"] = {"resource": d.resource, "field": d.location.field}
    return result
