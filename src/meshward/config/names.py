"""Shape checks for names the Kubernetes and Istio APIs constrain: object names, label keys and
values, port names, environment variable names.

Called by `meshward.config.fields` and the kind parsers. The rules are Kubernetes' own
(apimachinery `validation.go`), so a name accepted here is accepted by a cluster too.
"""

from __future__ import annotations

import re

from meshward.identity import is_dns_label

# RFC 1123 subdomain: dot-separated labels, at most 253 characters (k8s IsDNS1123Subdomain).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Label name part and label value: alphanumerics at both ends, `-_.` inside, at most 63.
_LABEL_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# IANA service name (RFC 6335 §5.1): at most 15, lowercase alphanumerics and inner dashes,
# at least one letter, no double dash. Kubernetes requires it for named ports.
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes IsEnvVarName: C identifier characters plus `-` and `.`, not starting with a digit.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def is_dns_subdomain(value: str) -> bool:
    """True if `value` is a DNS-1123 subdomain (the name rule of most Kubernetes objects)."""
    return len(value) <= 253 and bool(_SUBDOMAIN.match(value))


def is_label_key(value: str) -> bool:
    """True for `[prefix/]name` with a DNS subdomain prefix and a 1-63 character name."""
    prefix, slash, name = value.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(_LABEL_PART.match(name))


def is_label_value(value: str) -> bool:
    """True for "" or a 1-63 character label value."""
    return value == "" or (len(value) <= 63 and bool(_LABEL_PART.match(value)))


def is_port_name(value: str) -> bool:
    """True if `value` is an IANA service name, the rule for Kubernetes port names."""
    return (
        len(value) <= 15
        and bool(_PORT_NAME.match(value))
        and "--" not in value
        and any(c.isalpha() for c in value)
    )


def is_env_name(value: str) -> bool:
    """True if `value` is a valid Kubernetes environment variable name."""
    return bool(_ENV_NAME.match(value))


__all__ = [
    "is_dns_label",
    "is_dns_subdomain",
    "is_env_name",
    "is_label_key",
    "is_label_value",
    "is_port_name",
]
