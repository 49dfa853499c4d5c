"""The sidecar access log: one JSON line per HTTP request or TCP connection, on Envoy's stdout.

Called by listener.py for every HCM and TCP proxy. Inbound, every request is logged: it is the
server's own record. The outbound HTTP listener logs only failed requests (`failures_only`):
a successful call between sidecars is already in the server sidecar's log, and a second JSON
line per request cost the client sidecar about 6 µs of CPU per request, ~8% of the pair's
proxy CPU (measured with bench/dataplane.py; see bench/README.md). The agent keeps each Envoy's
stdout in the pod's sidecar log; the verifier reads it to prove which identity a server
authenticated (`peer`), and later the audit store and `authz explain` will read the same keys.
The keys are a contract (verify/access_log.py): add keys freely, never rename one.
"""

from __future__ import annotations

from typing import Literal

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
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


# Envoy requires a runtime key on every RuntimeUInt32; nothing sets it, so the default holds.
_MIN_FAILED_STATUS = base_pb2.RuntimeUInt32(
    default_value=400, runtime_key="meshward.access_log.min_failed_status"
)


def failures_only() -> accesslog_pb2.AccessLogFilter:
    """Requests that failed: HTTP status >= 400, or any response flag set (no route, upstream
    connect failure or reset, ...; an empty `response_flag_filter` matches any flag)."""
    status = accesslog_pb2.StatusCodeFilter()
    status.comparison.op = accesslog_pb2.ComparisonFilter.GE
    status.comparison.value.CopyFrom(_MIN_FAILED_STATUS)
    either = accesslog_pb2.AccessLogFilter()
    either.or_filter.filters.add().status_code_filter.CopyFrom(status)
    either.or_filter.filters.add().response_flag_filter.SetInParent()
    return either


def access_log(
    direction: Direction, *, http: bool, only_failures: bool = False
) -> accesslog_pb2.AccessLog:
    fields = {"direction": direction, **_COMMON, **(_HTTP if http else {})}
    log_format = struct_pb2.Struct()
    log_format.update(fields)
    stdout = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=log_format)
    )
    log = accesslog_pb2.AccessLog(name=STDOUT_LOGGER, typed_config=core.pack(stdout))
    if only_failures:
        log.filter.CopyFrom(failures_only())
    return log
