"""DestinationRule TLS origination (SIMPLE/MUTUAL): every field parsed, the safety rule
(MW0128/MW0129), MUTUAL's key pair (MW0198), absolute paths (MW0199), MW0125 re-scoped.
The code rows (`CASES`) run in test_config_codes.py with every other config code."""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.config.resources import ClientTls

Found = list[tuple[str, int, str]]  # (code, line, field), as test_config_codes checks

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: partner}
spec:
  host: partner.shop.svc.cluster.local
  trafficPolicy:
    tls:
"""
TLS = "spec.trafficPolicy.tls"

CASES: list[tuple[str, str, Found]] = [
    ("MW0128 SIMPLE unverified", DR + "      mode: SIMPLE\n", [("MW0128", 8, f"{TLS}.mode")]),
    (
        "MW0128 MUTUAL files without CA",
        DR + "      mode: MUTUAL\n      clientCertificate: /c.pem\n      privateKey: /k.pem\n",
        [("MW0128", 8, f"{TLS}.mode")],
    ),
    (
        "MW0128 port-level SIMPLE",
        DR.replace("    tls:\n", "    portLevelSettings:\n    - port: {number: 443}\n")
        + "      tls: {mode: SIMPLE}\n",
        [("MW0128", 9, "spec.trafficPolicy.portLevelSettings[0].tls.mode")],
    ),
    (
        "MW0129 insecureSkipVerify",
        DR + "      mode: SIMPLE\n      insecureSkipVerify: true\n",
        [("MW0129", 9, f"{TLS}.insecureSkipVerify")],
    ),
    (
        "MW0198 MUTUAL without key pair",
        DR + "      mode: MUTUAL\n      caCertificates: /ca.pem\n",
        [("MW0198", 8, f"{TLS}.mode")],
    ),
    (
        "MW0198 MUTUAL certificate without key",
        DR + "      mode: MUTUAL\n      caCertificates: /ca.pem\n      clientCertificate: /c.pem\n",
        [("MW0198", 8, f"{TLS}.mode")],
    ),
    (
        "MW0198 MUTUAL credential and files",
        DR + "      mode: MUTUAL\n      credentialName: c\n      privateKey: /k.pem\n",
        [("MW0198", 9, f"{TLS}.credentialName")],
    ),
    (
        "MW0198 SIMPLE with client certificate",
        DR + "      mode: SIMPLE\n      caCertificates: /ca.pem\n      clientCertificate: /c.pem\n",
        [("MW0198", 10, f"{TLS}.clientCertificate")],
    ),
    (
        "MW0199 relative CA path",
        DR + "      mode: SIMPLE\n      caCertificates: certs/ca.pem\n",
        [("MW0199", 9, f"{TLS}.caCertificates")],
    ),
    (
        "MW0125 SAN on ISTIO_MUTUAL",
        DR + "      mode: ISTIO_MUTUAL\n      subjectAltNames: [a]\n",
        [("MW0125", 9, f"{TLS}.subjectAltNames")],
    ),
    (
        "MW0125 sni on DISABLE",
        DR + "      mode: DISABLE\n      sni: a.example.com\n",
        [("MW0125", 9, f"{TLS}.sni")],
    ),
]


@pytest.mark.parametrize(
    ("body", "tls"),
    [
        (
            "      mode: SIMPLE\n      caCertificates: /etc/partner/ca.pem\n"
            "      caCrl: /etc/partner/crl.pem\n      sni: api.partner.example\n"
            "      subjectAltNames: [api.partner.example, spiffe://partner/api]\n",
            ClientTls(
                "SIMPLE",
                ca_certificates="/etc/partner/ca.pem",
                ca_crl="/etc/partner/crl.pem",
                subject_alt_names=("api.partner.example", "spiffe://partner/api"),
                sni="api.partner.example",
            ),
        ),
        (
            "      mode: MUTUAL\n      credentialName: partner-client\n",
            ClientTls("MUTUAL", credential_name="partner-client"),
        ),
        (
            "      mode: MUTUAL\n      caCertificates: /ca.pem\n"
            "      clientCertificate: /c.pem\n      privateKey: /k.pem\n",
            ClientTls(
                "MUTUAL",
                ca_certificates="/ca.pem",
                client_certificate="/c.pem",
                private_key="/k.pem",
            ),
        ),
        (
            "      mode: SIMPLE\n      credentialName: partner-ca\n",
            ClientTls("SIMPLE", credential_name="partner-ca"),
        ),
    ],
    ids=["simple-files", "mutual-credential", "mutual-files", "simple-credential"],
)
def test_valid_origination_is_parsed_whole(body: str, tls: ClientTls) -> None:
    result = load_text(DR + body, "t.yaml")
    assert result.diagnostics == ()
    (rule,) = result.destination_rules
    assert (rule.tls_mode, rule.tls, rule.port_level, rule.port_tls) == (tls.mode, tls, (), ())


def test_port_level_origination_keeps_settings_per_port() -> None:
    text = DR.replace("    tls:\n", "    portLevelSettings:\n") + (
        "    - port: {number: 443}\n      tls: {mode: SIMPLE, caCertificates: /ca.pem}\n"
        "    - port: {number: 80}\n      tls: {mode: DISABLE}\n"
    )
    result = load_text(text, "t.yaml")
    assert result.diagnostics == ()
    (rule,) = result.destination_rules
    assert (rule.tls_mode, rule.tls) == (None, None)
    assert rule.port_level == ((80, "DISABLE"), (443, "SIMPLE"))
    assert rule.port_tls == ((443, ClientTls("SIMPLE", ca_certificates="/ca.pem")),)


def test_unverified_origination_drops_the_rule() -> None:
    # Fail closed: the refused rule is not half-applied.
    result = load_text(DR + "      mode: SIMPLE\n      sni: a.example\n", "t.yaml")
    assert [d.code for d in result.diagnostics] == ["MW0128"]
    assert result.destination_rules == ()


def test_insecure_origination_is_kept_with_a_warning() -> None:
    result = load_text(DR + "      mode: SIMPLE\n      insecureSkipVerify: true\n", "t.yaml")
    assert [(d.code, d.level.value) for d in result.diagnostics] == [("MW0129", "warning")]
    (rule,) = result.destination_rules
    assert rule.tls == ClientTls("SIMPLE", insecure_skip_verify=True)


def test_istio_mutual_keeps_its_sni_at_rule_and_port_level() -> None:
    # Istio's egress gateway tasks: the sidecar's mTLS to the gateway names the external host.
    text = DR + "      {mode: ISTIO_MUTUAL, sni: api.maps.example}\n"
    text += (
        "    portLevelSettings:\n"
        "    - port: {number: 8443}\n      tls: {mode: ISTIO_MUTUAL, sni: bank.example}\n"
        "    - port: {number: 9443}\n      tls: {mode: ISTIO_MUTUAL}\n"
    )
    result = load_text(text, "t.yaml")
    assert result.diagnostics == ()
    (rule,) = result.destination_rules
    assert (rule.tls_mode, rule.tls, rule.mtls_sni, rule.port_mtls_sni) == (
        "ISTIO_MUTUAL",
        None,
        "api.maps.example",
        ((8443, "bank.example"),),
    )
