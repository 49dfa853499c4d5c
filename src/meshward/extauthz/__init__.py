"""`meshward extauthz`: an external authorization server for CUSTOM AuthorizationPolicies.

Envoy's ext_authz filter asks it, over gRPC (envoy.service.auth.v3.Authorization/Check,
`grpc_service.py`) or plain HTTP (`http_service.py`), whether a request may proceed. The
answer comes from one plugin (`plugin.Plugin`): the rule file (`rules.py`) or OAuth 2.0
token introspection, RFC 7662 (`introspection.py`). Every decision is appended to the
decision log (`decision_log.py`). Started by the CLI (cli/extauthz.py).
"""
