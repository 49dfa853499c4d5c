"""The rule file of `meshward extauthz --plugin rules` (YAML or JSON) → `RuleSet`.

Called by the CLI (cli/extauthz.py) before the server starts; the rules plugin
(meshward/extauthz/rules.py) evaluates the result. Problems are coded diagnostics with
file:line (MW0197, plus the shared field codes MW0106-MW0109), and a file with any error
starts no server. The format (one mapping):

    default: {allow: false, status: 403, body: "denied"}   # optional; this is the default
    rules:                      # first match decides
    - name: admin-needs-key
      paths: ["/admin*"]        # Istio string forms: exact, `x*`, `*x`, `*`
      methods: ["GET"]
      principals: ["cluster.local/ns/web/sa/frontend"]   # caller's mTLS identity, no scheme
      headers: {x-api-key: "*"} # every named header must match its form
      allow: false
      status: 403               # deny status (allow answers 200)
      body: "admin needs a key"
      headersToDownstream: {x-denied-by: extauthz-rules}  # sent to the client on deny
      headersToUpstream: {x-checked-by: extauthz-rules}   # added to the request on allow

Within a rule every given field must match (AND), within a field any value (OR).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshward.config import document
from meshward.config.fields import Fields, open_mapping
from meshward.config.report import Report
from meshward.diagnostics import Diagnostic

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule; an empty match field matches anything."""

    name: str
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    headers: Pairs = ()
    allow: bool = False
    status: int = 403
    body: str = ""
    headers_to_downstream: Pairs = ()
    headers_to_upstream: Pairs = ()


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[RuleSpec, ...]
    default: RuleSpec


DEFAULT = RuleSpec(name="default", allow=False, status=403, body="denied by extauthz rules")


def load(text: str, file: str) -> tuple[RuleSet | None, tuple[Diagnostic, ...]]:
    """The rule set, or None with the diagnostics that refused it."""
    report = Report(file)
    documents, failure = document.parse(text, file)
    if failure is not None:
        report.add("MW0101", failure.line, "", failure.message)
        return None, tuple(report.diagnostics)
    if len(documents) != 1:
        report.add("MW0197", 1, "", "a rule file holds exactly one YAML or JSON document")
        return None, tuple(report.diagnostics)
    root = open_mapping(documents[0].root, "", report)
    if root is None:
        return None, tuple(report.diagnostics)
    default_fields = root.mapping("default")
    default = _rule(default_fields, "default", default=True) if default_fields else DEFAULT
    rules = tuple(
        _rule(item, item.path, default=False) for item in root.items("rules", required=True) or ()
    )
    root.finish()
    if report.failed:
        return None, tuple(report.diagnostics)
    return RuleSet(rules, default), tuple(report.diagnostics)


def _rule(fields: Fields, label: str, *, default: bool) -> RuleSpec:
    name = "default" if default else fields.string("name") or label
    match: dict[str, tuple[str, ...]] = {}
    if not default:
        for key in ("paths", "methods", "principals"):
            values = fields.strings(key) or ()
            if "" in values:
                fields.disallow(key, f"{key} holds an empty string", code="MW0197")
            match[key] = values
    headers = () if default else tuple(sorted((fields.string_map("headers") or {}).items()))
    allow = fields.boolean("allow")
    if allow is None and not default:
        fields.take("allow", required=True)
    status = fields.integer("status")
    if status is not None and not 200 <= status <= 599:
        fields.disallow("status", f"status {status} is not an HTTP status 200-599", code="MW0197")
    if allow and status is not None and status != 200:
        fields.disallow("status", "an allowing rule answers 200; status is for denials", "MW0197")
    spec = RuleSpec(
        name=name,
        paths=match.get("paths", ()),
        methods=match.get("methods", ()),
        principals=match.get("principals", ()),
        headers=tuple((k.lower(), v) for k, v in headers),
        allow=bool(allow),
        status=200 if allow else (status or 403),
        body=fields.string("body") or "",
        headers_to_downstream=_pairs(fields, "headersToDownstream"),
        headers_to_upstream=_pairs(fields, "headersToUpstream"),
    )
    fields.finish()
    return spec


def _pairs(fields: Fields, key: str) -> Pairs:
    return tuple(sorted((k.lower(), v) for k, v in (fields.string_map(key) or {}).items()))
