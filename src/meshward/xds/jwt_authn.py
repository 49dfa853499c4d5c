"""RequestAuthentication rules of one sidecar as Envoy's `envoy.filters.http.jwt_authn`.

Called by listener.py for every inbound HTTP connection manager (before the RBAC filters,
so RBAC can read the validated payload), for outbound HCMs whose `mesh` VirtualService routes
on claims (`outbound_filter`, non-rejecting), and by the JWT tests that run it in Envoy.
Input is the merged `JwtRule`s of model/request_authn.py; this module only maps them,
following Istio's translation (pilot/pkg/security/authn policy_applier.go
convertToEnvoyJwtConfig):

- one provider per rule, named `origins-<i>`, with the rule's issuer, audiences and token
  locations (none given: Envoy's defaults, `Authorization: Bearer` and `?access_token=`,
  which are Istio's too); `forward` is forwardOriginalToken, `forward_payload_header`
  outputPayloadToHeader, `claim_to_headers` outputClaimToHeaders;
- one requirement for every path: `requires_any [origins-0, ..., allow_missing]` — a
  request without a token passes with no identity, a token that is present must satisfy one
  provider or the request gets 401 (Istio's "present token must be valid");
- every provider writes the verified payload to dynamic metadata
  `envoy.filters.http.jwt_authn` / `payload` (`payload_in_metadata`), where xds/rbac.py's
  requestPrincipals and request.auth.* matchers read it; `scope` and `permission` claims
  are split at spaces into lists there (`normalize_payload_in_metadata`, as Istio does), so
  `request.auth.claims[scope]` matches one scope;
- keys are always inline (`local_jwks`): the control plane fetched them (jwks/), so Envoy
  never fetches by itself and a failed fetch never empties a key set that worked.

A rule whose keys were never fetched (`jwks == ""`) fails closed without a made-up key set
(Envoy refuses an empty one): it gets no provider, so a token for its issuer in a location
that another provider reads is refused as an unknown issuer (401); in a location that only
unfetched rules read, an RBAC DENY engine (`meshward_jwt_nokeys_`) refuses any token there,
and the local reply turns that into 401 too. `meshward status` says which source has no keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import metadata_pb2, regex_pb2, string_pb2, value_pb2
from google.protobuf import any_pb2, empty_pb2, wrappers_pb2

from meshward.config import networking
from meshward.model import ir
from meshward.model.request_authn import SPACE_DELIMITED_CLAIMS, JwtRule
from meshward.xds import core, rbac

JWT_FILTER = rbac.JWT_FILTER
PAYLOAD_KEY = rbac.JWT_PAYLOAD
NO_KEYS_POLICY = "jwt-no-keys"
NO_KEYS_STAT_PREFIX = "meshward_jwt_nokeys_"
FAILED_STATUS_KEY = "failed_status"
# Envoy's response-code details when a token's kid (or alg) is not in the key set: the IdP
# rotated and the control plane has not fetched the new key yet (server/jwks_watch.py).
UNKNOWN_KID_DETAIL = "Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt"
AUDIENCE_FAILURE = "Audiences in Jwt are not allowed"  # jwt_verify_lib getStatusString


def provider_name(index: int) -> str:
    return f"origins-{index}"


def provider(rule: JwtRule, *, clear_route_cache: bool = False) -> jwt_pb2.JwtProvider:
    """One rule as a provider (keys inline; see the module docstring). `clear_route_cache`:
    routes match on claims (a gateway's VirtualService `@request.auth.claims.*`), so the
    route is chosen again once the payload is in the metadata (Istio sets it likewise)."""
    result = jwt_pb2.JwtProvider(
        issuer=rule.issuer,
        audiences=list(rule.audiences),
        local_jwks=base_pb2.DataSource(inline_string=rule.jwks),
        forward=rule.forward_original_token,
        from_params=list(rule.from_params),
        from_cookies=list(rule.from_cookies),
        forward_payload_header=rule.output_payload_to_header,
        payload_in_metadata=PAYLOAD_KEY,
        failed_status_in_metadata=FAILED_STATUS_KEY,
        clear_route_cache=clear_route_cache,
    )
    for name, prefix in rule.from_headers:
        result.from_headers.add(name=name, value_prefix=prefix)
    for header, claim in rule.output_claim_to_headers:
        result.claim_to_headers.add(header_name=header, claim_name=claim)
    result.normalize_payload_in_metadata.space_delimited_claims.extend(SPACE_DELIMITED_CLAIMS)
    return result


def authentication(
    rules: Sequence[JwtRule], *, clear_route_cache: bool = False
) -> jwt_pb2.JwtAuthentication:
    """The whole filter config: providers and the one requires_any requirement."""
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    anyone = jwt_pb2.JwtRequirementOrList()
    for index, rule in enumerate(rules):
        config.providers[provider_name(index)].CopyFrom(
            provider(rule, clear_route_cache=clear_route_cache)
        )
        anyone.requirements.add(provider_name=provider_name(index))
    anyone.requirements.add(allow_missing=empty_pb2.Empty())
    config.rules.add(
        match=route_components_pb2.RouteMatch(prefix="/"),
        requires=jwt_pb2.JwtRequirement(requires_any=anyone),
    )
    return config


def http_filters(
    rules: Sequence[JwtRule], *, clear_route_cache: bool = False
) -> list[hcm_pb2.HttpFilter]:
    """The jwt_authn filter (rules with keys) and the no-keys backstop, or nothing when no
    RequestAuthentication selects the pod."""
    if not rules:
        return []
    keyed = [r for r in rules if r.jwks]
    # requires_any needs two entries: with no rule keyed yet there is no jwt_authn filter
    # (no identity can come from anywhere) and only the backstop below.
    filters = (
        [
            hcm_pb2.HttpFilter(
                name=JWT_FILTER,
                typed_config=core.pack(authentication(keyed, clear_route_cache=clear_route_cache)),
            )
        ]
        if keyed
        else []
    )
    unread = unread_locations(rules)
    if unread:
        filters.append(_no_keys_filter(unread))
    return filters


def outbound_filter(services: Sequence[ir.OutboundService]) -> list[hcm_pb2.HttpFilter]:
    """jwt_authn for a caller's outbound HCM when a `mesh` VirtualService routes on claims
    (`route_jwt_rules` set by the model), or nothing.

    Non-rejecting (`allow_missing_or_failed`): the caller's sidecar only learns the claims to
    route on; a missing or invalid token matches no claim route (the destination's inbound
    sidecar still answers 401 to an invalid one). Each service's requirement names only the
    providers of the RequestAuthentications selecting its workloads, chosen per virtual host
    (`outbound_per_route`); the route is chosen again once the payload is in the metadata.
    Rules whose keys were never fetched get no provider, so their claims never match."""
    providers: dict[JwtRule, str] = {}
    requirements: dict[str, jwt_pb2.JwtRequirement] = {}
    for service in services:
        keyed = [r for r in service.route_jwt_rules if r.jwks]
        if not service.route_jwt_rules:
            continue
        for rule in keyed:
            providers.setdefault(rule, provider_name(len(providers)))
        tolerant = jwt_pb2.JwtRequirement(allow_missing_or_failed=empty_pb2.Empty())
        if keyed:
            anyone = jwt_pb2.JwtRequirementOrList()
            for rule in keyed:
                anyone.requirements.add(provider_name=providers[rule])
            anyone.requirements.append(tolerant)
            requirements[service.cluster_name] = jwt_pb2.JwtRequirement(requires_any=anyone)
        else:
            requirements[service.cluster_name] = tolerant
    if not requirements:
        return []
    config = jwt_pb2.JwtAuthentication(bypass_cors_preflight=True)
    for rule, name in providers.items():
        made = config.providers[name]
        made.CopyFrom(provider(rule, clear_route_cache=True))
        # The token goes on to the destination, whose own sidecar validates it and sets the
        # identity (Envoy strips a verified token unless `forward`); the outputs of the rule
        # (payload and claim headers) are the destination's to write, not the caller's.
        made.forward = True
        made.ClearField("forward_payload_header")
        del made.claim_to_headers[:]
    for name, requirement in requirements.items():
        config.requirement_map[name].CopyFrom(requirement)
    return [hcm_pb2.HttpFilter(name=JWT_FILTER, typed_config=core.pack(config))]


def outbound_per_route(service: ir.OutboundService) -> any_pb2.Any:
    """The per-virtual-host choice of `service`'s requirement in `outbound_filter`."""
    return core.pack(jwt_pb2.PerRouteConfig(requirement_name=service.cluster_name))


def unread_locations(rules: Sequence[JwtRule]) -> list[Location]:
    """Token locations of rules without keys that no rule with keys reads."""
    read = {location for rule in rules if rule.jwks for location in locations(rule)}
    return sorted(
        {location for rule in rules if not rule.jwks for location in locations(rule)} - read
    )


Location = tuple[str, str, str]  # ("header", name, prefix) | ("param", name, "") | ("cookie", ...)


def locations(rule: JwtRule) -> list[Location]:
    """Where a rule reads tokens; none written means Envoy's (and Istio's) defaults."""
    found: list[Location] = [("header", n.lower(), p) for n, p in rule.from_headers]
    found += [("param", n, "") for n in rule.from_params]
    found += [("cookie", n, "") for n in rule.from_cookies]
    return found or [("header", "authorization", "Bearer "), ("param", "access_token", "")]


def _location_matcher(location: Location) -> route_components_pb2.HeaderMatcher:
    kind, name, prefix = location
    if kind == "header":
        if prefix:
            return route_components_pb2.HeaderMatcher(
                name=name, string_match=string_pb2.StringMatcher(prefix=prefix)
            )
        return route_components_pb2.HeaderMatcher(name=name, present_match=True)
    if kind == "param":
        pattern = rf".*[?&]{re.escape(name)}=.*"
        header = ":path"
    else:
        pattern = rf"(.*;\s*)?{re.escape(name)}=.*"
        header = "cookie"
    return route_components_pb2.HeaderMatcher(
        name=header,
        string_match=string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern)),
    )


def _no_keys_filter(unread: Sequence[Location]) -> hcm_pb2.HttpFilter:
    any_token = rbac_pb2.Permission(
        or_rules=rbac_pb2.Permission.Set(
            rules=[rbac_pb2.Permission(header=_location_matcher(loc)) for loc in unread]
        )
    )
    policy = rbac_pb2.Policy(permissions=[any_token], principals=[rbac_pb2.Principal(any=True)])
    config = http_rbac_pb2.RBAC(
        rules=rbac_pb2.RBAC(action=rbac_pb2.RBAC.DENY, policies={NO_KEYS_POLICY: policy}),
        rules_stat_prefix=NO_KEYS_STAT_PREFIX,
    )
    return hcm_pb2.HttpFilter(name=rbac.HTTP_RBAC, typed_config=core.pack(config))


def local_reply(rules: Sequence[JwtRule]) -> hcm_pb2.LocalReplyConfig:
    """Envoy answers a token with none of the rule's audiences 403; every other invalid
    token gets 401. A token for the wrong audience is an invalid token, not a lack of
    permission (RFC 6750 §3.1 `invalid_token` → 401; Istio documents "a request with an
    invalid token is rejected with 401"), so a jwt_authn rejection is always 401: a 403 local
    reply with a jwt_authn failure status in the metadata becomes 401. RBAC's own 403 carries
    no such status and stays 403."""
    failed = accesslog_pb2.AccessLogFilter(
        metadata_filter=accesslog_pb2.MetadataFilter(
            matcher=metadata_pb2.MetadataMatcher(
                filter=JWT_FILTER,
                path=[
                    metadata_pb2.MetadataMatcher.PathSegment(key=FAILED_STATUS_KEY),
                    metadata_pb2.MetadataMatcher.PathSegment(key="message"),
                ],
                value=value_pb2.ValueMatcher(
                    string_match=string_pb2.StringMatcher(exact=AUDIENCE_FAILURE)
                ),
            ),
            match_if_key_not_found=wrappers_pb2.BoolValue(value=False),
        )
    )
    forbidden = accesslog_pb2.AccessLogFilter(
        status_code_filter=accesslog_pb2.StatusCodeFilter(
            comparison=accesslog_pb2.ComparisonFilter(
                op=accesslog_pb2.ComparisonFilter.EQ,
                value=base_pb2.RuntimeUInt32(default_value=403, runtime_key="meshward.jwt_403"),
            )
        )
    )
    # The backstop's denials: a 403 for a request carrying a token where only unfetched
    # rules look (the RBAC filter's own metadata is not yet set when its local reply is
    # mapped, so the same header matchers select it here).
    no_keys = [
        accesslog_pb2.AccessLogFilter(
            header_filter=accesslog_pb2.HeaderFilter(header=_location_matcher(location))
        )
        for location in unread_locations(rules)
    ]
    either = (
        accesslog_pb2.AccessLogFilter(or_filter=accesslog_pb2.OrFilter(filters=[failed, *no_keys]))
        if no_keys
        else failed
    )
    mapper = hcm_pb2.ResponseMapper(
        filter=accesslog_pb2.AccessLogFilter(
            and_filter=accesslog_pb2.AndFilter(filters=[forbidden, either])
        ),
        status_code=wrappers_pb2.UInt32Value(value=401),
    )
    return hcm_pb2.LocalReplyConfig(mappers=[mapper])


CLAIM_HEADER_PREFIX = networking.CLAIM_HEADER_PREFIX


def claim_matcher(
    name: str, value: string_pb2.StringMatcher, *, invert: bool = False
) -> metadata_pb2.MetadataMatcher:
    """A VirtualService `headers: {"@request.auth.claims.<a>.<b>": ...}` match as a route's
    dynamic-metadata matcher on the verified payload (Istio's claim-based routing; nested
    claims separated by `.`): the claim is the string, or a list holding it."""
    path = [
        metadata_pb2.MetadataMatcher.PathSegment(key=k) for k in (PAYLOAD_KEY, *name.split("."))
    ]
    string = value_pb2.ValueMatcher(string_match=value)
    either = value_pb2.ValueMatcher(
        or_match=value_pb2.OrMatcher(
            value_matchers=[
                value_pb2.ValueMatcher(list_match=value_pb2.ListMatcher(one_of=string)),
                string,
            ]
        )
    )
    return metadata_pb2.MetadataMatcher(filter=JWT_FILTER, path=path, value=either, invert=invert)
