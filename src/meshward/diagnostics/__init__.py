"""Coded diagnostics: how every user mistake is reported.

Callers: config/ (parse errors), model/ (dangling references), the translator (a resource that
drops itself), the CLI (printing). Tests assert codes, never prose.
"""

from meshward.diagnostics.catalog import CATALOG, Code
from meshward.diagnostics.diagnostic import Diagnostic, Level, Location, has_errors

__all__ = ["CATALOG", "Code", "Diagnostic", "Level", "Location", "has_errors"]
