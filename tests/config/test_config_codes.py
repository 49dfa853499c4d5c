"""One table row per MW01xx code: the smallest input that must produce exactly that code.

Each row changes one thing in an otherwise valid resource and asserts the exact
(code, line, field) list, so a code can neither go missing nor fire where it should not.
"""

from __future__ import annotations

import pytest
from test_config_authz import CASES as AUTHZ_CASES
from test_config_extauthz import CASES as EXTAUTHZ_CASES
from test_config_extauthz import RULE_CASES
from test_config_gateway import CASES as GATEWAY_CASES
from test_config_origination import CASES as ORIGINATION_CASES
from test_config_service_entry import CASES as SE_CASES
from test_config_sidecar import CASES as SIDECAR_CASES

from meshward.config import load_text
from meshward.diagnostics.catalog import CATALOG

Found = list[tuple[str, int, str]]

WORKLOAD = """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop}
spec:
  command: [python]
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
"""
RA = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
"""
PA = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
"""
DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web.shop.svc.cluster.local
"""
MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
"""

CASES: list[tuple[str, str, Found]] = [
    ("MW0101 bad YAML", "a: [1, 2\nb: 3\n", [("MW0101", 2, "")]),
    ("MW0102 not a mapping", "- 1\n- 2\n", [("MW0102", 1, "")]),
    ("MW0103 no kind", "apiVersion: v1\nmetadata: {name: x}\n", [("MW0103", 1, "kind")]),
    ("MW0103 no apiVersion", "kind: Service\n", [("MW0103", 1, "apiVersion")]),
    (
        "MW0104 unknown kind",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
        [("MW0104", 2, "kind")],
    ),
    (
        "MW0104 wrong version",
        WORKLOAD.replace("v1alpha1", "v2"),
        [("MW0104", 2, "kind")],
    ),
    (
        "MW0105 WorkloadEntry",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: x}\n",
        [("MW0105", 2, "kind")],
    ),
    ("MW0106 unknown spec field", WORKLOAD + "  replica: 2\n", [("MW0106", 6, "spec.replica")]),
    ("MW0106 unknown top field", "extra: 1\n" + WORKLOAD, [("MW0106", 1, "extra")]),
    (
        "MW0107 required missing",
        WORKLOAD.replace("  command: [python]\n", ""),
        [("MW0107", 4, "spec.command")],
    ),
    ("MW0107 no ports", SERVICE.split("  ports:", maxsplit=1)[0], [("MW0107", 4, "spec.ports")]),
    (
        "MW0107 empty ports",
        SERVICE.split("  ports:", maxsplit=1)[0] + "  ports: []\n",
        [("MW0107", 6, "spec.ports")],
    ),
    ("MW0108 wrong type", WORKLOAD + "  replicas: two\n", [("MW0108", 6, "spec.replicas")]),
    ("MW0108 bool is no int", WORKLOAD + "  replicas: true\n", [("MW0108", 6, "spec.replicas")]),
    ("MW0109 bad enum", PA + "  mtls: {mode: strict}\n", [("MW0109", 5, "spec.mtls.mode")]),
    (
        "MW0109 UDP",
        SERVICE.replace("port: 80}", "port: 80, protocol: UDP}"),
        [("MW0109", 7, "spec.ports[0].protocol")],
    ),
    (
        "MW0109 named targetPort",
        SERVICE.replace("port: 80}", "port: 80, targetPort: http}"),
        [("MW0109", 7, "spec.ports[0].targetPort")],
    ),
    ("MW0109 replicas range", WORKLOAD + "  replicas: 21\n", [("MW0109", 6, "spec.replicas")]),
    ("MW0110 no name", WORKLOAD.replace("name: web, ", ""), [("MW0110", 3, "metadata.name")]),
    (
        "MW0110 bad name",
        WORKLOAD.replace("name: web", "name: Web_1"),
        [("MW0110", 3, "metadata.name")],
    ),
    (
        "MW0110 dotted Service",
        SERVICE.replace("name: web", "name: web.v1"),
        [("MW0110", 3, "metadata.name")],
    ),
    (
        "MW0111 bad namespace",
        WORKLOAD.replace("namespace: shop", "namespace: Shop"),
        [("MW0111", 3, "metadata.namespace")],
    ),
    (
        "MW0111 bad rootNamespace",
        MESH + "  rootNamespace: a.b\n",
        [("MW0111", 5, "spec.rootNamespace")],
    ),
    ("MW0112 duplicate", WORKLOAD + "---\n" + WORKLOAD, [("MW0112", 7, "metadata.name")]),
    (
        "MW0113 port range",
        SERVICE.replace("port: 80", "port: 0"),
        [("MW0113", 7, "spec.ports[0].port")],
    ),
    (
        "MW0113 portLevelMtls key",
        PA + "  selector: {matchLabels: {app: web}}\n  portLevelMtls:\n    70000: {mode: STRICT}\n",
        [("MW0113", 7, "spec.portLevelMtls.70000")],
    ),
    (
        "MW0114 bad duration",
        MESH + "  workloadCertTTL: 1d\n",
        [("MW0114", 5, "spec.workloadCertTTL")],
    ),
    (
        "MW0116 duplicate port",
        SERVICE + "  - {name: http2, port: 80}\n",
        [("MW0116", 8, "spec.ports[1].port")],
    ),
    (
        "MW0117 bad label",
        WORKLOAD.replace("namespace: shop}", "namespace: shop, labels: {app: -x}}"),
        [("MW0117", 3, "metadata.labels.app")],
    ),
    (
        "MW0117 bad selector",
        PA + "  selector:\n    matchLabels:\n      a/b/c: x\n",
        [("MW0117", 7, "spec.selector.matchLabels.a/b/c")],
    ),
    (
        "MW0118 two MeshConfigs",
        MESH + "---\n" + MESH.replace("mesh}", "other}"),
        [("MW0118", 6, "")],
    ),
    (
        "MW0119 trust domain",
        MESH + "  trustDomain: Example.ORG\n",
        [("MW0119", 5, "spec.trustDomain")],
    ),
    (
        "MW0120 service account",
        WORKLOAD + "  serviceAccount: Web\n",
        [("MW0120", 6, "spec.serviceAccount")],
    ),
    (
        "MW0121 portLevelMtls no selector",
        PA + "  portLevelMtls:\n    8080: {mode: DISABLE}\n",
        [("MW0121", 5, "spec.portLevelMtls")],
    ),
    (
        "MW0123 TTL too short",
        MESH + "  workloadCertTTL: 59s\n",
        [("MW0123", 5, "spec.workloadCertTTL")],
    ),
    (
        "MW0123 TTL too long",
        MESH + "  workloadCertTTL: 2161h\n",
        [("MW0123", 5, "spec.workloadCertTTL")],
    ),
    (
        "MW0150 outbound traffic policy mode",
        MESH + "  outboundTrafficPolicy:\n    mode: DENY_ALL\n",
        [("MW0150", 6, "spec.outboundTrafficPolicy.mode")],
    ),
    (
        "MW0151 outside workload with a sidecar",
        WORKLOAD + "  outside: true\n  sidecar: true\n",
        [("MW0151", 7, "spec.sidecar")],
    ),
    (
        "MW0189 hostnames on a mesh workload",
        WORKLOAD + "  hostnames: [api.example]\n",
        [("MW0189", 6, "spec.hostnames")],
    ),
    ("MW0124 duplicate key", WORKLOAD + "  command: [sh]\n", [("MW0124", 6, "spec.command")]),
    (
        "MW0125 subjectAltNames",
        DR + "  trafficPolicy:\n    tls:\n      mode: ISTIO_MUTUAL\n      subjectAltNames: [a]\n",
        [("MW0125", 9, "spec.trafficPolicy.tls.subjectAltNames")],
    ),
    (
        "MW0126 outlierDetection",
        DR + "  trafficPolicy: {outlierDetection: {}}\n",
        [("MW0126", 6, "spec.trafficPolicy.outlierDetection")],
    ),
    ("MW0126 subsets", DR + "  subsets: [{name: v1}]\n", [("MW0126", 6, "spec.subsets")]),
    (
        "MW0163 RequestAuthentication targetRef",
        "apiVersion: security.istio.io/v1beta1\nkind: RequestAuthentication\nmetadata: {name: x}\n"
        "spec:\n  targetRef: {kind: Gateway, name: g}\n",
        [("MW0163", 5, "spec.targetRef")],
    ),
    (
        "MW0160 jwksUri not http",
        RA + "  - {issuer: i, jwksUri: 'file:///etc/passwd'}\n",
        [("MW0160", 6, "spec.jwtRules[0].jwksUri")],
    ),
    (
        "MW0161 jwks without keys",
        RA + "  - {issuer: i, jwks: '{\"keys\": []}'}\n",
        [("MW0161", 6, "spec.jwtRules[0].jwks")],
    ),
    (
        "MW0162 header name",
        RA + "  - issuer: i\n    fromHeaders: [{name: 'x y'}]\n",
        [("MW0162", 7, "spec.jwtRules[0].fromHeaders[0].name")],
    ),
    (
        "MW0164 timeout",
        RA + "  - {issuer: i, timeout: 0s}\n",
        [("MW0164", 6, "spec.jwtRules[0].timeout")],
    ),
    (
        "MW0165 blocked cidr",
        MESH + "  jwksFetchBlockedCidrs: [nope]\n",
        [("MW0165", 5, "spec.jwksFetchBlockedCidrs")],
    ),
    (
        "MW0166 refresh interval",
        MESH + "  jwksRefreshInterval: 1s\n",
        [("MW0166", 5, "spec.jwksRefreshInterval")],
    ),
]


def _found(text: str) -> Found:
    result = load_text(text, "t.yaml")
    return [(d.code, d.location.line, d.location.field) for d in result.diagnostics]


# DestinationRule TLS origination rows live in test_config_origination.py; run here.
ROWS = (*CASES, *ORIGINATION_CASES)


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in ROWS], ids=[c[0] for c in ROWS])
def test_code(text: str, expected: Found) -> None:
    assert _found(text) == expected


@pytest.mark.parametrize("text", [WORKLOAD, SERVICE, PA, DR, MESH])
def test_base_documents_are_clean(text: str) -> None:
    """The rows above only prove something if the unchanged base documents are clean."""
    assert _found(text) == []


def test_every_live_config_code_has_a_row() -> None:
    # MW0115 (missing path) needs the file system: test_config_load covers it.
    live = {c for c, e in CATALOG.items() if c.startswith("MW01") and not e.retired} - {"MW0115"}
    # AuthorizationPolicy codes (MW013x/MW014x) have their rows in test_config_authz.py,
    # extension provider and rule-file codes (MW019x) in test_config_extauthz.py,
    # Gateway/VirtualService codes (MW0175-MW0188) in test_config_gateway.py.
    # DestinationRule TLS origination codes (MW0128/MW0129/MW0198/MW0199) in
    # test_config_origination.py.
    cases = (
        *CASES,
        *AUTHZ_CASES,
        *EXTAUTHZ_CASES,
        *RULE_CASES,
        *GATEWAY_CASES,
        *ORIGINATION_CASES,
    )
    covered = {code for _, _, found in cases for code, _, _ in found}
    # ServiceEntry (MW0152-MW0158) and Sidecar (MW0159, MW0167-MW0168) have their own files.
    covered |= {code for _, found in (*SE_CASES, *SIDECAR_CASES) for code, _, _ in found}
    assert covered == live


def test_levels_come_from_the_catalog() -> None:
    result = load_text(DR + "  subsets: [{name: v1}]\n---\n" + WORKLOAD.replace("web", "Web"))
    assert [(d.code, d.level.value) for d in result.diagnostics] == [
        ("MW0126", "warning"),
        ("MW0110", "error"),
    ]
    # A warning does not drop the resource; an error does.
    assert [r.meta.name for r in result.destination_rules] == ["web"]
    assert result.workloads == ()


def test_mw0122_is_retired_and_never_emitted() -> None:
    assert CATALOG["MW0122"].retired
    root_selector = PA.replace("namespace: shop", "namespace: meshward-system")
    assert _found(root_selector + "  selector: {matchLabels: {app: web}}\n") == []
