"""Renders the diagnostic catalog as Markdown: `python -m meshward.diagnostics.docs >
docs/diagnostics.md`. The catalog (diagnostics/catalog.py) is the one source; a test keeps the
committed docs/diagnostics.md equal to this output.
"""

from __future__ import annotations

from meshward.diagnostics.catalog import CATALOG, Code

_RANGES = (
    ("MW01", "Config (config/): YAML, documents, kinds, fields, values"),
    ("MW02", "Model (model/): references between resources, conflicts, effective policy"),
    ("MW03", "Translation (xds/): a resource that drops itself"),
    ("MW04", "Runtime: control plane, data plane, CA"),
    ("MW05", "Analyzer (`meshward analyze`): best-practice findings"),
    ("MW06", "Admission: admission policy violations"),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(entry: Code) -> str:
    summary = f"~~{_cell(entry.summary)}~~ (retired)" if entry.retired else _cell(entry.summary)
    return f"| {entry.code} | {entry.level.value} | {summary} | {_cell(entry.fix)} |"


def render() -> str:
    """The whole Markdown page."""
    lines = [
        "# Diagnostic codes",
        "",
        "Generated from `meshward.diagnostics.catalog` by "
        "`python -m meshward.diagnostics.docs > docs/diagnostics.md`; do not edit by hand.",
        "Every code is defined once and never reused; a retired code keeps its number.",
        "The level is the default severity; `meshward analyze --fail-on LEVEL` exits 1 at "
        "or above it.",
    ]
    for prefix, title in _RANGES:
        entries = [CATALOG[code] for code in sorted(CATALOG) if code.startswith(prefix)]
        lines += ["", f"## {prefix}xx — {title}", ""]
        if not entries:
            lines.append("No codes yet.")
            continue
        lines += ["| code | level | summary | fix |", "|---|---|---|---|"]
        lines += [_row(entry) for entry in entries]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
