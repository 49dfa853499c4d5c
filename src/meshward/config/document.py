"""YAML text → documents of located nodes: every mapping key and sequence item knows its line.

Called by `meshward.config.loader` for each file; the result is read field by field by
`meshward.config.fields`. This is the only module that imports PyYAML.

PyYAML's constructor throws positions away, so we compose node graphs (`SafeLoader`, the same
steps as `yaml.compose_all`) and convert them here. Scalars keep both the YAML 1.1 value
(int, float, bool, None) and the text as written. Timestamps and any other tag stay text:
Kubernetes reads YAML through JSON, which has no date type, so `2024-01-01` is a string there.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

# The tags whose value we construct; every other scalar is kept as its text.
_TYPED_TAGS = frozenset(
    {
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    }
)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar: its value (str, int, float, bool or None), its text and 1-based line."""

    value: object
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One `key: value` pair of a mapping; `line` is the key's line."""

    key: str
    line: int
    value: Node


@dataclass(frozen=True, slots=True)
class Mapping:
    entries: tuple[Entry, ...]
    line: int

    def get(self, key: str) -> Entry | None:
        for entry in self.entries:
            if entry.key == key:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class Sequence:
    items: tuple[Node, ...]
    line: int


Node = Scalar | Mapping | Sequence


@dataclass(frozen=True, slots=True)
class Problem:
    """A structural problem inside a document (duplicate key, non-scalar key, alias loop).

    It is reported against the resource once the document's identity is known.
    """

    line: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file, already converted; `index` counts documents in the file."""

    file: str
    index: int
    root: Node
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class SyntaxFailure:
    """The file stopped being valid YAML at `line`; documents before it were still read."""

    line: int
    message: str


def parse(text: str, file: str) -> tuple[tuple[Document, ...], SyntaxFailure | None]:
    """All non-empty documents of `text`, and the syntax failure that ended reading, if any."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as error:
        # YAML 1.1 §5.1: only printable characters; PyYAML checks the whole text up front.
        line = text.count("\n", 0, error.position) + 1
        return (), SyntaxFailure(line, f"character U+{error.character:04X} is not allowed in YAML")
    documents: list[Document] = []
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            converter = _Converter(loader)
            root = converter.convert(node, "")
            # An empty document (`---` followed by nothing) is a null scalar: nothing to load.
            if not (isinstance(root, Scalar) and root.value is None):
                documents.append(Document(file, index, root, tuple(converter.problems)))
            index += 1
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 0
        return tuple(documents), SyntaxFailure(line, str(error.problem or error))
    finally:
        loader.dispose()
    return tuple(documents), None


def child_path(path: str, key: str) -> str:
    """`spec` + `ports` → `spec.ports`; the root path is ""."""
    return f"{path}.{key}" if path else key


class _Converter:
    """Turns one composed node graph into located nodes, collecting problems as it goes."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self._loader = loader
        self._active: set[int] = set()  # ids of nodes on the current path: alias loops
        self.problems: list[Problem] = []

    def convert(self, node: yaml.Node, path: str) -> Node:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            value: object = node.value
            if node.tag in _TYPED_TAGS:
                value = self._loader.construct_object(node)
            return Scalar(value, str(node.value), line)
        if id(node) in self._active:
            self.problems.append(Problem(line, path, "recursive YAML alias"))
            return Scalar(None, "", line)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                items = tuple(
                    self.convert(item, f"{path}[{i}]") for i, item in enumerate(node.value)
                )
                return Sequence(items, line)
            assert isinstance(node, yaml.MappingNode)
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str) -> Mapping:
        entries: dict[str, Entry] = {}
        merged: list[Entry] = []
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                merged.extend(self._merge_sources(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(key_line, path, "mapping key is not a scalar"))
                continue
            key = str(key_node.value)
            field = child_path(path, key)
            if key in entries:
                first = entries[key].line
                self.problems.append(
                    Problem(key_line, field, f"duplicate key {key!r} (first at line {first})")
                )
                continue
            entries[key] = Entry(key, key_line, self.convert(value_node, field))
        # YAML merge keys (`<<: *defaults`): explicit keys win over merged ones.
        for entry in merged:
            entries.setdefault(entry.key, entry)
        return Mapping(tuple(entries.values()), node.start_mark.line + 1)

    def _merge_sources(self, node: yaml.Node, path: str) -> list[Entry]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        entries: dict[str, Entry] = {}
        for source in sources:
            converted = self.convert(source, path)
            if isinstance(converted, Mapping):
                # YAML merge-key spec: with a list of sources, earlier sources win.
                for entry in converted.entries:
                    entries.setdefault(entry.key, entry)
            else:
                self.problems.append(
                    Problem(converted.line, path, "merge key `<<` needs a mapping")
                )
        return list(entries.values())
