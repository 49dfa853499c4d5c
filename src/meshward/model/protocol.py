"""Protocol inference for service and workload ports, exactly as Istio does it.

Called by model/services.py (service ports) and model/pods.py (pod ports no service names).
Istio's rule (istio.io "Protocol Selection"; pilot `kube.ConvertProtocol`): `appProtocol` when
set, else the port name; a name is `<protocol>` or `<protocol>-<suffix>`; unknown protocols are
left to Istio's sniffing, which meshward does not do, so they are TCP here.
"""

from __future__ import annotations

from meshward.model.ir import Protocol

# Istio `protocol.Parse` names (case-insensitive) → the IR's protocol. Istio has more protocol
# kinds than the IR: the HTTP-family ones map to HTTP/HTTP2/GRPC, everything Envoy must proxy
# as opaque bytes (TLS, HTTPS passthrough, databases, UDP) is TCP.
_NAMES: dict[str, Protocol] = {
    "http": "HTTP",
    "http_proxy": "HTTP",
    "http2": "HTTP2",
    "grpc": "GRPC",
    # gRPC-Web is HTTP/1.1 or HTTP/2 framed for browsers: Istio routes it as HTTP2.
    "grpc-web": "HTTP2",
    "tcp": "TCP",
    "tls": "TCP",
    "https": "TCP",
    "mongo": "TCP",
    "redis": "TCP",
    "mysql": "TCP",
    "udp": "TCP",
}

# Kubernetes' standard appProtocol values (KEP-3726), only meaningful in appProtocol.
_KUBERNETES_APP_PROTOCOLS: dict[str, Protocol] = {
    "kubernetes.io/h2c": "HTTP2",
    "kubernetes.io/ws": "HTTP",
    "kubernetes.io/wss": "TCP",
}


def infer(port_name: str, app_protocol: str = "") -> Protocol:
    """The protocol of a port from its `appProtocol` (if set) or its name; TCP when unknown."""
    if app_protocol:
        if app_protocol in _KUBERNETES_APP_PROTOCOLS:
            return _KUBERNETES_APP_PROTOCOLS[app_protocol]
        name = app_protocol  # Istio: a set appProtocol replaces the name, no fallback to it
    else:
        name = port_name
    name = name.lower()
    # "grpc-web" contains the separator, so it is checked before splitting off the suffix.
    if name.startswith("grpc-web"):
        return _NAMES["grpc-web"]
    prefix = name.split("-", 1)[0]
    return _NAMES.get(prefix, "TCP")
