"""`meshward up`: the embedded runner — control plane, agent and every app on one machine.

Called by the CLI. Order of start-up: validate the config (refuse on errors), seed the config
store, allocate pod addresses, publish the mesh record, mint each sidecar pod's workload
token (the runner plays kubelet: it vouches for which identity a pod has), start the control
plane, the agent (which starts the Envoys) and the apps, then wait for every sidecar to be
ready. SIGHUP (sent by `meshward apply` after it stored a validated change) re-plans: new pods
start, removed ones stop, changed ones restart, and the control plane and agent reload.
SIGINT/SIGTERM stop everything by PID, apps first, then the agent (and its Envoys), then the
control plane.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from meshward import admission
from meshward.ca import pemfile, plugin
from meshward.ca.authority import CertificateAuthority
from meshward.ca.credentials import WorkloadTokens
from meshward.config import load
from meshward.config.resources import ConfigSet
from meshward.config.store import read_paths, write_store
from meshward.diagnostics import Diagnostic, has_errors
from meshward.errors import ConfigError, StateError
from meshward.model import allocate, build, origination, replicas, service_entries
from meshward.model.addressing import vips
from meshward.model.finding import finding
from meshward.model.ir import MeshModel, Network, OutboundService
from meshward.process import ProcessSpec, Supervised, inherited_env, pid_alive, python_module
from meshward.runner.network import NetworkMode, free_port
from meshward.runner.plan import PodPlan, outside_keys, plan_outside, plan_pods
from meshward.state import secrets
from meshward.state.layout import StateDir
from meshward.state.mesh import MeshRecord, PodRecord, read_mesh, write_mesh
from meshward.state.records import read_json, write_bytes, write_json

log = logging.getLogger("meshward.runner")

TOKEN_TTL = timedelta(days=7)


@dataclass
class Runner:
    state: StateDir
    network: NetworkMode
    apps: dict[str, Supervised] = field(default_factory=dict)
    plans: dict[str, PodPlan] = field(default_factory=dict)
    netns: dict[str, str] = field(default_factory=dict)  # ns/pod → its network namespace
    control_plane: Supervised | None = None
    agent: Supervised | None = None
    generation: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    _reload: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    # --- start-up ---------------------------------------------------------------------------

    @staticmethod
    def claim(state: StateDir) -> None:
        """Refuse to start a second mesh on one state directory; mark a killed one crashed."""
        record = read_json(state.runner)
        if record and record.get("pid") and pid_alive(int(record["pid"])):
            raise StateError(
                f"a mesh is already running from {state.root} (runner pid {record['pid']}); "
                "run `meshward down` first"
            )
        if record and record.get("phase") not in (None, "stopped", "crashed"):
            # The runner was killed: its records still say it runs. Say otherwise before the
            # new one starts, so nobody waiting for "ready" reads the dead run's state.
            write_json(state.runner, {**record, "phase": "crashed", "pid": None})

    @staticmethod
    def seed(state: StateDir, paths: list[Path]) -> tuple[Diagnostic, ...]:
        """Validate the user's paths, pass them through admission (docs/admission.md) and,
        if clean, make them the config store.

        Admission compares with the stored config when the state directory has one (a
        restart, and the detached runner re-seeding what its parent stored); a fresh mesh
        has no previous set.
        """
        config = load(paths)
        if has_errors(config.diagnostics):
            return config.diagnostics
        diagnostics = (*config.diagnostics, *admission.admit(config, Runner.stored(state)))
        if has_errors(diagnostics):
            return diagnostics
        write_store(state.config, read_paths(paths))
        return diagnostics

    @staticmethod
    def stored(state: StateDir) -> ConfigSet | None:
        """The config store as a ConfigSet, or None if there is none (or it does not load)."""
        if not state.config.is_dir() or not any(state.config.iterdir()):
            return None
        config = load([state.config])
        return None if has_errors(config.diagnostics) else config

    @staticmethod
    def install_ca(state: StateDir, source: Path, trust_domain: str) -> None:
        """Use the Istio plug-in CA files in `source` (ca-cert.pem, ca-key.pem,
        root-cert.pem, cert-chain.pem) for this mesh: checked first, then copied into the
        state directory (key 0600). A state directory that already has a different CA is
        refused: changing the root of a mesh is a root rotation, not a restart."""
        now = datetime.now(UTC)
        CertificateAuthority.load_or_create(source, trust_domain=trust_domain, now=now)
        existing = [name for name in plugin.FILES if (state.ca / name).exists()]
        if existing:
            same = all(
                (state.ca / name).read_bytes() == (source / name).read_bytes()
                for name in plugin.FILES
                if (state.ca / name).exists()
            )
            if not same:
                raise StateError(
                    f"{state.ca} already holds another CA; use a new --state-dir "
                    "(changing a mesh's root is a root rotation)"
                )
            return
        state.ca.mkdir(parents=True, exist_ok=True)
        for name in plugin.FILES:
            mode = pemfile.PRIVATE if name == plugin.CA_KEY else pemfile.PUBLIC
            pemfile.write_atomic(state.ca / name, (source / name).read_bytes(), mode=mode)

    async def run(self, on_ready: asyncio.Future[None] | None = None) -> None:
        self.network.check()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        previous = read_json(self.state.runner) or {}
        # Keep the control plane's ports across runs of one state dir, when still free.
        self.ports = {
            name: int(previous.get("ports", {}).get(name) or free_port()) for name in ("xds", "ca")
        }
        self._write_runner("starting")
        try:
            self.network.prepare()
            config, model = self._plan()
            self._mint_tokens(config, model)
            self.control_plane = Supervised(
                self._service("control-plane", "meshward.server"), on_exit=None
            )
            await self.control_plane.start()
            self.agent = Supervised(self._service("agent", "meshward.agent"))
            await self.agent.start()
            await self._sync_apps()
            self._write_runner("running")
            if on_ready is not None and not on_ready.done():
                on_ready.set_result(None)
            while not self._stop.is_set():
                reload = asyncio.create_task(self._reload.wait())
                stop = asyncio.create_task(self._stop.wait())
                await asyncio.wait({reload, stop}, return_when="FIRST_COMPLETED")
                reload.cancel()
                stop.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self.reload()
        finally:
            await self.shutdown()

    def _service(self, name: str, module: str) -> ProcessSpec:
        return ProcessSpec(
            name=name,
            argv=python_module(module, "--state-dir", str(self.state.root)),
            env=inherited_env({"PYTHONUNBUFFERED": "1"}),
            log_path=self.state.logs / f"{name}.log",
        )

    def _plan(self) -> tuple[ConfigSet, MeshModel]:
        """Config store + previous addresses → model → published mesh record."""
        config = load([self.state.config])
        if has_errors(config.diagnostics):
            raise ConfigError("\n".join(str(d) for d in config.diagnostics))
        previous = read_mesh(self.state)
        addresses = allocate(
            replicas(config.workloads), previous.addresses() if previous else {}, self.network.pool
        )
        network = Network()
        if self.network.name == "netns":
            keep = dict(previous.vips) if previous and previous.network == "netns" else {}
            names = [(s.meta.namespace, s.meta.name) for s in config.services]
            names += service_entries.auto_allocated(config.service_entries)
            network = Network(
                "netns",
                tuple(sorted(vips(names, keep).items())),
                self.network.record()["netns"]["prefix"],
            )
        model, diagnostics = build(config, addresses, network)
        if has_errors(diagnostics):
            raise ConfigError("\n".join(str(d) for d in diagnostics))
        self.netns = self.network.place(model)
        outside = self.network.place_outside(outside_keys(config))
        self.netns |= {str(key): netns for key, (netns, _) in outside.items() if netns}
        if any(w.hostnames for w in config.workloads):
            # The outside hosts' names resolve to where they were just placed: build again
            # with them (the first build checked the config before anything was placed).
            placed = tuple(sorted((key, ip) for key, (_, ip) in outside.items()))
            network = dataclasses.replace(network, outside=placed)
            model, _ = build(config, addresses, network)
        plans = plan_pods(config, model)
        outside_plans = plan_outside(
            config, {key: ip for key, (_, ip) in outside.items()}, str(self.state.root.resolve())
        )
        self.generation += 1
        identities = {p.key: p.identity.uri if p.identity else "" for p in model.pods}
        ports = {p.key: tuple(port.port for port in p.ports) for p in model.pods}
        credentials = {
            proxy.pod.key: origination_credentials(proxy.outbound) for proxy in model.proxies
        }
        write_mesh(
            self.state,
            MeshRecord(
                generation=self.generation,
                trust_domain=model.trust_domain,
                cert_ttl_seconds=model.cert_ttl_seconds,
                pods=tuple(
                    PodRecord(
                        namespace=plan.namespace,
                        workload=plan.workload,
                        replica=pod.key.replica,
                        pod=plan.pod,
                        sidecar=plan.sidecar,
                        node_id=plan.node_id,
                        identity=identities[pod.key],
                        pod_ip=plan.pod_ip,
                        app_ip=plan.app_ip,
                        ports=ports[pod.key],
                        argv=plan.argv,
                        env=plan.env,
                        gateway=pod.gateway,
                        netns=self.netns.get(str(pod.key), ""),
                        credentials=credentials.get(pod.key, ()),
                    )
                    for plan, pod in zip(plans, model.pods, strict=True)
                )
                + tuple(
                    PodRecord(
                        namespace=plan.namespace,
                        workload=plan.workload,
                        replica=int(plan.pod.rsplit("-", 1)[1]),
                        pod=plan.pod,
                        sidecar=False,
                        node_id="",
                        identity="",
                        pod_ip=plan.pod_ip,
                        app_ip=plan.app_ip,
                        ports=(),
                        argv=plan.argv,
                        env=plan.env,
                        netns=self.netns.get(f"{plan.namespace}/{plan.pod}", ""),
                        outside=True,
                    )
                    for plan in outside_plans
                ),
                network=network.mode,
                vips=network.vips,
            ),
        )
        self.plans = {f"{p.namespace}/{p.pod}": p for p in (*plans, *outside_plans)}
        return config, model

    def _mint_tokens(self, config: ConfigSet, model: MeshModel) -> None:
        now = datetime.now(UTC)
        # The CA's files are made here if missing, so the runner can vouch for pods before
        # the control plane (which loads the same files) has started.
        CertificateAuthority.load_or_create(
            self.state.ca, trust_domain=config.mesh.trust_domain, now=now
        )
        tokens = WorkloadTokens.load_or_create(self.state.ca)
        for pod in model.pods:
            if pod.identity is None:
                continue
            token = tokens.issue_workload_token(
                pod.identity, node="localhost", now=now, ttl=TOKEN_TTL
            )
            directory = self.state.pod_dir(pod.key.namespace, pod.key.pod_name)
            write_bytes(directory / "token", token.encode(), mode=0o600)

    async def _sync_apps(self) -> None:
        """Start, stop or restart app processes so they match `self.plans`."""
        for name in sorted(set(self.apps)):
            plan = self.plans.get(name)
            running = self.apps[name]
            if (
                plan is None
                or running.spec.argv != self._app_argv(name, plan)
                or dict(running.spec.env) != (_app_env(plan))
            ):
                log.info("stopping %s", name)
                await self.apps.pop(name).stop()
        for name, plan in sorted(self.plans.items()):
            if name in self.apps or not plan.argv:
                continue  # running, or a gateway pod: its Envoy is the pod (the agent's)
            app = Supervised(
                ProcessSpec(
                    name=name,
                    argv=self._app_argv(name, plan),
                    env=_app_env(plan),
                    log_path=self.state.pod_log(plan.namespace, plan.pod),
                )
            )
            await app.start()
            self.apps[name] = app

    def _app_argv(self, name: str, plan: PodPlan) -> tuple[str, ...]:
        return self.network.app_argv(self.netns.get(name, ""), plan.argv)

    async def reload(self) -> None:
        try:
            config, model = self._plan()
        except ConfigError as error:
            log.error("reload refused, running configuration kept:\n%s", error)
            return
        self._mint_tokens(config, model)
        for process in (self.control_plane, self.agent):
            if process is not None and process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
        await self._sync_apps()
        self._write_runner("running")

    async def shutdown(self) -> None:
        self._write_runner("stopping")
        await asyncio.gather(*(app.stop() for app in self.apps.values()))
        self.apps.clear()
        if self.agent is not None:
            await self.agent.stop(timeout=15)
        if self.control_plane is not None:
            await self.control_plane.stop()
        self.network.teardown()
        self._write_runner("stopped", pid=None)

    def _write_runner(self, phase: str, pid: int | None = -1) -> None:
        write_json(
            self.state.runner,
            {
                "pid": os.getpid() if pid == -1 else pid,
                "phase": phase,
                "network": self.network.name,
                "pool": self.network.pool,
                "ports": self.ports,
                "generation": self.generation,
                "updated": time.time(),
                "limitations": list(self.network.limitations()),
                **self.network.record(),
            },
        )


def missing_credentials(state: StateDir, config: ConfigSet) -> tuple[Diagnostic, ...]:
    """MW0455 for each Gateway server whose credentialName is not in the secret store: its
    handshakes fail until `meshward secret create tls NAME` (the gateway picks it up live)."""
    stored = set(secrets.names_in(state))
    found = []
    for gateway in config.gateways:
        for index, server in enumerate(gateway.servers):
            name = server.tls.credential_name if server.tls else ""
            if name and name not in stored:
                found.append(
                    finding(
                        "MW0455",
                        gateway.meta,
                        f"spec.servers[{index}].tls.credentialName",
                        f"no secret {name} in {state.root / 'secrets'}",
                    )
                )
    return tuple(found)


def origination_credentials(outbound: Iterable[OutboundService]) -> tuple[str, ...]:
    """The secret-store credentials a sidecar originates TLS with (sorted, distinct)."""
    return tuple(
        sorted(
            {
                service.origination.credential
                for service in outbound
                if service.origination is not None and service.origination.credential
            }
        )
    )


def missing_origination_credentials(state: StateDir, config: ConfigSet) -> tuple[Diagnostic, ...]:
    """MW0470 for each DestinationRule credentialName that the secret store lacks, or that
    lacks the CA the rule verifies the server with (a stored secret always holds a key
    pair, for MUTUAL). An error, unlike
    a Gateway's MW0455: without it the sidecar could not verify the server or present its
    certificate, and the rule exists to do both (fail closed)."""
    found = []
    for rule in config.destination_rules:
        for path, name, needs_ca in origination.credential_needs(rule):
            stored = secrets.load(state, name)
            problem = ""
            if stored is None:
                problem = f"no secret {name} in {state.root / 'secrets'}"
            elif needs_ca and not stored.ca:
                problem = f"secret {name} has no CA (--cacert) to verify the server with"
            if problem:
                found.append(finding("MW0470", rule.meta, path, problem))
    return tuple(found)


def _app_env(plan: PodPlan) -> dict[str, str]:
    base = inherited_env(drop=("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"))
    return base | {"PYTHONUNBUFFERED": "1"} | dict(plan.env)
