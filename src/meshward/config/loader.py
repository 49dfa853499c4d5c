"""Load YAML sources into a `ConfigSet`: the entry point of config/.

Called through the facade (`meshward.config.load`, `meshward.config.load_text`) by the CLI
(`meshward validate`), the runner and the control plane's config watcher. Every problem becomes
a `Diagnostic`; a resource with an error is left out and loading goes on with the others.

Checks across documents happen here, in input order: a second resource with the same kind,
namespace and name (MW0112, pointing at the first) and a second MeshConfig (MW0118) are left
out, so the first one written wins, as it would when applying them to a cluster in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from meshward.config import document, kind, mesh_config, source
from meshward.config.networking import Gateway, VirtualService
from meshward.config.report import Report
from meshward.config.resources import (
    AdmissionPolicy,
    AuthorizationPolicy,
    ConfigSet,
    DestinationRule,
    ExceptionClaim,
    MeshConfig,
    Meta,
    PeerAuthentication,
    RequestAuthentication,
    Resource,
    Service,
    ServiceEntry,
    Sidecar,
    Workload,
)
from meshward.diagnostics import Diagnostic


def load(paths: Sequence[str | Path]) -> ConfigSet:
    """Read files and directories (recursively, `*.yaml`/`*.yml`, sorted) into a ConfigSet."""
    if isinstance(paths, str | Path):  # a bare path is a sequence of characters: a bug
        raise TypeError("load() takes a list of paths, not one path")
    assembly = _Assembly()
    report = Report("")
    for path in source.files(paths, report):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            unreadable = Report(str(path))
            unreadable.add("MW0101", 0, "", f"cannot read {path}: {error}")
            assembly.diagnostics.extend(unreadable.diagnostics)
            continue
        assembly.add_text(text, str(path))
    return assembly.result(prefix=report.diagnostics)


def load_text(text: str, file: str = "<string>") -> ConfigSet:
    """Read one YAML stream (one or more documents) into a ConfigSet; `file` names it."""
    assembly = _Assembly()
    assembly.add_text(text, file)
    return assembly.result()


class _Assembly:
    """Accumulates resources and diagnostics over the documents of one load, in order."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self.exceptions: list[ExceptionClaim] = []
        self.diagnostics: list[Diagnostic] = []
        self._first: dict[tuple[str, str, str], Meta] = {}
        self._mesh: MeshConfig | None = None
        self._order = 0

    def add_text(self, text: str, file: str) -> None:
        documents, failure = document.parse(text, file)
        for doc in documents:
            self._add(kind.decode(doc, self._order))
            self._order += 1
        if failure is not None:
            report = Report(file)
            report.add("MW0101", failure.line, "", f"invalid YAML: {failure.message}")
            self.diagnostics.extend(report.diagnostics)

    def _add(self, decoded: kind.Decoded) -> None:
        self.diagnostics.extend(decoded.diagnostics)
        resource = decoded.resource
        if resource is None or resource.meta is None:
            return
        meta = resource.meta
        report = Report(meta.file, meta.ref)
        if isinstance(resource, MeshConfig):
            if self._mesh is not None and self._mesh.meta is not None:
                first = self._mesh.meta
                report.add(
                    "MW0118",
                    meta.line,
                    "",
                    f"a config set has at most one MeshConfig; {first.ref} is at "
                    f"{first.file}:{first.line}",
                )
                self.diagnostics.extend(report.diagnostics)
                return
            self._mesh = resource
        key = (meta.kind, meta.namespace, meta.name)
        first_meta = self._first.get(key)
        if first_meta is not None:
            report.add(
                "MW0112",
                meta.line,
                "metadata.name",
                f"{meta.ref} is already defined at {first_meta.file}:{first_meta.line}",
            )
            self.diagnostics.extend(report.diagnostics)
            return
        self._first[key] = meta
        self.resources.append(resource)
        if decoded.exception is not None:
            reason, approved_by = decoded.exception
            self.exceptions.append(
                ExceptionClaim(meta.ref, reason, approved_by, meta.file, meta.line)
            )

    def result(self, prefix: Sequence[Diagnostic] = ()) -> ConfigSet:
        resources = self.resources
        return ConfigSet(
            mesh=self._mesh or mesh_config.DEFAULTS,
            services=tuple(r for r in resources if isinstance(r, Service)),
            workloads=tuple(r for r in resources if isinstance(r, Workload)),
            peer_authentications=tuple(r for r in resources if isinstance(r, PeerAuthentication)),
            destination_rules=tuple(r for r in resources if isinstance(r, DestinationRule)),
            diagnostics=(*prefix, *self.diagnostics),
            authorization_policies=tuple(
                r for r in resources if isinstance(r, AuthorizationPolicy)
            ),
            admission_policies=tuple(r for r in resources if isinstance(r, AdmissionPolicy)),
            exceptions=tuple(self.exceptions),
            gateways=tuple(r for r in resources if isinstance(r, Gateway)),
            virtual_services=tuple(r for r in resources if isinstance(r, VirtualService)),
            request_authentications=tuple(
                r for r in resources if isinstance(r, RequestAuthentication)
            ),
            service_entries=tuple(r for r in resources if isinstance(r, ServiceEntry)),
            sidecars=tuple(r for r in resources if isinstance(r, Sidecar)),
        )
