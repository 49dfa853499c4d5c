"""The table of kinds meshward knows, and the decoding of one document into one resource.

Called by `meshward.config.loader` for every document. A document is decoded in a fixed
order: `apiVersion`/`kind` (MW0103, then MW0104 for a kind nobody knows), the structural
problems found while reading the YAML (MW0124), `metadata`, then the kind's own parser for
`spec`. Kinds that Istio defines but meshward does not implement yet are recognised and
reported, never silently ignored: a security kind is an error (fail closed: a user who writes
a security policy must not get a mesh that ignores it, MW0127); any other is a warning
(MW0105).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from meshward.config import (
    admission_policy,
    authorization_policy,
    destination_rule,
    document,
    gateway,
    mesh_config,
    metadata,
    peer_authentication,
    request_authentication,
    service,
    service_entry,
    sidecar,
    virtual_service,
    workload,
)
from meshward.config.fields import Fields
from meshward.config.report import Report
from meshward.config.resources import Labels, Meta, Resource
from meshward.diagnostics import Diagnostic

Parser = Callable[[Fields, Meta, Labels], Resource | None]
AnnotatedParser = Callable[[Fields, Meta, Labels, document.Mapping | None], Resource | None]
"""A parser that also reads `metadata.annotations` (AuthorizationPolicy: istio.io/dry-run)."""

_NETWORKING = ("networking.istio.io/v1", "networking.istio.io/v1beta1")
_NETWORKING_ALL = (*_NETWORKING, "networking.istio.io/v1alpha3")
_SECURITY = ("security.istio.io/v1", "security.istio.io/v1beta1")
_MESHWARD = ("meshward.io/v1alpha1",)


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind and the apiVersions it is served under.

    `parse` (or `parse_annotated`, for kinds whose annotations carry meaning) is None for a
    recognised kind that is not supported yet; `unsupported_code` says how loudly that is
    reported. `name_rule` is the shape metadata.name must have.
    """

    kind: str
    api_versions: tuple[str, ...]
    parse: Parser | None = None
    unsupported_code: str = ""
    name_rule: metadata.NameRule = "subdomain"
    parse_annotated: AnnotatedParser | None = None


KINDS: tuple[Kind, ...] = (
    # Service and Workload names become DNS labels (`<name>.<ns>.svc`, pod `<name>-<n>`).
    Kind("Service", ("v1",), service.parse, name_rule="label"),
    Kind("Workload", _MESHWARD, workload.parse, name_rule="label"),
    Kind("MeshConfig", _MESHWARD, mesh_config.parse),
    Kind("PeerAuthentication", _SECURITY, peer_authentication.parse),
    Kind("DestinationRule", _NETWORKING_ALL, destination_rule.parse),
    Kind("AuthorizationPolicy", _SECURITY, parse_annotated=authorization_policy.parse),
    Kind("AdmissionPolicy", _MESHWARD, admission_policy.parse),
    Kind("RequestAuthentication", _SECURITY, request_authentication.parse),
    Kind("Gateway", _NETWORKING_ALL, gateway.parse),
    Kind("VirtualService", _NETWORKING_ALL, virtual_service.parse),
    Kind("ServiceEntry", _NETWORKING_ALL, service_entry.parse),
    Kind("Sidecar", _NETWORKING_ALL, sidecar.parse),
    Kind("WorkloadEntry", _NETWORKING_ALL, unsupported_code="MW0105"),
    Kind("WorkloadGroup", _NETWORKING_ALL, unsupported_code="MW0105"),
    Kind("EnvoyFilter", ("networking.istio.io/v1alpha3",), unsupported_code="MW0105"),
    Kind("ProxyConfig", ("networking.istio.io/v1beta1",), unsupported_code="MW0105"),
    Kind("Telemetry", ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"), None, "MW0105"),
    Kind("WasmPlugin", ("extensions.istio.io/v1alpha1",), unsupported_code="MW0105"),
)
_BY_VERSION_KIND = {(v, k.kind): k for k in KINDS for v in k.api_versions}
_BY_KIND = {k.kind: k for k in KINDS}


def find(api_version: str, kind: str) -> Kind | None:
    return _BY_VERSION_KIND.get((api_version, kind))


# The exception annotations admission/ reads (docs/admission.md); kept for every kind.
EXCEPTION_ANNOTATION = "meshward.io/exception"
APPROVED_BY_ANNOTATION = "meshward.io/exception-approved-by"


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one document became: a resource (None if left out) and its diagnostics.

    `exception` is the resource's (reason, approved-by) exception annotations, None if it
    has neither (the loader turns it into a `resources.ExceptionClaim`).
    """

    resource: Resource | None
    diagnostics: tuple[Diagnostic, ...]
    exception: tuple[str, str] | None = None


def decode(doc: document.Document, order: int) -> Decoded:
    """Decode one document; `order` is its index among all documents of the load."""
    report = Report(doc.file)
    resource = _decode(doc, order, report)
    # Reported in file order, whatever order the parser read the fields in.
    diagnostics = tuple(sorted(report.diagnostics, key=lambda d: d.location.line))
    return Decoded(None if report.failed else resource, diagnostics, _exception(doc))


def _decode(doc: document.Document, order: int, report: Report) -> Resource | None:
    root = doc.root
    if not isinstance(root, document.Mapping):
        report.add("MW0102", root.line, "", "a resource document must be a YAML mapping")
        return None
    top = Fields(root, "", report)
    api_version = top.string("apiVersion")
    kind_name = top.string("kind")
    report.resource = metadata.ref(kind_name, root) if kind_name else ""
    for problem in doc.problems:
        report.add("MW0124", problem.line, problem.field, problem.message)
    if not api_version or not kind_name:
        for key, value in (("apiVersion", api_version), ("kind", kind_name)):
            if value == "" or (value is None and not top.has(key)):
                top.disallow(key, f"{key} is required", code="MW0103")
        return None
    entry = find(api_version, kind_name)
    if entry is None:
        top.disallow("kind", _unknown(api_version, kind_name), code="MW0104")
        return None
    if entry.parse is None and entry.parse_annotated is None:
        top.disallow(
            "kind", f"{api_version} {kind_name} is not supported yet", code=entry.unsupported_code
        )
        return None
    # A present but malformed metadata or spec was reported (MW0108); reading it as empty
    # would only add "required field" noise, so such a document stops after its top level.
    meta_fields = top.mapping("metadata")
    spec = top.mapping("spec")
    top.accept("status")  # written by controllers, never read by them
    top.finish()
    if (meta_fields is None and top.has("metadata")) or (spec is None and top.has("spec")):
        return None
    meta, labels = metadata.parse(
        meta_fields or Fields.empty(top.line_of("metadata"), "metadata", report),
        api_version=api_version,
        kind=kind_name,
        rule=entry.name_rule,
        line=root.line,
        order=order,
    )
    spec = spec or Fields.empty(top.line_of("spec"), "spec", report)
    # Without a usable name the spec is still read, so every problem is reported in one go.
    named = meta or _placeholder(api_version, kind_name, doc)
    if entry.parse_annotated is not None:
        resource = entry.parse_annotated(spec, named, labels, _annotations(root))
    else:
        assert entry.parse is not None  # checked above
        resource = entry.parse(spec, named, labels)
    return resource if meta is not None else None


def _annotations(root: document.Mapping) -> document.Mapping | None:
    """The raw `metadata.annotations` mapping (its values were type-checked by metadata)."""
    meta = root.get("metadata")
    if meta is None or not isinstance(meta.value, document.Mapping):
        return None
    found = meta.value.get("annotations")
    return found.value if found is not None and isinstance(found.value, document.Mapping) else None


def _exception(doc: document.Document) -> tuple[str, str] | None:
    if not isinstance(doc.root, document.Mapping):
        return None
    annotations = _annotations(doc.root)
    if annotations is None:
        return None
    found = [
        _string(annotations.get(key)) for key in (EXCEPTION_ANNOTATION, APPROVED_BY_ANNOTATION)
    ]
    if found == [None, None]:
        return None
    return (found[0] or "", found[1] or "")


def _string(entry: document.Entry | None) -> str | None:
    if entry is None or not isinstance(entry.value, document.Scalar):
        return None
    return entry.value.value if isinstance(entry.value.value, str) else None


def _placeholder(api_version: str, kind_name: str, doc: document.Document) -> Meta:
    return Meta(api_version, kind_name, "", "", doc.file, doc.root.line, ("", -1))


def _unknown(api_version: str, kind_name: str) -> str:
    known = _BY_KIND.get(kind_name)
    if known is not None:
        return f"{kind_name} is served as {', '.join(known.api_versions)}, not {api_version}"
    lowered = {k.lower(): k for k in _BY_KIND}
    close = difflib.get_close_matches(kind_name.lower(), list(lowered), n=1, cutoff=0.6)
    hint = (
        f"; did you mean {lowered[close[0]]} ({_BY_KIND[lowered[close[0]]].api_versions[0]})?"
        if close
        else ""
    )
    return f"unknown kind {api_version} {kind_name}{hint}"
