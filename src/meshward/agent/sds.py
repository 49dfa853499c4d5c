"""The node agent's SDS server: workload certificates to local Envoys over a Unix socket.

Called by the agent (`meshward.agent.sidecar`): it starts one `SdsServer` per socket, calls
`set_secrets` with `default` (key + chain) and `ROOTCA` (trust bundle) whenever it issues or
rotates a certificate, and stops it with the sidecar. Envoy reaches it through the bootstrap's
static `sds-grpc` cluster (a pipe address) with envoy.service.secret.v3.SecretDiscoveryService
StreamSecrets. Each stream is the same sans-I/O `DiscoveryStream` the control plane's ADS uses,
fed from a secrets-only snapshot, so a rotation is a new SDS version pushed to every connected
Envoy; Envoy applies it to new connections (existing ones keep their identity).

The private key travels only over this socket, which is created mode 0600: Envoy runs as the
agent's user, and nobody else may read the key.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from meshward.xds import serving
from meshward.xds import snapshot as xds_snapshot
from meshward.xds import store as xds_store

log = logging.getLogger(__name__)

# SDS has no wildcard: Envoy always names the secrets it wants (`default`, `ROOTCA`).
_NO_WILDCARD: frozenset[str] = frozenset()


class _SecretDiscoveryServicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, store: xds_store.SnapshotStore) -> None:
        self.store = store

    async def StreamSecrets(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await serving.serve_stream(self.store, context, wildcard_types=_NO_WILDCARD)

    async def DeltaSecrets(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await serving.refuse_delta(context)

    async def FetchSecrets(  # noqa: N802 - gRPC method name
        self, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        # REST-style polling is never configured by meshward's bootstraps.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "FetchSecrets is not served")


class SdsServer:
    """SDS over `unix:<socket_path>`; `set_secrets` pushes new versions to connected Envoys."""

    def __init__(self, socket_path: str | os.PathLike[str]) -> None:
        self.socket_path = Path(socket_path)
        self.store = xds_store.SnapshotStore()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Bind the socket (mode 0600, replacing a stale one) and start serving."""
        if self._server is not None:
            raise RuntimeError("SdsServer already started")
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left by an agent that died; binding would fail
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(
            _SecretDiscoveryServicer(self.store), server
        )
        # The umask makes the socket 0600 from the moment it exists (no window in which
        # another user could connect); chmod afterwards in case the bind ignored it.
        previous = os.umask(0o177)
        try:
            server.add_insecure_port(f"unix:{self.socket_path}")
            await server.start()
        finally:
            os.umask(previous)
        os.chmod(self.socket_path, 0o600)
        self._server = server

    def set_secrets(self, node_id: str | None, secrets: Mapping[str, secret_pb2.Secret]) -> bool:
        """Serve `secrets` (by SDS name) to `node_id`, or to every node without its own (None).

        Returns True if the content changed, i.e. connected Envoys get a new version.
        """
        named: list[secret_pb2.Secret] = []
        for name in sorted(secrets):
            copy = secret_pb2.Secret()
            copy.CopyFrom(secrets[name])
            copy.name = name  # Envoy matches SDS names exactly; the key is the name
            named.append(copy)
        changed = self.store.set(node_id, xds_snapshot.make_snapshot(secrets=named))
        if changed:
            log.info("SDS secrets for %s: %s", node_id or "all nodes", ", ".join(sorted(secrets)))
        return changed

    async def stop(self, grace: float = 0.5) -> None:
        """Stop serving (streams end after `grace` seconds) and remove the socket file."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
