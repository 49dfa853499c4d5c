"""`metadata` → `resources.Meta` (plus the resource's labels), and the `Kind ns/name` ref.

Called by `meshward.config.kind` for every document of a supported kind. Kubernetes rules:
the name is a DNS-1123 subdomain (a label for kinds whose name becomes a DNS label), the
namespace a DNS-1123 label defaulting to "default". Fields a `kubectl get -o yaml` export
carries (uid, resourceVersion, ...) are accepted and ignored so exported YAML loads unchanged.
"""

from __future__ import annotations

from typing import Literal

from meshward.config import document, names
from meshward.config.fields import Fields
from meshward.config.resources import Labels, Meta

NameRule = Literal["label", "subdomain"]
DEFAULT_NAMESPACE = "default"

_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "managedFields",
    "ownerReferences",
    "finalizers",
)


def ref(kind: str, root: document.Mapping) -> str:
    """`Kind ns/name` read leniently (for diagnostics), or "" when there is no usable name."""
    meta = root.get("metadata")
    if meta is None or not isinstance(meta.value, document.Mapping):
        return ""
    name = _text(meta.value.get("name"))
    namespace = _text(meta.value.get("namespace")) or DEFAULT_NAMESPACE
    return f"{kind} {namespace}/{name}" if name else ""


def _text(entry: document.Entry | None) -> str:
    if entry is not None and isinstance(entry.value, document.Scalar):
        return entry.value.value if isinstance(entry.value.value, str) else ""
    return ""


def parse(
    fields: Fields, *, api_version: str, kind: str, rule: NameRule, line: int, order: int
) -> tuple[Meta | None, Labels]:
    """The resource's Meta (None if name or namespace is invalid) and its labels.

    `order` is the document's index in the whole load: Istio's "oldest wins" falls back to
    it when `creationTimestamp` is absent (both sort as "").
    """
    name = _name(fields, rule)
    namespace = fields.string("namespace")
    if namespace is not None and not names.is_dns_label(namespace):
        fields.disallow("namespace", f"{namespace!r} is not a DNS-1123 label", code="MW0111")
        namespace = None
    resource_labels = fields.labels("labels") or ()
    fields.string_map("annotations")
    created = fields.string("creationTimestamp")
    fields.accept(*_SERVER_FIELDS)
    fields.finish()
    if name is None or (namespace is None and fields.has("namespace")):
        return None, resource_labels
    meta = Meta(
        api_version=api_version,
        kind=kind,
        name=name,
        namespace=namespace or DEFAULT_NAMESPACE,
        file=fields.report.file,
        line=line,
        order=(created or "", order),
    )
    return meta, resource_labels


def _name(fields: Fields, rule: NameRule) -> str | None:
    entry = fields.take("name")
    if entry is None:
        fields.disallow("name", "metadata.name is required", code="MW0110")
        return None
    value = entry.value.value if isinstance(entry.value, document.Scalar) else None
    if not isinstance(value, str):
        fields.wrong_type(entry, "a string")
        return None
    valid = names.is_dns_label(value) if rule == "label" else names.is_dns_subdomain(value)
    if not valid:
        shape = "DNS-1123 label" if rule == "label" else "DNS-1123 subdomain"
        fields.disallow("name", f"{value!r} is not a {shape}", code="MW0110")
        return None
    return value
