"""YAML text → located nodes: lines, scalar values, structural problems, syntax failures."""

from __future__ import annotations

import pytest

from meshward.config import document
from meshward.config.document import Entry, Mapping, Problem, Scalar, Sequence, SyntaxFailure


def test_every_key_and_item_knows_its_line() -> None:
    text = "# comment\na: 1\nb:\n  - x\n  - {c: true}\n"
    documents, failure = document.parse(text, "f.yaml")
    assert failure is None
    assert documents == (
        document.Document(
            file="f.yaml",
            index=0,
            root=Mapping(
                entries=(
                    Entry("a", 2, Scalar(1, "1", 2)),
                    Entry(
                        "b",
                        3,
                        Sequence(
                            (
                                Scalar("x", "x", 4),
                                Mapping((Entry("c", 5, Scalar(True, "true", 5)),), 5),
                            ),
                            4,
                        ),
                    ),
                ),
                line=2,
            ),
            problems=(),
        ),
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8080", 8080),
        ("'8080'", "8080"),
        ("1.5", 1.5),
        ("true", True),
        ("null", None),
        ("~", None),
        # Kubernetes reads YAML through JSON: no date type, so timestamps stay text.
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("!custom x", "x"),
    ],
)
def test_scalar_values(text: str, value: object) -> None:
    documents, _ = document.parse(f"v: {text}\n", "f")
    root = documents[0].root
    assert isinstance(root, Mapping)
    scalar = root.entries[0].value
    assert isinstance(scalar, Scalar)
    assert (type(scalar.value), scalar.value) == (type(value), value)


def test_documents_are_counted_and_empty_ones_skipped() -> None:
    documents, failure = document.parse("---\n---\na: 1\n---\n# nothing\n---\n- 2\n", "f")
    assert failure is None
    assert [(d.index, d.root.line) for d in documents] == [(1, 3), (3, 7)]


def test_duplicate_keys_are_problems_and_the_first_value_is_kept() -> None:
    documents, _ = document.parse("spec:\n  a: 1\n  b: 2\n  a: 3\n", "f")
    assert documents[0].problems == (Problem(4, "spec.a", "duplicate key 'a' (first at line 2)"),)
    root = documents[0].root
    assert isinstance(root, Mapping)
    spec = root.entries[0].value
    assert isinstance(spec, Mapping)
    assert spec.get("a") == Entry("a", 2, Scalar(1, "1", 2))


def test_merge_keys_give_way_to_explicit_keys() -> None:
    text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n"
    documents, _ = document.parse(text, "f")
    root = documents[0].root
    assert isinstance(root, Mapping)
    use = root.entries[1].value
    assert isinstance(use, Mapping)
    assert {e.key: getattr(e.value, "value", None) for e in use.entries} == {"x": 1, "y": 3}
    assert documents[0].problems == ()


def test_recursive_alias_is_a_problem_not_a_hang() -> None:
    documents, failure = document.parse("a: &x [*x]\n", "f")
    assert failure is None
    assert documents[0].problems == (Problem(1, "a[0]", "recursive YAML alias"),)


def test_complex_key_is_a_problem() -> None:
    documents, _ = document.parse("? [a]\n: 1\n", "f")
    assert documents[0].problems == (Problem(1, "", "mapping key is not a scalar"),)


def test_syntax_failure_keeps_earlier_documents() -> None:
    documents, failure = document.parse("a: 1\n---\nb: c: d\n---\ne: 1\n", "f")
    assert [d.index for d in documents] == [0]
    assert failure == SyntaxFailure(3, "mapping values are not allowed here")


def test_tab_indentation_is_a_syntax_failure() -> None:
    documents, failure = document.parse("a:\n\tb: 1\n", "f")
    assert documents == ()
    assert isinstance(failure, SyntaxFailure)
    assert failure.line == 2


def test_merge_list_earlier_sources_win() -> None:
    text = "a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc:\n  <<: [*a, *b]\n"
    documents, _ = document.parse(text, "f")
    root = documents[0].root
    assert isinstance(root, Mapping)
    merged = root.entries[2].value
    assert isinstance(merged, Mapping)
    assert {e.key: getattr(e.value, "value", None) for e in merged.entries} == {"x": 1, "y": 2}


def test_merge_of_a_scalar_is_a_problem() -> None:
    documents, _ = document.parse("c:\n  <<: 1\n", "f")
    assert documents[0].problems == (Problem(2, "c", "merge key `<<` needs a mapping"),)


def test_unprintable_character_is_a_syntax_failure_with_its_line() -> None:
    documents, failure = document.parse("a: 1\nb: \x1f\n", "f")
    assert (documents, failure) == ((), SyntaxFailure(2, "character U+001F is not allowed in YAML"))
