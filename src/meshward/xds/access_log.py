"""The sidecar access log: one JSON line per HTTP request or TCP connection, on Envoy's stdout.

Called by listener.py for every HCM and TCP proxy. The agent keeps each Envoy's stdout in the
pod's sidecar log; the verifier reads it to prove which identity a server authenticated
(`peer`), and later the audit store and `authz explain` will read the same keys. The keys are
a contract (verify/access_log.py): add keys freely, never rename one.
"""

from __future__ import annotations

from typing import Literal

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from google.protobuf import struct_pb2

from meshward.xds import core

STDOUT_LOGGER = "envoy.access_loggers.stdout"
MARKER = "meshward-access"

Direction = Literal["inbound", "outbound"]

# Envoy command operators (access-log "format strings" reference). %START_TIME(%s.%3f)% is
# seconds since the epoch, so readers compare it with time.time() directly.
_COMMON = {
    "log": MARKER,
    "start": "%START_TIME(%s.%3f)%",
    "peer": "%DOWNSTREAM_PEER_URI_SAN%",
    "tls": "%DOWNSTREAM_TLS_VERSION%",
    "local": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "remote": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "flags": "%RESPONSE_FLAGS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
}
_HTTP = {
    "protocol": "%PROTOCOL%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "authority": "%REQ(:AUTHORITY)%",
    "code": "%RESPONSE_CODE%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "probe": "%REQ(X-MESHWARD-PROBE)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}


def access_log(direction: Direction, *, http: bool) -> accesslog_pb2.AccessLog:
    fields = {"direction": direction, **_COMMON, **(_HTTP if http else {})}
    log_format = struct_pb2.Struct()
    log_format.update(fields)
    stdout = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=log_format)
    )
    return accesslog_pb2.AccessLog(name=STDOUT_LOGGER, typed_config=core.pack(stdout))
