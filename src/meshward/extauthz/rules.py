"""The rule-file plugin: the first rule whose conditions all hold decides (else `default`).

Created by the CLI from a `config.extauthz_rules.RuleSet` (the file format is described
there). Values use Istio's string forms — exact, `x*` prefix, `*x` suffix, `*` present —
read by `model.authz.string_match`, so a rule reads like an AuthorizationPolicy: paths
against the path without its query, methods exactly, principals against the caller's mTLS
identity (no identity matches no principal), headers by lowercase name.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshward.config.extauthz_rules import RuleSet, RuleSpec
from meshward.extauthz.plugin import Decision, Facts
from meshward.model.authorization import StringMatch
from meshward.model.authz import string_match


class RulesPlugin:
    def __init__(self, rules: RuleSet) -> None:
        self._rules = rules

    @property
    def name(self) -> str:
        return "rules"

    def check(self, facts: Facts) -> Decision:
        rule = next((r for r in self._rules.rules if matches(r, facts)), self._rules.default)
        verdict = "allows" if rule.allow else "denies"
        return Decision(
            allow=rule.allow,
            status=rule.status,
            reason=f"rule {rule.name} {verdict}",
            headers_to_upstream=rule.headers_to_upstream if rule.allow else (),
            headers_to_downstream=rule.headers_to_downstream,
            body="" if rule.allow else rule.body,
        )


def matches(rule: RuleSpec, facts: Facts) -> bool:
    if rule.methods and facts.method not in rule.methods:
        return False
    if rule.paths and not _any(rule.paths, facts.bare_path):
        return False
    if rule.principals and not (facts.principal and _any(rule.principals, facts.principal)):
        return False
    for name, written in rule.headers:
        value = facts.header(name)
        if value is None or not _holds(string_match(written), value):
            return False
    return True


def _any(written: Iterable[str], value: str) -> bool:
    return any(_holds(string_match(w), value) for w in written)


def _holds(match: StringMatch, value: str) -> bool:
    if match.kind == "presence":
        return True
    if match.kind == "prefix":
        return value.startswith(match.value)
    if match.kind == "suffix":
        return value.endswith(match.value)
    return value == match.value
