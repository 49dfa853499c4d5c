"""TLS origination by DestinationRule (SIMPLE / MUTUAL): what a sidecar presents and checks.

Called by model/proxies.py for each outbound service port whose rule (chosen by
`upstream_tls.rule_for` / `decide`) originates TLS, and by runner/ (`missing_credentials`)
through `credential_needs`. Istio semantics (DestinationRule reference, ClientTLSSettings):

- `portLevelSettings[].tls` for the port replaces `trafficPolicy.tls`.
- SNI: `sni` when set, else the destination host (the service's name) — what a server with
  several names uses to pick its certificate.
- Trust: `caCertificates` (a file the proxy reads, with `caCrl`), or with `credentialName`
  the credential's CA bundle (`<name>-cacert`, Istio's convention); `insecureSkipVerify`
  drops the check (config/ warned, MW0129). `subjectAltNames`: the server certificate must
  carry one of them.
- MUTUAL's client key pair: the credential's key and chain, or clientCertificate/privateKey.
"""

from __future__ import annotations

from meshward.config.resources import ClientTls, DestinationRule
from meshward.model import ir


def settings_for(rule: DestinationRule, port: int) -> ClientTls | None:
    """The SIMPLE/MUTUAL settings `rule` gives `port`, or None if it does not originate.

    A port-level `tls` with another mode (DISABLE, ISTIO_MUTUAL) replaces the rule's SIMPLE."""
    if port in dict(rule.port_level):
        return dict(rule.port_tls).get(port)
    return rule.tls


def decide(settings: ClientTls, fqdn: str) -> ir.Origination:
    """The origination a sidecar does to service `fqdn` under `settings`."""
    name = settings.credential_name
    mutual = settings.mode == "MUTUAL"
    # insecureSkipVerify drops every server check, the CA as well (Istio: "skip verifying the
    # CA signature and SAN"); an explicit SAN list with it would be a check nobody enforces.
    verify = not settings.insecure_skip_verify
    return ir.Origination(
        mode=settings.mode,
        sni=settings.sni or fqdn,
        subject_alt_names=settings.subject_alt_names if verify else (),
        ca_file=settings.ca_certificates if verify and not name else "",
        crl_file=settings.ca_crl if verify and not name else "",
        cert_file=settings.client_certificate if mutual else "",
        key_file=settings.private_key if mutual else "",
        validation=ir.credential_sds_name(f"{name}-cacert") if name and verify else "",
        certificate=ir.credential_sds_name(name) if name and mutual else "",
        credential=name,
        insecure=settings.insecure_skip_verify,
    )


def credential_needs(rule: DestinationRule) -> tuple[tuple[str, str, bool], ...]:
    """(field path, credential, needs a CA) for each credentialName the rule uses: the runner
    checks them against the secret store (MW0470). A stored credential always has a key pair."""
    found = []
    levels = [("spec.trafficPolicy.tls", rule.tls)] + [
        (f"spec.trafficPolicy.portLevelSettings[port {port}].tls", tls)
        for port, tls in rule.port_tls
    ]
    for path, tls in levels:
        if tls is not None and tls.credential_name:
            found.append(
                (
                    f"{path}.credentialName",
                    tls.credential_name,
                    not tls.insecure_skip_verify,
                )
            )
    return tuple(found)
