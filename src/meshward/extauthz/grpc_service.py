"""The gRPC front end: envoy.service.auth.v3.Authorization/Check over a grpc server.

Started by `server.serve`. Translates Envoy's CheckRequest (attribute_context.proto) into
`Facts` — method, path, host and headers of the HTTP request, the caller's mTLS principal
from `source.principal` (Envoy fills it from the peer certificate's URI SAN) — asks the
plugin, records the decision and answers a CheckResponse: OK with headers to add upstream
(and `response_headers_to_add` for the client), or PERMISSION_DENIED (UNAUTHENTICATED for a
401) with a DeniedHttpResponse carrying the plugin's status, headers and body, which Envoy
sends to the client as is (ext_authz v3 reference).
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from meshward.extauthz.decision_log import DecisionLog
from meshward.extauthz.plugin import Decision, Facts, Pairs, Plugin, principal_of

_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def facts_of(request: external_auth_pb2.CheckRequest) -> Facts:
    attributes = request.attributes
    http = attributes.request.http
    headers = tuple(sorted((k.lower(), v) for k, v in http.headers.items()))
    return Facts(
        request_id=http.id or dict(headers).get("x-request-id", ""),
        method=http.method,
        path=http.path,
        host=http.host,
        headers=headers,
        principal=principal_of(attributes.source.principal),
        source_address=attributes.source.address.socket_address.address,
    )


def response_of(decision: Decision) -> external_auth_pb2.CheckResponse:
    if decision.allow:
        ok = external_auth_pb2.OkHttpResponse(
            headers=_options(decision.headers_to_upstream),
            response_headers_to_add=_options(decision.headers_to_downstream),
        )
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK), ok_response=ok
        )
    code = code_pb2.UNAUTHENTICATED if decision.status == 401 else code_pb2.PERMISSION_DENIED
    denied = external_auth_pb2.DeniedHttpResponse(
        status=http_status_pb2.HttpStatus(code=decision.status),
        headers=_options(decision.headers_to_downstream),
        body=decision.body,
    )
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code, message=decision.reason), denied_response=denied
    )


def _options(pairs: Pairs) -> list[base_pb2.HeaderValueOption]:
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=k, value=v), append_action=_OVERWRITE
        )
        for k, v in pairs
    ]


def decide(plugin: Plugin, log: DecisionLog, facts: Facts) -> Decision:
    """The plugin's decision, logged. A plugin that raises denies (fail closed) with 500."""
    try:
        decision = plugin.check(facts)
    except Exception as error:
        decision = Decision(False, 500, f"plugin error: {type(error).__name__}: {error}")
    log.record(plugin.name, facts, decision)
    return decision


class AuthorizationService(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, plugin: Plugin, log: DecisionLog) -> None:
        self._plugin = plugin
        self._log = log

    def Check(  # noqa: N802 - the gRPC method name
        self, request: external_auth_pb2.CheckRequest, context: Any
    ) -> external_auth_pb2.CheckResponse:
        del context
        return response_of(decide(self._plugin, self._log, facts_of(request)))
