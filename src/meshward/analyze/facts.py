"""What every analyzer check reads: the config set, the mesh model and the live facts.

Built once by `meshward.analyze.analysis.analyze`; each check in analyze/ is a function of
`Facts` alone (pure, no I/O). `finding` makes a Diagnostic whose level comes from the catalog,
so a code's severity is decided in one place (as model/finding.py does for MW02xx).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshward.config.resources import ConfigSet, Meta
from meshward.diagnostics import Diagnostic, Location, catalog
from meshward.model.ir import MeshModel, PodKey, ProxyModel

DEFAULT_MAX_CERT_TTL = 24 * 3600


@dataclass(frozen=True, slots=True)
class LiveFacts:
    """What only a running mesh knows: its network mode (runner.json `network`)."""

    network: str
    source: str  # the runner.json path, where findings about the mode point


@dataclass(frozen=True, slots=True)
class Facts:
    """The input of every check."""

    config: ConfigSet
    model: MeshModel
    live: LiveFacts | None = None
    max_cert_ttl_seconds: int = DEFAULT_MAX_CERT_TTL
    ca_health: tuple[Diagnostic, ...] = ()  # certificates.ca_health, read by the caller
    _metas: dict[str, Meta] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        config = self.config
        metas = (
            *(w.meta for w in config.workloads),
            *(p.meta for p in config.peer_authentications),
            *(r.meta for r in config.destination_rules),
            *(a.meta for a in config.authorization_policies),
            *(e.meta for e in config.service_entries),
        )
        self._metas.update((meta.ref, meta) for meta in metas)

    def meta(self, ref: str) -> Meta | None:
        """The resource `Kind namespace/name`, if the config set has it."""
        return self._metas.get(ref)

    def workload_meta(self, key: PodKey) -> Meta | None:
        return self.meta(f"Workload {key.namespace}/{key.workload}")

    def sidecars(self) -> tuple[ProxyModel, ...]:
        """One proxy per workload (replicas share config), in model order."""
        seen: set[tuple[str, str]] = set()
        picked: list[ProxyModel] = []
        for proxy in self.model.proxies:
            key = (proxy.pod.key.namespace, proxy.pod.key.workload)
            if key not in seen:
                seen.add(key)
                picked.append(proxy)
        return tuple(picked)

    def mesh_resource(self) -> tuple[str, Location]:
        """Where mesh-wide findings point: the MeshConfig, or `mesh` when defaults apply."""
        meta = self.config.mesh.meta
        if meta is None:
            return "MeshConfig (defaults)", Location()
        return meta.ref, Location(meta.file, meta.line)


def at(meta: Meta | None, field_path: str = "") -> Location:
    """The location of `field_path` in the resource `meta` (empty when unknown)."""
    if meta is None:
        return Location(field=field_path)
    return Location(meta.file, meta.line, field_path)


def finding(code: str, resource: str, location: Location, message: str) -> Diagnostic:
    """A diagnostic with the catalog's level for `code`."""
    return Diagnostic(code, catalog.lookup(code).level, resource, location, message)
