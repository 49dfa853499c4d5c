"""Each kind parses into exactly the resource value model/ expects (whole values asserted)."""

from __future__ import annotations

from meshward.config import ConfigSet, load_text
from meshward.config.resources import (
    DestinationRule,
    MeshConfig,
    Meta,
    PeerAuthentication,
    Service,
    ServicePort,
    Workload,
    WorkloadPort,
)


def _clean(text: str) -> ConfigSet:
    result = load_text(text, "k.yaml")
    assert result.diagnostics == ()
    return result


def _meta(kind: str, name: str, namespace: str, line: int = 1, order: int = 0) -> Meta:
    versions = {
        "Service": "v1",
        "Workload": "meshward.io/v1alpha1",
        "MeshConfig": "meshward.io/v1alpha1",
        "PeerAuthentication": "security.istio.io/v1",
        "DestinationRule": "networking.istio.io/v1",
    }
    return Meta(versions[kind], kind, name, namespace, "k.yaml", line, ("", order))


def test_workload_example_from_the_brief() -> None:
    result = _clean(
        """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: user-service, namespace: core, labels: {app: user-service}}
spec:
  serviceAccount: user-service
  ports: [{name: http, port: 8080}]
  command: ["python", "-m", "meshward.samples.simple_system", "user-service"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8080"]
  env: [{name: LOG_LEVEL, value: info}]
"""
    )
    assert result.workloads == (
        Workload(
            meta=_meta("Workload", "user-service", "core"),
            labels=(("app", "user-service"),),
            service_account="user-service",
            ports=(WorkloadPort("http", 8080),),
            command=("python", "-m", "meshward.samples.simple_system", "user-service"),
            args=("--host", "$(MESHWARD_APP_HOST)", "--port", "8080"),
            env=(("LOG_LEVEL", "info"),),
            replicas=1,
            sidecar=True,
        ),
    )


def test_workload_defaults_and_overrides() -> None:
    result = _clean(
        """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: legacy}
spec:
  command: [nc, -l]
  replicas: 3
  sidecar: false
  env: [{name: EMPTY}]
"""
    )
    assert result.workloads == (
        Workload(
            meta=_meta("Workload", "legacy", "default"),
            labels=(),
            service_account="default",
            ports=(),
            command=("nc", "-l"),
            args=(),
            env=(("EMPTY", ""),),
            replicas=3,
            sidecar=False,
        ),
    )


def test_service_target_port_defaults_to_port() -> None:
    result = _clean(
        """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: ClusterIP
  selector: {app: web, tier: front}
  ports:
  - {name: http, port: 80, targetPort: 8080, appProtocol: http, protocol: TCP}
  - {name: tcp-db, port: 5432}
"""
    )
    assert result.services == (
        Service(
            meta=_meta("Service", "web", "shop"),
            selector=(("app", "web"), ("tier", "front")),
            ports=(ServicePort("http", 80, 8080, "http"), ServicePort("tcp-db", 5432, 5432, "")),
        ),
    )


def test_single_port_needs_no_name() -> None:
    result = _clean(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  ports: [{port: 5432}]\n"
    )
    assert result.services[0].ports == (ServicePort("", 5432, 5432, ""),)
    assert result.services[0].selector == ()


def test_mesh_config_absent_gives_defaults() -> None:
    assert _clean("").mesh == MeshConfig(None, "cluster.local", "meshward-system", 86400)


def test_mesh_config_values() -> None:
    result = _clean(
        """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {trustDomain: example.org, rootNamespace: istio-system, workloadCertTTL: 1h30m}
"""
    )
    assert result.mesh == MeshConfig(
        _meta("MeshConfig", "mesh", "default"), "example.org", "istio-system", 5400
    )


# Istio API reference, PeerAuthentication (istio.io/latest/docs/reference/config/security/
# peer_authentication/), examples used unchanged.
ISTIO_PA_EXAMPLES = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: finance
  namespace: foo
spec:
  selector:
    matchLabels:
      app: finance
  mtls:
    mode: STRICT
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: bar
spec:
  selector:
    matchLabels:
      app: finance
  mtls:
    mode: UNSET
  portLevelMtls:
    8080:
      mode: DISABLE
"""


def test_istio_peer_authentication_examples() -> None:
    result = _clean(ISTIO_PA_EXAMPLES)
    assert result.peer_authentications == (
        PeerAuthentication(_meta("PeerAuthentication", "default", "foo"), None, "PERMISSIVE", ()),
        PeerAuthentication(
            _meta("PeerAuthentication", "finance", "foo", line=10, order=1),
            (("app", "finance"),),
            "STRICT",
            (),
        ),
        PeerAuthentication(
            Meta(
                "security.istio.io/v1beta1",
                "PeerAuthentication",
                "default",
                "bar",
                "k.yaml",
                22,
                ("", 2),
            ),
            (("app", "finance"),),
            "UNSET",
            ((8080, "DISABLE"),),
        ),
    )


def test_peer_authentication_mode_absent_vs_empty_mtls() -> None:
    base = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\n"
    assert _clean(base).peer_authentications[0].mode is None
    assert _clean(base + "spec: {mtls: {}}\n").peer_authentications[0].mode == "UNSET"
    # Istio: an empty matchLabels selects the whole namespace, like no selector.
    empty = _clean(base + "spec: {selector: {matchLabels: {}}}\n")
    assert empty.peer_authentications[0].selector is None


# Istio API reference, DestinationRule (istio.io/latest/docs/reference/config/networking/
# destination-rule/), first example used unchanged: accepted, with a not-enforced warning.
ISTIO_DR_EXAMPLE = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: bookinfo-ratings
spec:
  host: ratings.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
"""


def test_istio_destination_rule_example_is_kept_with_a_warning() -> None:
    result = load_text(ISTIO_DR_EXAMPLE, "k.yaml")
    assert [(d.code, d.location.field) for d in result.diagnostics] == [
        ("MW0126", "spec.trafficPolicy.loadBalancer")
    ]
    assert result.destination_rules == (
        DestinationRule(
            _meta("DestinationRule", "bookinfo-ratings", "default"),
            "ratings.prod.svc.cluster.local",
            None,
            (),
            None,
        ),
    )


def test_destination_rule_tls_and_port_level() -> None:
    result = _clean(
        """\
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  exportTo: ["."]
  workloadSelector: {matchLabels: {app: client}}
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9090}
      tls: {mode: DISABLE}
    - port: {number: 80}
      tls: {}
    - port: {number: 81}
"""
    )
    assert result.destination_rules == (
        DestinationRule(
            Meta(
                "networking.istio.io/v1beta1",
                "DestinationRule",
                "web",
                "shop",
                "k.yaml",
                1,
                ("", 0),
            ),
            "web",
            "ISTIO_MUTUAL",
            ((80, "DISABLE"), (9090, "DISABLE")),
            (("app", "client"),),
        ),
    )


def test_order_is_creation_timestamp_then_document_index() -> None:
    text = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: a, creationTimestamp: 2024-05-01T00:00:00Z}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: b, creationTimestamp: "2023-01-01T00:00:00Z"}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: c}
"""
    result = _clean(text)
    orders = [(p.meta.name, p.meta.order) for p in result.peer_authentications]
    assert orders == [
        ("a", ("2024-05-01T00:00:00Z", 0)),
        ("b", ("2023-01-01T00:00:00Z", 1)),
        ("c", ("", 2)),
    ]


def test_duplicate_keeps_the_first_and_points_at_it() -> None:
    doc = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: %s}\n"
        "spec:\n  ports: [{port: %d}]\n"
    )
    result = load_text(
        doc % ("a", 1) + "---\n" + doc % ("b", 2) + "---\n" + doc % ("a", 3), "k.yaml"
    )
    assert [(s.meta.namespace, s.ports[0].port) for s in result.services] == [("a", 1), ("b", 2)]
    assert [(d.code, d.resource, d.location.line) for d in result.diagnostics] == [
        ("MW0112", "Service a/web", 13)
    ]
    assert "k.yaml:1" in result.diagnostics[0].message


def test_same_name_in_different_kinds_is_no_duplicate() -> None:
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 1}]\n---\n"
        "apiVersion: meshward.io/v1alpha1\nkind: Workload\nmetadata: {name: web}\n"
        "spec: {command: [x]}\n"
    )
    result = _clean(text)
    assert (len(result.services), len(result.workloads)) == (1, 1)


def test_exported_kubectl_fields_are_accepted() -> None:
    result = _clean(
        """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
  uid: 0b1c
  resourceVersion: "42"
  generation: 1
  annotations: {note: x}
spec:
  mtls: {mode: STRICT}
status: {}
"""
    )
    assert result.peer_authentications[0].mode == "STRICT"
