"""Bootstraps: golden sidecar bootstrap, and real Envoy (`--mode validate`) accepting every
translated case and both bootstrap forms."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import xds_cases
from google.protobuf import json_format
from xds_pki import Pki

from meshward.xds import bootstrap, secret, snapshot, translate

_SIDECAR = {
    "node_id": "sidecar~127.0.10.1~client-0.default~default.svc.cluster.local",
    "cluster": "client.default",
    "admin": ("127.0.10.1", 15000),
    "xds": ("127.0.0.1", 15010),
    "sds_socket": "/tmp/meshward-test/sds.sock",
    "metadata": {"NAMESPACE": "default"},
}


def test_sidecar_bootstrap_golden(golden: Callable[[str, Any], None]) -> None:
    golden("xds/bootstrap/sidecar.json", bootstrap.sidecar_bootstrap(**_SIDECAR))  # type: ignore[arg-type]


def test_sidecar_bootstrap_is_valid(
    envoy_validate: Callable[[dict[str, Any]], subprocess.CompletedProcess[str]],
) -> None:
    result = envoy_validate(bootstrap.sidecar_bootstrap(**_SIDECAR))  # type: ignore[arg-type]
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("case", sorted(xds_cases.CASES))
def test_envoy_accepts_translated_case(
    case: str,
    pki: Pki,
    envoy_validate: Callable[[dict[str, Any]], subprocess.CompletedProcess[str]],
) -> None:
    proxy = xds_cases.CASES[case]
    secrets = pki.leaf_dir(proxy.pod.identity.uri if proxy.pod.identity else "spiffe://x/none")
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy),
        admin=("127.0.0.1", 0),
        node_id=proxy.node_id,
        secrets_dir=secrets,
    )
    # Secret-store credentials (TLS origination by credentialName) come from the agent over
    # SDS; statically, the same names read from the test PKI's files.
    for service in proxy.outbound:
        found = service.origination
        if found is not None and found.certificate:
            static = secret.identity_secret_from_files(
                str(secrets / "cert.pem"), str(secrets / "key.pem"), name=found.certificate
            )
            config["static_resources"]["secrets"].append(json_format.MessageToDict(static))
        if found is not None and found.validation:
            static = secret.root_secret_from_file(str(secrets / "root.pem"), name=found.validation)
            config["static_resources"]["secrets"].append(json_format.MessageToDict(static))
    result = envoy_validate(config)
    assert (result.returncode, result.stderr) == (0, "")


def test_static_bootstrap_without_secrets_is_valid(
    envoy_validate: Callable[[dict[str, Any]], subprocess.CompletedProcess[str]],
) -> None:
    snap = translate.proxy_snapshot(xds_cases.CASES["strict_http"])
    config = bootstrap.static_bootstrap(snap, admin=("127.0.0.1", 0), node_id="n", secrets_dir=None)
    assert "secrets" not in config["static_resources"]
    result = envoy_validate(config)
    assert (result.returncode, result.stderr) == (0, "")


def test_static_bootstrap_inlines_routes_and_secrets(pki: Pki) -> None:
    snap = translate.proxy_snapshot(xds_cases.CASES["strict_http"])
    secrets = pki.leaf_dir("spiffe://cluster.local/ns/default/sa/inline")
    config = bootstrap.static_bootstrap(
        snap, admin=("127.0.0.1", 0), node_id="n", secrets_dir=secrets
    )
    text = repr(config)
    assert ("'rds'" in text, "sds-grpc" in text) == (False, False)
    assert [s["name"] for s in config["static_resources"]["secrets"]] == ["default", "ROOTCA"]
    (outbound,) = [
        listener
        for listener in config["static_resources"]["listeners"]
        if listener["name"] == "outbound_http"
    ]
    manager = outbound["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["route_config"]["name"] == "outbound_http"
    # The snapshot itself is untouched (still RDS over ADS): same content hash as before.
    listeners = snap.of_type(snapshot.LISTENER)
    assert snapshot.content_version(listeners) == snap.version(snapshot.LISTENER)


def test_validation_can_fail(
    envoy_validate: Callable[[dict[str, Any]], subprocess.CompletedProcess[str]],
) -> None:
    """The validate fixture really reports a broken bootstrap (a dangling cluster)."""
    config = copy.deepcopy(bootstrap.sidecar_bootstrap(**_SIDECAR))  # type: ignore[arg-type]
    config["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"] = (
        "missing"
    )
    assert envoy_validate(config).returncode == 1
