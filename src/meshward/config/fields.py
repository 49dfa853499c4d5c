"""A cursor over one YAML mapping that reads typed fields and reports every problem as a coded
diagnostic with the field's path and line.

Called by the kind parsers (`service`, `workload`, `mesh_config`, `peer_authentication`,
`destination_rule`) and by `kind` for metadata. Each method returns None when the field is
absent or invalid; an invalid field has already been reported, so callers only decide defaults.
`finish()` reports every key that no method asked for as an unknown field (MW0106): the set of
known fields is exactly what the parser reads, so the two cannot drift apart.
"""

from __future__ import annotations

import difflib

from meshward.config import document, names
from meshward.config.report import Report
from meshward.config.resources import Labels

_TYPE_NAMES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def describe(node: document.Node) -> str:
    """The YAML type of a node as a user would name it ("mapping", "integer", ...)."""
    if isinstance(node, document.Mapping):
        return "mapping"
    if isinstance(node, document.Sequence):
        return "list"
    return _TYPE_NAMES.get(type(node.value), "scalar")


def open_mapping(node: document.Node, path: str, report: Report, line: int = 0) -> Fields | None:
    """`Fields` over `node` if it is a mapping; otherwise report MW0108 and return None."""
    if isinstance(node, document.Mapping):
        return Fields(node, path, report, line)
    report.add("MW0108", node.line, path, f"expected a mapping, got {describe(node)}")
    return None


class UniqueValues:
    """Reports the second use of a value (port number, port name) in one list (MW0116)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[object] = set()

    def check(self, item: Fields, key: str, value: object) -> None:
        if value is None or value == "":
            return
        if value in self._seen:
            item.disallow(key, f"{key} {value} appears twice in this list", code="MW0116")
        self._seen.add(value)


class Fields:
    """Reads the fields of one mapping at `path` (e.g. `spec.ports[1]`)."""

    __slots__ = ("_asked", "_line", "_node", "_path", "report")

    def __init__(self, node: document.Mapping, path: str, report: Report, line: int = 0) -> None:
        """`line` is where the mapping is named (its key's line); default: its first line."""
        self._node = node
        self._line = line or node.line
        self._path = path
        self._asked: list[str] = []
        self.report = report

    @classmethod
    def empty(cls, line: int, path: str, report: Report) -> Fields:
        """An absent mapping read as an empty one, so optional blocks need no special case."""
        return cls(document.Mapping((), line), path, report)

    @property
    def line(self) -> int:
        return self._line

    @property
    def path(self) -> str:
        return self._path

    def field(self, key: str) -> str:
        """The path of `key` in this mapping, for diagnostics."""
        return document.child_path(self._path, key)

    def line_of(self, key: str) -> int:
        """The line of `key`, or of this mapping when the key is absent."""
        entry = self._node.get(key)
        return entry.line if entry is not None else self._line

    def has(self, key: str) -> bool:
        """True if `key` is present with a non-null value."""
        entry = self._node.get(key)
        if entry is None:
            return False
        return not (isinstance(entry.value, document.Scalar) and entry.value.value is None)

    def take(self, key: str, *, required: bool = False) -> document.Entry | None:
        """The raw entry for `key` (marking it known); MW0107 if required and absent.

        A null value counts as absent.
        """
        self._asked.append(key)
        entry = self._node.get(key)
        # Kubernetes reads YAML as JSON, where `key: null` (or a bare `key:`) means unset.
        if entry is not None and isinstance(entry.value, document.Scalar):
            entry = None if entry.value.value is None else entry
        if entry is None and required:
            self.report.add("MW0107", self._line, self.field(key), f"{key} is required")
        return entry

    def accept(self, *keys: str) -> None:
        """Mark `keys` as known fields that meshward reads no further (e.g. `status`)."""
        self._asked.extend(keys)

    def wrong_type(self, entry: document.Entry, expected: str) -> None:
        got = describe(entry.value)
        self.report.add(
            "MW0108", entry.line, self.field(entry.key), f"expected {expected}, got {got}"
        )

    def disallow(self, key: str, message: str, code: str = "MW0109") -> None:
        """Report that the value of `key` is not allowed (default code MW0109)."""
        self.report.add(code, self.line_of(key), self.field(key), message)

    def _scalar(self, key: str, kind: type, expected: str, required: bool) -> object:
        entry = self.take(key, required=required)
        if entry is None:
            return None
        value = entry.value
        # bool is an int in Python, never in YAML: check the exact type.
        if isinstance(value, document.Scalar) and type(value.value) is kind:
            return value.value
        self.wrong_type(entry, expected)
        return None

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._scalar(key, str, "a string", required)
        if isinstance(value, str) and required and value == "":
            self.disallow(key, f"{key} must not be empty", code="MW0107")
            return None
        return value if isinstance(value, str) else None

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._scalar(key, int, "an integer", required)
        return value if isinstance(value, int) else None

    def boolean(self, key: str, *, required: bool = False) -> bool | None:
        value = self._scalar(key, bool, "a boolean", required)
        return value if isinstance(value, bool) else None

    def choice(self, key: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
        """A string that must be one of `allowed` (MW0109 lists them)."""
        value = self.string(key, required=required)
        if value is None or value in allowed:
            return value
        self.disallow(key, f"{value!r} is not allowed; use one of: {', '.join(allowed)}")
        return None

    def port(self, key: str, *, required: bool = False) -> int | None:
        """A port number 1-65535 (MW0113 outside)."""
        value = self.integer(key, required=required)
        if value is None or 1 <= value <= 65535:
            return value
        self.disallow(key, f"port {value} is outside 1-65535", code="MW0113")
        return None

    def mapping(self, key: str, *, required: bool = False) -> Fields | None:
        entry = self.take(key, required=required)
        if entry is None:
            return None
        return open_mapping(entry.value, self.field(key), self.report, entry.line)

    def entries(self, key: str) -> tuple[document.Entry, ...] | None:
        """The raw entries of a mapping-valued field whose keys are data (`portLevelMtls`)."""
        entry = self.take(key)
        if entry is None:
            return None
        if not isinstance(entry.value, document.Mapping):
            self.wrong_type(entry, "a mapping")
            return None
        return entry.value.entries

    def items(self, key: str, *, required: bool = False) -> tuple[Fields, ...] | None:
        """A list of mappings, each as `Fields` at `key[i]`; None if absent or not a list.

        A required list must also be non-empty (MW0107).
        """
        entry = self.take(key, required=required)
        if entry is None:
            return None
        if not isinstance(entry.value, document.Sequence):
            self.wrong_type(entry, "a list")
            return None
        if required and not entry.value.items:
            self.disallow(key, f"{key} needs at least one item", code="MW0107")
        opened = []
        for index, item in enumerate(entry.value.items):
            fields = open_mapping(item, f"{self.field(key)}[{index}]", self.report)
            if fields is not None:
                opened.append(fields)
        return tuple(opened)

    def strings(self, key: str, *, required: bool = False) -> tuple[str, ...] | None:
        """A list of strings."""
        entry = self.take(key, required=required)
        if entry is None:
            return None
        if not isinstance(entry.value, document.Sequence):
            self.wrong_type(entry, "a list of strings")
            return None
        values: list[str] = []
        for index, item in enumerate(entry.value.items):
            if isinstance(item, document.Scalar) and isinstance(item.value, str):
                values.append(item.value)
            else:
                self.report.add(
                    "MW0108",
                    item.line,
                    f"{self.field(key)}[{index}]",
                    f"expected a string, got {describe(item)}",
                )
        return tuple(values)

    def string_map(self, key: str) -> dict[str, str] | None:
        """A mapping of strings to strings (annotations)."""
        pairs = self.entries(key)
        if pairs is None:
            return None
        values: dict[str, str] = {}
        for pair in pairs:
            if isinstance(pair.value, document.Scalar) and isinstance(pair.value.value, str):
                values[pair.key] = pair.value.value
            else:
                self.report.add(
                    "MW0108",
                    pair.line,
                    f"{self.field(key)}.{pair.key}",
                    f"expected a string, got {describe(pair.value)}",
                )
        return values

    def labels(self, key: str) -> Labels | None:
        """A label map or selector (`matchLabels`), checked against Kubernetes label syntax."""
        values = self.string_map(key)
        if values is None:
            return None
        for label, value in values.items():
            if not names.is_label_key(label) or not names.is_label_value(value):
                self.report.add(
                    "MW0117",
                    self._entry_line(key, label),
                    f"{self.field(key)}.{label}",
                    f"invalid label {label}={value!r}",
                )
        return tuple(sorted(values.items()))

    def _entry_line(self, key: str, inner: str) -> int:
        entry = self._node.get(key)
        if entry is not None and isinstance(entry.value, document.Mapping):
            found = entry.value.get(inner)
            if found is not None:
                return found.line
        return self.line_of(key)

    def finish(self) -> None:
        """Report every key no reader asked for (MW0106), suggesting the nearest known one."""
        known = set(self._asked)
        for entry in self._node.entries:
            if entry.key in known:
                continue
            close = difflib.get_close_matches(entry.key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listing = ", ".join(sorted(known)) or "none"
            self.report.add(
                "MW0106",
                entry.line,
                self.field(entry.key),
                f"unknown field {entry.key!r}{hint} (known fields: {listing})",
            )
