"""credentials: the simple system's external authentication service.

`python -m meshward.samples.simple_system credentials --host H --port N` runs
`meshward extauthz` (gRPC ext_authz, rules plugin) with `RULES` below and the decision log on
stdout (`meshward logs credentials -n core`). examples/simple-system puts user-service's
`/users/*` behind it with a CUSTOM AuthorizationPolicy: a request needs the API key; without
it the caller gets this service's 401, its body and its `WWW-Authenticate` header.
"""

from __future__ import annotations

from meshward.config import extauthz_rules
from meshward.extauthz.decision_log import DecisionLog
from meshward.extauthz.rules import RulesPlugin
from meshward.extauthz.server import serve

API_KEY = "demo-user-key"
RULES = f"""\
default:
  allow: false
  status: 401
  body: "missing or unknown API key"
  headersToDownstream: {{www-authenticate: 'ApiKey realm="simple-system"'}}
rules:
- name: api-key
  headers: {{x-api-key: {API_KEY}}}
  allow: true
  headersToUpstream: {{x-authenticated-by: credentials}}
"""


def run(host: str, port: int) -> None:
    rules, diagnostics = extauthz_rules.load(RULES, "credentials.RULES")
    assert rules is not None, diagnostics  # a constant: tested
    running = serve(RulesPlugin(rules), DecisionLog.stdout(), (host, port))
    print(f"credentials: meshward extauthz (rules) on {host}:{port}", flush=True)
    try:
        running.wait()
    finally:
        running.stop()
