"""One sidecar on this node: its private key, certificate, SDS server and Envoy process.

Owned by the agent (`meshward.agent.agent`), one per sidecar pod. The private key is made
here and never leaves the process: the CSR goes to the CA, the certificate and key go to
Envoy only over the pod's SDS Unix socket. Rotation happens at half-life (Istio's default)
with a fresh key; Envoy applies the new secret to new connections without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from meshward.agent.ca_client import request_certificate
from meshward.agent.keys import key_pem, new_private_key
from meshward.agent.sds import SdsServer
from meshward.ca.rotation import next_rotation
from meshward.model.ir import credential_sds_name
from meshward.netns import capture, enter
from meshward.process import ProcessSpec, Supervised
from meshward.state import secrets as secret_store
from meshward.state.layout import StateDir
from meshward.state.mesh import PodRecord
from meshward.xds.bootstrap import sidecar_bootstrap
from meshward.xds.envoy_binary import envoy_path
from meshward.xds.secret import tls_certificate_secret, trust_bundle_secret

log = logging.getLogger("meshward.agent")


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What every sidecar of this node shares: where the control plane is, and the trust root."""

    state: StateDir
    xds: tuple[str, int]
    ca_target: str
    root_pem: bytes
    cert_ttl_seconds: int
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class Sidecar:
    pod: PodRecord
    context: AgentContext
    sds: SdsServer | None = None
    envoy: Supervised | None = None
    serial: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    rotations: int = 0
    last_error: str = ""
    credentials: tuple[str, ...] = ()  # secret-store credentials served (gateway pods)
    _identity: dict[str, secret_pb2.Secret] = field(default_factory=dict)
    _rotator: asyncio.Task[None] | None = None

    @property
    def directory(self) -> Path:
        return self.context.state.pod_dir(self.pod.namespace, self.pod.pod)

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        socket = self.context.state.sds_socket(self.pod.namespace, self.pod.pod)
        socket.parent.mkdir(parents=True, exist_ok=True)
        self.sds = SdsServer(str(socket))
        await self.sds.start()
        await self._issue()
        bootstrap = sidecar_bootstrap(
            node_id=self.pod.node_id,
            cluster=f"{self.pod.workload}.{self.pod.namespace}",
            admin=(self.pod.pod_ip, 15000),
            xds=self.context.xds,
            sds_socket=str(socket),
            metadata={"NAMESPACE": self.pod.namespace, "WORKLOAD_NAME": self.pod.workload},
        )
        path = self.directory / "bootstrap.json"
        path.write_text(json.dumps(bootstrap, indent=2))
        argv = envoy_argv(path)
        group = None
        if self.pod.netns:
            # netns mode: Envoy runs inside its pod, with GID 1337 so that the pod's capture
            # rules let its own traffic out (netns/capture.py). The UID stays root's, so it
            # still reads the agent's 0600 SDS socket and its bootstrap.
            argv = enter.argv(self.pod.netns, argv)
            group = capture.SIDECAR_ID
        self.envoy = Supervised(
            ProcessSpec(
                name=f"envoy {self.pod.namespace}/{self.pod.pod}",
                argv=argv,
                env={},
                log_path=self.context.state.sidecar_log(self.pod.namespace, self.pod.pod),
                group=group,
            )
        )
        await self.envoy.start()
        self._rotator = asyncio.create_task(self._rotate_forever())

    async def _issue(self) -> None:
        """Make a fresh key, get it certified, and hand both to Envoy over SDS."""
        token = (self.directory / "token").read_text().strip()
        key = new_private_key()
        issued = await request_certificate(
            self.context.ca_target,
            root_pem=self.context.root_pem,
            token=token,
            key=key,
            ttl_seconds=self.context.cert_ttl_seconds,
        )
        leaf = x509.load_pem_x509_certificate(issued.chain_pem)
        self._identity = {
            "default": tls_certificate_secret("default", issued.chain_pem, key_pem(key)),
            "ROOTCA": trust_bundle_secret("ROOTCA", issued.root_pem),
        }
        self.refresh_secrets()
        self.serial = format(leaf.serial_number, "x")
        # Rotation is timed from when the certificate arrived, not from its notBefore: the CA
        # backdates notBefore for clock skew, which with short TTLs would put the half-life
        # in the past and rotate in a loop.
        self.not_before = self.context.now()
        self.not_after = leaf.not_valid_after_utc
        log.info("%s: certificate %s until %s", self.pod.pod, self.serial, self.not_after)

    def refresh_secrets(self) -> None:
        """Serve the identity and the usable secret-store credentials this pod may use
        (`credential/<name>`, `credential/<name>-cacert`). Called after each issue and on every
        agent round, so a replaced credential reaches Envoy over SDS within about a second;
        Envoy applies it to new handshakes without a restart."""
        if self.sds is None or not self._identity:
            return
        served = dict(self._identity)
        credentials = []
        # A gateway serves every credential (its Gateways name them); a sidecar only those its
        # DestinationRules originate TLS with (least privilege: the mesh record lists them).
        if self.pod.gateway:
            wanted = secret_store.names_in(self.context.state)
        else:
            wanted = self.pod.credentials
        if wanted:
            now = self.context.now()
            for name in wanted:
                stored = secret_store.load(self.context.state, name)
                if stored is None or not secret_store.usable(stored, now):
                    continue  # half-written or invalid: keep serving nothing new for it
                credentials.append(name)
                sds_name = credential_sds_name(name)
                served[sds_name] = tls_certificate_secret(sds_name, stored.cert, stored.key)
                if stored.ca:
                    ca_name = credential_sds_name(f"{name}-cacert")
                    served[ca_name] = trust_bundle_secret(ca_name, stored.ca, stored.crl)
        self.credentials = tuple(credentials)
        self.sds.set_secrets(None, served)

    async def _rotate_forever(self) -> None:
        while True:
            assert self.not_before is not None and self.not_after is not None
            due = next_rotation(self.not_before, self.not_after)
            delay = max((due - self.context.now()).total_seconds(), 1.0)
            await asyncio.sleep(delay)
            try:
                await self._issue()
                self.rotations += 1
                self.last_error = ""
            except Exception as error:  # keep the current cert; retry soon
                self.last_error = f"rotation failed: {error}"
                log.warning("%s: %s", self.pod.pod, self.last_error)
                await asyncio.sleep(5)

    def ready(self) -> bool:
        """Envoy's admin /ready answers 200 once its initial xDS config is applied."""
        url = f"http://{self.pod.pod_ip}:15000/ready"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def status(self) -> dict[str, Any]:
        return {
            "namespace": self.pod.namespace,
            "pod": self.pod.pod,
            "identity": self.pod.identity,
            "envoy_pid": self.envoy.pid if self.envoy else None,
            "envoy_restarts": self.envoy.restarts if self.envoy else 0,
            "cert_serial": self.serial,
            "cert_not_after": self.not_after.isoformat() if self.not_after else "",
            "rotations": self.rotations,
            "last_error": self.last_error,
            "gateway": self.pod.gateway,
            "credentials": list(self.credentials),
        }

    async def stop(self) -> None:
        if self._rotator is not None:
            self._rotator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rotator
        if self.envoy is not None:
            await self.envoy.stop()
        if self.sds is not None:
            await self.sds.stop()


def envoy_argv(bootstrap: Path) -> tuple[str, ...]:
    """How every sidecar Envoy runs: one worker (sidecars share two cores with their apps),
    no hot restart (no shared-memory base id to collide on), immediate drain so a listener
    update (e.g. a PeerAuthentication change) applies to existing connections at once, and a
    short access-log flush interval."""
    return (
        str(envoy_path()),
        "-c",
        str(bootstrap),
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "--drain-strategy",
        "immediate",
        "--drain-time-s",
        "1",
        "--log-level",
        "warning",
        # Access log lines reach the sidecar log within 100 ms (default 10 s): the verifier
        # and `meshward logs --sidecar` read them.
        "--file-flush-interval-msec",
        "100",
    )
