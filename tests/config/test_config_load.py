"""`load(paths)`: files and directories, order, missing paths, unreadable files."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.config import load

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  ports: [{port: 80}]\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    _write(tmp_path / "b.yaml", SERVICE % "b")
    _write(tmp_path / "a" / "z.yml", SERVICE % "az")
    _write(tmp_path / "a.yaml", SERVICE % "a")
    _write(tmp_path / "notes.txt", "not: yaml: at all")
    result = load([tmp_path])
    assert result.diagnostics == ()
    assert [
        (s.meta.name, Path(s.meta.file).relative_to(tmp_path).as_posix(), s.meta.order)
        for s in result.services
    ] == [
        ("az", "a/z.yml", ("", 0)),
        ("a", "a.yaml", ("", 1)),
        ("b", "b.yaml", ("", 2)),
    ]


def test_paths_keep_their_given_order_and_a_file_is_read_once(tmp_path: Path) -> None:
    second = _write(tmp_path / "2.yaml", SERVICE % "two")
    first = _write(tmp_path / "1.yaml", SERVICE % "one")
    result = load([str(second), first, tmp_path])
    assert result.diagnostics == ()
    assert [s.meta.name for s in result.services] == ["two", "one"]


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    good = _write(tmp_path / "ok.yaml", SERVICE % "ok")
    result = load([tmp_path / "nope.yaml", tmp_path / "empty", good])
    assert [(d.code, Path(d.location.file).name) for d in result.diagnostics] == [
        ("MW0115", "nope.yaml"),
        ("MW0115", "empty"),
    ]
    assert [s.meta.name for s in result.services] == ["ok"]


def test_bad_files_do_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe\x00bad")
    _write(tmp_path / "b.yaml", "kind: [\n")
    _write(tmp_path / "c.yaml", SERVICE % "c")
    result = load([tmp_path])
    assert [(d.code, Path(d.location.file).name) for d in result.diagnostics] == [
        ("MW0101", "a.yaml"),
        ("MW0101", "b.yaml"),
    ]
    assert [s.meta.name for s in result.services] == ["c"]


def test_document_order_continues_across_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", (SERVICE % "x") + "---\n" + (SERVICE % "y"))
    _write(tmp_path / "b.yaml", SERVICE % "z")
    result = load([tmp_path])
    assert [(s.meta.name, s.meta.line, s.meta.order) for s in result.services] == [
        ("x", 1, ("", 0)),
        ("y", 7, ("", 1)),
        ("z", 1, ("", 2)),
    ]


@pytest.mark.parametrize("bare", ["examples", Path("examples")])
def test_a_bare_path_instead_of_a_list_is_refused(bare: str | Path) -> None:
    with pytest.raises(TypeError):
        load(bare)  # type: ignore[arg-type]
