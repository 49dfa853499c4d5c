"""`networking.istio.io/v1` (and v1beta1, v1alpha3) DestinationRule →
`resources.DestinationRule`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/networking/destination-rule/). This release uses the
client-TLS part: `trafficPolicy.tls` and `trafficPolicy.portLevelSettings[].tls` (every mode,
and for SIMPLE/MUTUAL origination every ClientTLSSettings field), plus `host`,
`workloadSelector` and `exportTo`.

Safety (issue 7 item 9): a rule that originates TLS (SIMPLE/MUTUAL) must verify the server —
`caCertificates` or a `credentialName` whose CA is used — or say `insecureSkipVerify: true`
explicitly: unverified origination is an error (MW0128), the explicit opt-out a warning
(MW0129). MUTUAL needs a client key pair: `credentialName`, or `clientCertificate` with
`privateKey` (MW0198). Whether a `credentialName` exists in the secret store is checked at
`apply`/`up` (runner, MW0470): the config alone cannot know.

What is not implemented is never silently ignored, and how loud depends on what ignoring
it would do:
  * Certificate/SAN settings on DISABLE or ISTIO_MUTUAL would be ignored by Istio's own
    semantics (they belong to SIMPLE/MUTUAL): an error (MW0125), so nobody believes a SAN
    check is in force when it is not.
  * Traffic-shaping settings (load balancing, connection pools, outlier detection, subsets)
    change no security property: accepted with a warning that they are not enforced (MW0126).
"""

from __future__ import annotations

from meshward.config import selector as workload_selector
from meshward.config.fields import Fields, UniqueValues
from meshward.config.resources import ClientTls, ClientTlsMode, DestinationRule, Labels, Meta

# Istio ClientTLSSettings.TLSmode, in the API's order; DISABLE is the proto default.
TLS_MODES: tuple[ClientTlsMode, ...] = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
ORIGINATING_MODES: tuple[ClientTlsMode, ...] = ("SIMPLE", "MUTUAL")
# ClientTLSSettings fields that only mean something when the sidecar originates TLS.
_TLS_SECURITY_FIELDS = (
    "clientCertificate",
    "privateKey",
    "caCertificates",
    "caCrl",
    "credentialName",
    "subjectAltNames",
    "insecureSkipVerify",
)
# Where a ClientTLSSettings field means something, for MW0125's message.
_MODES_OF = {"sni": "SIMPLE, MUTUAL and ISTIO_MUTUAL"}
# TrafficPolicy / PortTrafficPolicy fields that shape traffic but carry no security meaning.
_SHAPING_FIELDS = ("loadBalancer", "connectionPool", "outlierDetection")
_POLICY_ONLY_FIELDS = ("tunnel", "proxyProtocol", "retryBudget")


def parse(spec: Fields, meta: Meta, labels: Labels) -> DestinationRule | None:
    """The DestinationRule, or None if any field was reported as an error."""
    del labels
    host = spec.string("host", required=True)
    policy = spec.mapping("trafficPolicy")
    tls: ClientTls | None = None
    port_level: tuple[tuple[int, ClientTls], ...] = ()
    if policy is not None:
        tls = _tls(policy)
        port_level = _port_level(policy)
        _not_enforced(policy, _SHAPING_FIELDS + _POLICY_ONLY_FIELDS)
        policy.finish()
    _not_enforced(spec, ("subsets",))
    selector = workload_selector.parse(spec, "workloadSelector")
    spec.strings("exportTo")  # visibility across namespaces: one machine sees everything
    spec.finish()
    if spec.report.failed or host is None:
        return None
    return DestinationRule(
        meta,
        host,
        tls.mode if tls is not None else None,
        tuple((port, t.mode) for port, t in port_level),
        selector,
        tls if tls is not None and tls.mode in ORIGINATING_MODES else None,
        tuple((port, t) for port, t in port_level if t.mode in ORIGINATING_MODES),
        tls.sni if tls is not None and tls.mode == "ISTIO_MUTUAL" else "",
        tuple((port, t.sni) for port, t in port_level if t.mode == "ISTIO_MUTUAL" and t.sni),
    )


def _tls(policy: Fields) -> ClientTls | None:
    """None when `tls` is absent; a `tls` without `mode` is DISABLE (the proto default)."""
    tls = policy.mapping("tls")
    if tls is None:
        return None
    written = tls.choice("mode", TLS_MODES)
    mode: ClientTlsMode = next((m for m in TLS_MODES if m == written), "DISABLE")
    if mode not in ORIGINATING_MODES:
        # ISTIO_MUTUAL keeps `sni`: the name an egress gateway's ISTIO_MUTUAL server matches
        # (Istio's egress gateway tasks); everything else belongs to SIMPLE/MUTUAL.
        sni = tls.string("sni") if mode == "ISTIO_MUTUAL" else None
        for key in _TLS_SECURITY_FIELDS + (() if mode == "ISTIO_MUTUAL" else ("sni",)):
            if tls.take(key) is not None:
                tls.disallow(
                    key,
                    f"tls.{key} applies only to modes {_MODES_OF.get(key, 'SIMPLE and MUTUAL')} "
                    f"(this rule is {mode}); "
                    "refused rather than looking enforced",
                    code="MW0125",
                )
        tls.finish()
        return ClientTls(mode, sni=sni or "")
    settings = ClientTls(
        mode,
        ca_certificates=tls.string("caCertificates") or "",
        ca_crl=tls.string("caCrl") or "",
        client_certificate=tls.string("clientCertificate") or "",
        private_key=tls.string("privateKey") or "",
        credential_name=tls.string("credentialName") or "",
        subject_alt_names=tls.strings("subjectAltNames") or (),
        sni=tls.string("sni") or "",
        insecure_skip_verify=bool(tls.boolean("insecureSkipVerify")),
    )
    _check_origination(tls, settings)
    for key, path in (
        ("caCertificates", settings.ca_certificates),
        ("caCrl", settings.ca_crl),
        ("clientCertificate", settings.client_certificate),
        ("privateKey", settings.private_key),
    ):
        if path and not path.startswith("/"):
            # The sidecar's Envoy reads the file: a relative path would depend on its cwd.
            tls.disallow(key, f"tls.{key} must be an absolute path, got {path!r}", code="MW0199")
    tls.finish()
    return settings


def _check_origination(tls: Fields, settings: ClientTls) -> None:
    """The safety rule (MW0128/MW0129) and MUTUAL's key pair (MW0198)."""
    verified = bool(settings.ca_certificates or settings.credential_name)
    if settings.insecure_skip_verify:
        tls.disallow(
            "insecureSkipVerify",
            f"{settings.mode} origination does not verify the server's certificate "
            "(insecureSkipVerify: true); anyone on the path can impersonate it",
            code="MW0129",
        )
    elif not verified:
        tls.disallow(
            "mode",
            f"{settings.mode} origination without caCertificates or credentialName would not "
            "verify the server; refused (set insecureSkipVerify: true to accept that)",
            code="MW0128",
        )
    if settings.mode != "MUTUAL":
        for key, value in (
            ("clientCertificate", settings.client_certificate),
            ("privateKey", settings.private_key),
        ):
            if value:
                tls.disallow(key, f"tls.{key} is used only by mode MUTUAL", code="MW0198")
        return
    files = (settings.client_certificate, settings.private_key)
    if settings.credential_name:
        if any(files):
            tls.disallow(
                "credentialName",
                "MUTUAL takes the client key pair from credentialName or from "
                "clientCertificate/privateKey, not both",
                code="MW0198",
            )
    elif not all(files):
        tls.disallow(
            "mode",
            "MUTUAL needs a client key pair: credentialName, or clientCertificate and privateKey",
            code="MW0198",
        )


def _port_level(policy: Fields) -> tuple[tuple[int, ClientTls], ...]:
    numbers = UniqueValues()
    levels: list[tuple[int, ClientTls]] = []
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
    return tuple(sorted(levels, key=lambda level: level[0]))


def _not_enforced(fields: Fields, keys: tuple[str, ...]) -> None:
    for key in keys:
        if fields.take(key) is not None:
            fields.disallow(key, f"{key} is not enforced yet; accepted and ignored", "MW0126")
