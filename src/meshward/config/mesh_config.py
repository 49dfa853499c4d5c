"""`meshward.io/v1alpha1` MeshConfig → `resources.MeshConfig`.

Called by `meshward.config.kind`. Mesh-wide settings, named after Istio's MeshConfig fields:
`trustDomain` (SPIFFE trust domain of every identity), `rootNamespace` (where mesh-wide
policies live), `workloadCertTTL` (Istio's `WORKLOAD_CERT_TTL`, a Go duration),
`extensionProviders` (external authorization providers, config/extension_provider.py),
`defaultConfig.gatewayTopology.numTrustedProxies` (X-Forwarded-For hops trusted at
gateways), `outboundTrafficPolicy.mode` (Istio: ALLOW_ANY, the default, passes traffic to
unknown destinations through; REGISTRY_ONLY blocks it — enforced in the netns network
mode); and meshward's own `jwksFetchBlockedCidrs` (addresses the control plane never
fetches JWKS from, checked after DNS resolution) and `jwksRefreshInterval`.
"""

from __future__ import annotations

import ipaddress

from meshward.config import duration, extension_provider, names
from meshward.config.fields import Fields
from meshward.config.resources import Labels, MeshConfig, Meta, OutboundPolicy
from meshward.identity import is_trust_domain

# A certificate that lives under a minute rotates faster than a proxy can pick it up; Istio
# caps workload certificates at 90 days (`MAX_WORKLOAD_CERT_TTL`).
MIN_CERT_TTL_SECONDS = 60
MAX_CERT_TTL_SECONDS = 90 * 24 * 3600

DEFAULTS = MeshConfig(meta=None)


def parse(spec: Fields, meta: Meta, labels: Labels) -> MeshConfig | None:
    """The MeshConfig, or None if any field was reported as an error."""
    del labels
    trust_domain = spec.string("trustDomain")
    if trust_domain is not None and not is_trust_domain(trust_domain):
        spec.disallow(
            "trustDomain", f"{trust_domain!r} is not a SPIFFE trust domain", code="MW0119"
        )
    root = spec.string("rootNamespace")
    if root is not None and not names.is_dns_label(root):
        spec.disallow("rootNamespace", f"{root!r} is not a DNS-1123 label", code="MW0111")
    ttl = _ttl(spec)
    providers = extension_provider.parse_all(spec)
    trusted = _trusted_proxies(spec)
    blocked = _blocked(spec)
    refresh = _refresh(spec)
    policy = _outbound_policy(spec)
    spec.finish()
    if spec.report.failed:
        return None
    return MeshConfig(
        meta=meta,
        trust_domain=trust_domain or DEFAULTS.trust_domain,
        root_namespace=root or DEFAULTS.root_namespace,
        cert_ttl_seconds=DEFAULTS.cert_ttl_seconds if ttl is None else ttl,
        extension_providers=providers,
        num_trusted_proxies=trusted or 0,
        jwks_blocked_cidrs=DEFAULTS.jwks_blocked_cidrs if blocked is None else blocked,
        jwks_refresh_seconds=DEFAULTS.jwks_refresh_seconds if refresh is None else refresh,
        outbound_traffic_policy=policy or DEFAULTS.outbound_traffic_policy,
    )


def _blocked(spec: Fields) -> tuple[str, ...] | None:
    """`jwksFetchBlockedCidrs`: where the control plane must never fetch keys from (an
    attacker-written jwksUri aimed at a cloud metadata service, RFC 3927 link-local)."""
    values = spec.strings("jwksFetchBlockedCidrs")
    if values is None:
        return None
    blocks = []
    for value in values:
        try:
            blocks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            spec.disallow("jwksFetchBlockedCidrs", f"{value!r} is not a CIDR block", code="MW0165")
    return tuple(blocks)


def _refresh(spec: Fields) -> int | None:
    """`jwksRefreshInterval`: Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL (default 20m)."""
    text = spec.string("jwksRefreshInterval")
    if text is None:
        return None
    seconds = duration.parse_duration(text)
    if seconds is None:
        spec.disallow("jwksRefreshInterval", f"{text!r} is not a duration like 20m", code="MW0114")
        return None
    if not 10 <= seconds <= 24 * 3600:
        spec.disallow("jwksRefreshInterval", f"{text} is outside 10s..24h", code="MW0166")
        return None
    return int(seconds)


def _trusted_proxies(spec: Fields) -> int | None:
    """`defaultConfig.gatewayTopology.numTrustedProxies` (Istio ProxyConfig.GatewayTopology):
    how many proxies in front of the gateways append to X-Forwarded-For."""
    config = spec.mapping("defaultConfig")
    if config is None:
        return None
    topology = config.mapping("gatewayTopology")
    config.finish()
    if topology is None:
        return None
    count = topology.integer("numTrustedProxies")
    if count is not None and not 0 <= count <= 32:
        topology.disallow("numTrustedProxies", f"{count} is outside 0-32", code="MW0188")
        count = None
    topology.finish()
    return count


def _outbound_policy(spec: Fields) -> OutboundPolicy | None:
    item = spec.mapping("outboundTrafficPolicy")
    if item is None:
        return None
    mode = item.string("mode")
    item.finish()
    if mode is None:
        return None
    if mode not in ("ALLOW_ANY", "REGISTRY_ONLY"):
        item.disallow(
            "mode",
            f"outboundTrafficPolicy.mode {mode!r} is not ALLOW_ANY or REGISTRY_ONLY",
            code="MW0150",
        )
        return None
    return "ALLOW_ANY" if mode == "ALLOW_ANY" else "REGISTRY_ONLY"


def _ttl(spec: Fields) -> int | None:
    text = spec.string("workloadCertTTL")
    if text is None:
        return None
    seconds = duration.parse_duration(text)
    if seconds is None:
        spec.disallow(
            "workloadCertTTL", f"{text!r} is not a duration like 24h or 1h30m", code="MW0114"
        )
        return None
    if not MIN_CERT_TTL_SECONDS <= seconds <= MAX_CERT_TTL_SECONDS:
        spec.disallow("workloadCertTTL", f"{text} is outside 60s..2160h (90 days)", code="MW0123")
        return None
    return int(seconds)  # whole seconds: X.509 validity has one-second resolution
