"""The ext_authz filter of an inbound port whose CUSTOM policies consult a provider: the HTTP
filter (gRPC or HTTP provider) or, on a TCP port, the network filter (gRPC provider only).

Called by rbac.py (`http_filters`, `network_filters`), which puts it right after the CUSTOM
shadow engine.
Istio's scheme (pilot authz builder, `extauthz.go`), which meshward follows: the CUSTOM
rules go into an RBAC filter in *shadow* mode with its own `shadow_rules_stat_prefix`
(`SHADOW_STAT_PREFIX`); when a rule matches, that filter writes the rule's name as dynamic
metadata `envoy.filters.{http,network}.rbac/<prefix>shadow_effective_policy_id`. The
ext_authz filter runs only when that key holds a rule name (`filter_enabled_metadata`), so
only the requests the CUSTOM rules match reach the provider; every other request skips it.

Envoy semantics (ext_authz v3 reference, Envoy 1.40): a provider's denial reaches the
client with its status, body and (filtered) headers; when the provider cannot be reached
or times out, the request is denied with `status_on_error` (Istio's default 403) unless
`failure_mode_allow` (Istio's `failOpen`) is set.
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2, http_uri_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as network_ext_authz_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import duration_pb2

from meshward.model import authorization
from meshward.xds import core

FILTER_NAME = "meshward.authz.ext_authz"
SHADOW_STAT_PREFIX = "meshward_ext_authz_"
RBAC_METADATA = "envoy.filters.http.rbac"
NETWORK_RBAC_METADATA = "envoy.filters.network.rbac"
# Every rule name is `ns[<ns>]-policy[<name>]-rule[<i>]` (authorization.AuthzPolicy.rule_id).
_RULE_NAME_PREFIX = "ns["


def enabled_metadata_key() -> str:
    """The dynamic-metadata key the CUSTOM shadow engine writes when one of its rules
    matches (Envoy RBAC: `<shadow_rules_stat_prefix>shadow_effective_policy_id`)."""
    return f"{SHADOW_STAT_PREFIX}shadow_effective_policy_id"


def http_filter(provider: authorization.ExtAuthz) -> hcm_pb2.HttpFilter:
    """The ext_authz filter for `provider`, enabled only for requests a CUSTOM rule matched."""
    config = ext_authz_pb2.ExtAuthz(
        transport_api_version=config_source_pb2.V3,
        failure_mode_allow=provider.fail_open,
        status_on_error=http_status_pb2.HttpStatus(code=provider.status_on_error),
        clear_route_cache=provider.clear_route_cache,
    )
    config.filter_enabled_metadata.CopyFrom(_enabled(RBAC_METADATA))
    timeout = _timeout(provider)
    if provider.max_request_bytes:
        config.with_request_body.max_request_bytes = provider.max_request_bytes
        config.with_request_body.allow_partial_message = provider.allow_partial_message
        config.with_request_body.pack_as_bytes = provider.pack_as_bytes
    if provider.kind == "grpc":
        config.grpc_service.CopyFrom(_grpc_service(provider))
    else:
        _http_service(config, provider, timeout)
    return hcm_pb2.HttpFilter(name=FILTER_NAME, typed_config=core.pack(config))


def network_filter(
    provider: authorization.ExtAuthz, *, stat_prefix: str
) -> listener_components_pb2.Filter:
    """The network ext_authz filter for a gRPC `provider` on a TCP port: asked once per
    connection, on its first bytes, if the CUSTOM shadow engine (network RBAC, just before
    it) matched the connection; a denial closes the connection. Istio builds the same
    (a TCP port cannot consult an HTTP provider: model/ fails those closed)."""
    config = network_ext_authz_pb2.ExtAuthz(
        stat_prefix=f"{stat_prefix}.{SHADOW_STAT_PREFIX}",
        grpc_service=_grpc_service(provider),
        failure_mode_allow=provider.fail_open,
        transport_api_version=config_source_pb2.V3,
    )
    config.filter_enabled_metadata.CopyFrom(_enabled(NETWORK_RBAC_METADATA))
    return listener_components_pb2.Filter(name=FILTER_NAME, typed_config=core.pack(config))


def _enabled(rbac_filter: str) -> metadata_pb2.MetadataMatcher:
    return metadata_pb2.MetadataMatcher(
        filter=rbac_filter,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=enabled_metadata_key())],
        value=value_pb2.ValueMatcher(
            string_match=string_pb2.StringMatcher(prefix=_RULE_NAME_PREFIX)
        ),
    )


def _timeout(provider: authorization.ExtAuthz) -> duration_pb2.Duration:
    timeout = duration_pb2.Duration()
    timeout.FromMilliseconds(provider.timeout_ms)
    return timeout


def _grpc_service(provider: authorization.ExtAuthz) -> grpc_service_pb2.GrpcService:
    return grpc_service_pb2.GrpcService(
        envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
            cluster_name=provider.cluster, authority=provider.authority
        ),
        timeout=_timeout(provider),
    )


def _http_service(
    config: ext_authz_pb2.ExtAuthz,
    provider: authorization.ExtAuthz,
    timeout: duration_pb2.Duration,
) -> None:
    """Istio's envoyExtAuthzHttp mapping: includeRequestHeadersInCheck → allowed_headers,
    includeAdditionalHeadersInCheck → headers_to_add, headersToUpstreamOnAllow →
    allowed_upstream_headers, headersToDownstreamOnDeny → allowed_client_headers,
    headersToDownstreamOnAllow → allowed_client_headers_on_success."""
    service = config.http_service
    service.server_uri.CopyFrom(
        http_uri_pb2.HttpUri(
            uri=f"http://{provider.authority}", cluster=provider.cluster, timeout=timeout
        )
    )
    service.path_prefix = provider.path_prefix
    if provider.include_request_headers:
        config.allowed_headers.CopyFrom(_list(provider.include_request_headers))
    for name, value in provider.include_additional_headers:
        service.authorization_request.headers_to_add.append(
            base_pb2.HeaderValue(key=name, value=value)
        )
    response = service.authorization_response
    if provider.headers_to_upstream_on_allow:
        response.allowed_upstream_headers.CopyFrom(_list(provider.headers_to_upstream_on_allow))
    if provider.headers_to_downstream_on_deny:
        response.allowed_client_headers.CopyFrom(_list(provider.headers_to_downstream_on_deny))
    if provider.headers_to_downstream_on_allow:
        response.allowed_client_headers_on_success.CopyFrom(
            _list(provider.headers_to_downstream_on_allow)
        )


def _list(matches: Iterable[authorization.StringMatch]) -> string_pb2.ListStringMatcher:
    """Header names compare case-insensitively (RFC 9110 §5.1)."""
    patterns = []
    for match in matches:
        if match.kind == "prefix":
            patterns.append(string_pb2.StringMatcher(prefix=match.value, ignore_case=True))
        elif match.kind == "suffix":
            patterns.append(string_pb2.StringMatcher(suffix=match.value, ignore_case=True))
        else:
            patterns.append(string_pb2.StringMatcher(exact=match.value, ignore_case=True))
    return string_pb2.ListStringMatcher(patterns=patterns)
