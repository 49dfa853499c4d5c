"""`networking.istio.io/v1` (and v1beta1, v1alpha3) DestinationRule →
`resources.DestinationRule`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/networking/destination-rule/). This release uses the
client-TLS part: `trafficPolicy.tls.mode` and `trafficPolicy.portLevelSettings[].tls.mode`,
plus `host`, `workloadSelector` and `exportTo`.

What is not implemented is never silently ignored, and how loud depends on what ignoring
it would do:
  * TLS modes SIMPLE and MUTUAL and the certificate/SAN settings are security settings:
    ignoring them would send traffic with weaker checks than the user asked for, so they are
    errors (MW0125) and the rule is left out.
  * Traffic-shaping settings (load balancing, connection pools, outlier detection, subsets)
    change no security property: accepted with a warning that they are not enforced (MW0126).
"""

from __future__ import annotations

from meshward.config import selector as workload_selector
from meshward.config.fields import Fields, UniqueValues
from meshward.config.resources import ClientTlsMode, DestinationRule, Labels, Meta

# Istio ClientTLSSettings.TLSmode, in the API's order; DISABLE is the proto default.
TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
SUPPORTED_TLS_MODES: tuple[ClientTlsMode, ...] = ("DISABLE", "ISTIO_MUTUAL")
# ClientTLSSettings fields that change who is trusted or which key is presented.
_TLS_SECURITY_FIELDS = (
    "clientCertificate",
    "privateKey",
    "caCertificates",
    "caCrl",
    "credentialName",
    "subjectAltNames",
    "insecureSkipVerify",
)
# TrafficPolicy / PortTrafficPolicy fields that shape traffic but carry no security meaning.
_SHAPING_FIELDS = ("loadBalancer", "connectionPool", "outlierDetection")
_POLICY_ONLY_FIELDS = ("tunnel", "proxyProtocol", "retryBudget")


def parse(spec: Fields, meta: Meta, labels: Labels) -> DestinationRule | None:
    """The DestinationRule, or None if any field was reported as an error."""
    del labels
    host = spec.string("host", required=True)
    policy = spec.mapping("trafficPolicy")
    tls_mode: ClientTlsMode | None = None
    port_level: tuple[tuple[int, ClientTlsMode], ...] = ()
    if policy is not None:
        tls_mode = _tls(policy)
        port_level = _port_level(policy)
        _not_enforced(policy, _SHAPING_FIELDS + _POLICY_ONLY_FIELDS)
        policy.finish()
    _not_enforced(spec, ("subsets",))
    selector = workload_selector.parse(spec, "workloadSelector")
    spec.strings("exportTo")  # visibility across namespaces: one machine sees everything
    spec.finish()
    if spec.report.failed or host is None:
        return None
    return DestinationRule(meta, host, tls_mode, port_level, selector)


def _tls(policy: Fields) -> ClientTlsMode | None:
    """None when `tls` is absent; a `tls` without `mode` is DISABLE (the proto default)."""
    tls = policy.mapping("tls")
    if tls is None:
        return None
    mode = tls.choice("mode", TLS_MODES)
    if mode is not None and mode not in SUPPORTED_TLS_MODES:
        tls.disallow(
            "mode",
            f"TLS mode {mode} is not supported yet (supported: "
            f"{', '.join(SUPPORTED_TLS_MODES)}); refusing rather than sending weaker TLS",
            code="MW0125",
        )
    for key in _TLS_SECURITY_FIELDS:
        if tls.take(key) is not None:
            tls.disallow(key, f"tls.{key} is not supported yet", code="MW0125")
    if tls.take("sni") is not None:
        tls.disallow("sni", "tls.sni is not enforced yet; ignored", code="MW0126")
    tls.finish()
    return mode if mode in SUPPORTED_TLS_MODES else "DISABLE"


def _port_level(policy: Fields) -> tuple[tuple[int, ClientTlsMode], ...]:
    numbers = UniqueValues()
    levels: list[tuple[int, ClientTlsMode]] = []
    for item in policy.items("portLevelSettings") or ():
        selector = item.mapping("port", required=True)
        number = None
        if selector is not None:
            number = selector.port("number", required=True)
            selector.finish()
        numbers.check(item, "port", number)
        mode = _tls(item)
        _not_enforced(item, _SHAPING_FIELDS)
        item.finish()
        if number is not None and mode is not None:
            levels.append((number, mode))
    return tuple(sorted(levels))


def _not_enforced(fields: Fields, keys: tuple[str, ...]) -> None:
    for key in keys:
        if fields.take(key) is not None:
            fields.disallow(key, f"{key} is not enforced yet; accepted and ignored", "MW0126")
