"""examples/simple-system: the YAML has the expected documents, its Workload commands name
runnable sample modules, and the real config loader accepts it without a single diagnostic."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

from meshward import config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "simple-system"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, document)
        for path in sorted(EXAMPLE.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document is not None
    ]


def test_expected_documents() -> None:
    found = {
        (
            file,
            doc["apiVersion"],
            doc["kind"],
            doc["metadata"].get("namespace", ""),
            doc["metadata"]["name"],
        )
        for file, doc in _documents()
    }
    assert found == {
        ("mesh.yaml", "meshward.io/v1alpha1", "MeshConfig", "", "mesh"),
        ("core.yaml", "meshward.io/v1alpha1", "Workload", "core", "user-service"),
        ("core.yaml", "v1", "Service", "core", "user-service"),
        ("core.yaml", "meshward.io/v1alpha1", "Workload", "core", "database"),
        ("core.yaml", "v1", "Service", "core", "database"),
        ("geo.yaml", "meshward.io/v1alpha1", "Workload", "geo", "location-service"),
        ("geo.yaml", "v1", "Service", "geo", "location-service"),
        ("legacy.yaml", "meshward.io/v1alpha1", "Workload", "legacy", "reports"),
        ("end-user.yaml", "meshward.io/v1alpha1", "Workload", "auth", "idp"),
        ("end-user.yaml", "v1", "Service", "auth", "idp"),
        (
            "end-user.yaml",
            "security.istio.io/v1",
            "RequestAuthentication",
            "meshward-system",
            "end-users",
        ),
        (
            "end-user.yaml",
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "core",
            "users-need-admin",
        ),
        (
            "end-user.yaml",
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "geo",
            "locations-need-user",
        ),
        ("legacy.yaml", "v1", "Service", "legacy", "reports"),
        ("external-authn.yaml", "meshward.io/v1alpha1", "Workload", "core", "credentials"),
        ("external-authn.yaml", "v1", "Service", "core", "credentials"),
        *(
            ("external-authn.yaml", "security.istio.io/v1", "AuthorizationPolicy", "core", name)
            for name in ("users-need-api-key", "credentials-from-user-service")
        ),
        ("ingress.yaml", "meshward.io/v1alpha1", "Workload", "istio-system", "ingressgateway"),
        ("ingress.yaml", "networking.istio.io/v1", "Gateway", "istio-system", "public"),
        ("ingress.yaml", "networking.istio.io/v1", "VirtualService", "core", "users"),
        ("ingress.yaml", "networking.istio.io/v1", "VirtualService", "core", "vault"),
        ("ingress.yaml", "meshward.io/v1alpha1", "Workload", "core", "vault"),
        ("ingress.yaml", "v1", "Service", "core", "vault"),
        (
            "ingress.yaml",
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "core",
            "vault-from-ingress",
        ),
        (
            "peer-authentication.yaml",
            "security.istio.io/v1",
            "PeerAuthentication",
            "core",
            "default",
        ),
        (
            "peer-authentication.yaml",
            "security.istio.io/v1",
            "PeerAuthentication",
            "geo",
            "default",
        ),
        *(
            ("authorization.yaml", "security.istio.io/v1", "AuthorizationPolicy", ns, name)
            for ns, name in (
                ("core", "allow-nothing"),
                ("core", "database-from-user-service"),
                ("core", "user-service-readers"),
                ("geo", "deny-plaintext-admin"),
                ("geo", "deny-plaintext"),
            )
        ),
        ("egress.yaml", "meshward.io/v1alpha1", "Workload", "istio-system", "egressgateway"),
        ("egress.yaml", "v1", "Service", "istio-system", "egressgateway"),
        ("egress.yaml", "networking.istio.io/v1", "Gateway", "istio-system", "egress"),
        *(
            ("egress.yaml", "networking.istio.io/v1", "DestinationRule", "istio-system", name)
            for name in ("egressgateway", "maps-mtls")
        ),
        *(
            ("egress.yaml", "meshward.io/v1alpha1", "Workload", "partners", name)
            for name in ("maps", "payments")
        ),
        *(
            ("egress.yaml", "networking.istio.io/v1", "ServiceEntry", "istio-system", name)
            for name in ("maps", "maps-exit", "payments")
        ),
        *(
            ("egress.yaml", "networking.istio.io/v1", "VirtualService", "istio-system", name)
            for name in ("maps-through-egress", "payments-through-egress")
        ),
        (
            "egress.yaml",
            "security.istio.io/v1",
            "AuthorizationPolicy",
            "istio-system",
            "egress-callers",
        ),
        *(
            ("admission.yaml", "meshward.io/v1alpha1", "AdmissionPolicy", "", name)
            for name in (
                "strict-mtls",
                "approved-exceptions",
                "authorized-commands",
                "no-allow-all",
                "dry-run-first",
            )
        ),
    }


def test_security_and_topology_as_designed() -> None:
    docs = [doc for _, doc in _documents()]
    modes = {
        doc["metadata"]["namespace"]: doc["spec"]["mtls"]["mode"]
        for doc in docs
        if doc["kind"] == "PeerAuthentication"
    }
    workloads = {
        doc["metadata"]["name"]: (
            doc["spec"].get("replicas", 1),
            doc["spec"].get("sidecar", True),
            [(port["name"], port["port"]) for port in doc["spec"].get("ports", [])],
        )
        for doc in docs
        if doc["kind"] == "Workload"
    }
    database_ports = next(
        doc["spec"]["ports"]
        for doc in docs
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "database"
    )
    assert (modes, workloads, database_ports) == (
        {"core": "STRICT", "geo": "PERMISSIVE"},
        {
            "user-service": (1, True, [("http", 8080)]),
            "database": (1, True, [("tcp-redis", 6379)]),
            "location-service": (2, True, [("http", 8081)]),
            "reports": (1, False, [("http", 8000)]),
            "credentials": (1, True, [("grpc", 9000)]),
            "idp": (1, False, [("http", 9443)]),
            "ingressgateway": (1, True, []),  # a gateway pod: its Envoy alone
            "egressgateway": (1, True, []),
            "vault": (1, True, [("tls", 8443)]),
            # outside hosts (`outside: true`: never a sidecar), the partners' APIs
            "maps": (1, True, [("https", 9443)]),
            "payments": (1, True, [("https", 9443)]),
        },
        [{"name": "tcp-redis", "port": 6379, "targetPort": 6379, "appProtocol": "redis"}],
    )


def test_workload_commands_are_runnable() -> None:
    for _, doc in _documents():
        if doc["kind"] != "Workload" or doc["spec"].get("gateway"):
            continue  # a gateway Workload runs no command
        command = doc["spec"]["command"]
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, command
        else:
            assert command == ["redis-server"]


def test_config_loader_accepts_the_example() -> None:
    loaded = config.load([EXAMPLE])
    assert (
        loaded.diagnostics,
        len(loaded.workloads),
        len(loaded.services),
        len(loaded.peer_authentications),
        len(loaded.authorization_policies),
        len(loaded.request_authentications),
        loaded.mesh.trust_domain,
        [p.name for p in loaded.mesh.extension_providers],
        len(loaded.gateways),
        len(loaded.virtual_services),
        len(loaded.service_entries),
        len(loaded.destination_rules),
        loaded.mesh.outbound_traffic_policy,
    ) == ((), 11, 8, 2, 11, 1, "cluster.local", ["credentials"], 2, 4, 3, 2, "REGISTRY_ONLY")
