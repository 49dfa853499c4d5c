"""Kubernetes name rules: subdomains, label keys and values, port names, env names."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from meshward.config import names

CASES: list[tuple[Callable[[str], bool], str, bool]] = [
    (names.is_dns_subdomain, "a.b-c.d", True),
    (names.is_dns_subdomain, "a" * 253, True),
    (names.is_dns_subdomain, "a" * 254, False),
    (names.is_dns_subdomain, "A.b", False),
    (names.is_dns_subdomain, "a..b", False),
    (names.is_dns_subdomain, "-a", False),
    (names.is_label_key, "app", True),
    (names.is_label_key, "app.kubernetes.io/name", True),
    (names.is_label_key, "App_Name.x", True),
    (names.is_label_key, "a/b/c", False),
    (names.is_label_key, "/a", False),
    (names.is_label_key, "a" * 64, False),
    (names.is_label_key, "", False),
    (names.is_label_value, "", True),
    (names.is_label_value, "v1.2_x", True),
    (names.is_label_value, "-x", False),
    (names.is_label_value, "x" * 64, False),
    (names.is_port_name, "http-web", True),
    (names.is_port_name, "grpc", True),
    (names.is_port_name, "8080", False),
    (names.is_port_name, "a--b", False),
    (names.is_port_name, "http_web", False),
    (names.is_port_name, "a" * 16, False),
    (names.is_env_name, "LOG_LEVEL", True),
    (names.is_env_name, "my.var-1", True),
    (names.is_env_name, "1VAR", False),
    (names.is_env_name, "A=B", False),
]


@pytest.mark.parametrize(("check", "value", "valid"), CASES)
def test_name_rule(check: Callable[[str], bool], value: str, valid: bool) -> None:
    assert check(value) is valid
