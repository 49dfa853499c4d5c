"""The Diagnostic value: code, level, resource, location (file:line + field path), message."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """Severity. ERROR blocks a config set from being applied; the others never do."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the user's input: file, 1-based line, and the field path (`spec.mtls.mode`)."""

    file: str = ""
    line: int = 0
    field: str = ""

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else (self.file or "<input>")
        return f"{place} {self.field}".rstrip()


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in user input.

    `code` comes from the catalog (`meshward.diagnostics.catalog`); `resource` names the
    resource as `Kind namespace/name` (or "" when the document has no usable identity).
    """

    code: str
    level: Level
    resource: str
    location: Location
    message: str

    def __str__(self) -> str:
        subject = f" [{self.resource}]" if self.resource else ""
        return f"{self.location}: {self.level.value} {self.code}{subject}: {self.message}"


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True if any diagnostic is error-level (the config set must not be applied)."""
    return any(d.level is Level.ERROR for d in diagnostics)
