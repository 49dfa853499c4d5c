"""The diagnostics of one resource (or file) as it is read.

Called by every kind parser (through `meshward.config.fields`) and by the loader. The level of
each diagnostic comes from the catalog, so a code's severity is decided in one place.
"""

from __future__ import annotations

from meshward.diagnostics import Diagnostic, Level, Location
from meshward.diagnostics.catalog import lookup


class Report:
    """Collects diagnostics for one resource; `resource` is its `Kind ns/name` ref (or "")."""

    __slots__ = ("diagnostics", "file", "resource")

    def __init__(self, file: str, resource: str = "") -> None:
        self.file = file
        self.resource = resource
        self.diagnostics: list[Diagnostic] = []

    def add(self, code: str, line: int, field: str, message: str) -> None:
        location = Location(self.file, line, field)
        level = lookup(code).level
        self.diagnostics.append(Diagnostic(code, level, self.resource, location, message))

    @property
    def failed(self) -> bool:
        """True once any error was added: the resource must be left out of the set."""
        return any(d.level is Level.ERROR for d in self.diagnostics)
