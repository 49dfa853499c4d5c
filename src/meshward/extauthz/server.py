"""Start and stop `meshward extauthz`: the gRPC front end and, optionally, the HTTP one.

Called by the CLI and by tests, which run the server in-process. `serve` binds both
listeners before it returns (port 0 picks a free port; `Running` says which), so a caller
can send requests at once.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc

from meshward.extauthz.decision_log import DecisionLog
from meshward.extauthz.grpc_service import AuthorizationService
from meshward.extauthz.http_service import HttpAuthorizationServer
from meshward.extauthz.plugin import Plugin


@dataclass
class Running:
    grpc_port: int | None
    http_port: int | None
    _grpc: grpc.Server | None
    _http: HttpAuthorizationServer | None
    _log: DecisionLog

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._log.close()

    def wait(self) -> None:
        if self._grpc is not None:
            self._grpc.wait_for_termination()
        else:
            threading.Event().wait()


def serve(
    plugin: Plugin,
    log: DecisionLog,
    grpc_listen: tuple[str, int] | None,
    http_listen: tuple[str, int] | None = None,
    http_path_prefix: str = "",
) -> Running:
    grpc_server = None
    grpc_port = None
    if grpc_listen is not None:
        grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
            AuthorizationService(plugin, log), grpc_server
        )
        grpc_port = grpc_server.add_insecure_port(f"{grpc_listen[0]}:{grpc_listen[1]}")
        grpc_server.start()
    http_server = None
    http_port = None
    if http_listen is not None:
        http_server = HttpAuthorizationServer(http_listen, plugin, log, http_path_prefix)
        http_port = http_server.server_address[1]
        threading.Thread(target=http_server.serve_forever, args=(0.05,), daemon=True).start()
    return Running(grpc_port, http_port, grpc_server, http_server, log)
