"""The runner's config store: one YAML file per resource, merged `kubectl apply`-style.

Called by the runner on `up` (seed the store from the user's paths) and by `meshward apply`
(merge incoming documents: a document with the same kind, namespace and name replaces the
stored one in place — so Istio's "oldest wins" order is kept — and a new one is appended).
Files are named by sequence number so `config.load` on the directory sees them in the order
they were first applied. Invalid input never reaches here: callers validate with
`config.load` first and only store a set that has no errors.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from meshward.config import source
from meshward.config.report import Report

DocumentKey = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True, slots=True)
class RawDocument:
    key: DocumentKey
    text: str


def split_documents(text: str) -> list[RawDocument]:
    """The documents of one YAML stream, each with its identity and its own source text."""
    documents = []
    for node in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if node is None:
            continue
        value = yaml.safe_load(text[node.start_mark.index : node.end_mark.index])
        documents.append(
            RawDocument(_key(value), text[node.start_mark.index : node.end_mark.index])
        )
    return documents


def _key(value: object) -> DocumentKey:
    if not isinstance(value, dict):
        return ("", "", "")
    meta = value.get("metadata") or {}
    kind = str(value.get("kind", ""))
    namespace = "" if kind == "MeshConfig" else str(meta.get("namespace") or "default")
    return (kind, namespace, str(meta.get("name", "")))


def read_paths(paths: Iterable[Path]) -> list[RawDocument]:
    # The same files, in the same order, that `config.load` read for these paths: callers
    # store a set only after `load` accepted it.
    documents: list[RawDocument] = []
    for file in source.files(list(paths), Report("")):
        documents.extend(split_documents(file.read_text()))
    return documents


def merge(current: Sequence[RawDocument], incoming: Sequence[RawDocument]) -> list[RawDocument]:
    """`current` with each incoming document replacing its namesake in place, new ones appended."""
    merged = list(current)
    index = {doc.key: i for i, doc in enumerate(merged)}
    for doc in incoming:
        if doc.key in index:
            merged[index[doc.key]] = doc
        else:
            index[doc.key] = len(merged)
            merged.append(doc)
    return merged


def remove(current: Sequence[RawDocument], keys: Iterable[DocumentKey]) -> list[RawDocument]:
    gone = set(keys)
    return [doc for doc in current if doc.key not in gone]


def write_store(directory: Path, documents: Sequence[RawDocument]) -> None:
    """Replace the store with `documents`, atomically (build aside, then swap directories)."""
    staging = directory.with_name(directory.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for number, doc in enumerate(documents, start=1):
        kind, namespace, name = doc.key
        header = f"# {kind} {namespace}/{name}\n" if namespace else f"# {kind} {name}\n"
        (staging / f"{number:04d}.yaml").write_text(header + doc.text.rstrip() + "\n")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def read_store(directory: Path) -> list[RawDocument]:
    if not directory.exists():
        return []
    return read_paths([directory])
