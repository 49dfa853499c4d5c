"""The iptables rules inside each pod: transparent capture into the sidecar (pure text).

Called by the runner when it places a pod; the text goes to `iptables-restore` inside the
pod's namespace (netns/fabric.py). Modelled on Istio's init container (istio-iptables,
`tools/istio-iptables`): chain names differ, the decisions are the same.

Sidecar pod, nat table:
- PREROUTING → MESHWARD_INBOUND: every inbound TCP connection is redirected to the sidecar's
  virtual inbound listener (15006), except the Envoy admin port 15000, which the node agent
  polls for readiness (Istio likewise excludes its own 15090/15021/15020 ports). Redirecting
  every port, not only the declared ones, means a port the app opened on its own is still
  behind the sidecar: the virtual inbound listener has no chain for it and closes it.
- OUTPUT → MESHWARD_OUTPUT, in Istio's order: the sidecar forwarding to its app binds
  source 127.0.0.6 (INBOUND_PASSTHROUGH_BIND) and returns; the sidecar dialling its own
  pod address over `lo` (a pod calling a service it is itself behind) goes to the inbound
  redirect, so the mTLS it sent meets the inbound listener, not the app; an app over `lo`
  (calling itself) returns; the rest of the sidecar's own traffic (owner UID or GID 1337,
  Istio's `--uid-owner`/`--gid-owner 1337`) returns — that is also every connection to the
  control plane, since the sidecar is the only control-plane client in a pod; the rest of
  TCP is redirected to the virtual outbound listener (15001).

Legacy pod (no sidecar): nothing is captured; service VIPs are translated to the first
endpoint by DNAT, as kube-proxy would, so legacy apps can use service names too.
"""

from __future__ import annotations

from collections.abc import Iterable

SIDECAR_ID = 1337  # Istio's proxy UID/GID
INBOUND_CAPTURE_PORT = 15006
OUTBOUND_CAPTURE_PORT = 15001
ADMIN_PORT = 15000
INBOUND_PASSTHROUGH_BIND = "127.0.0.6"

_HEADER = (
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":INPUT ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
)


def sidecar_rules() -> str:
    """The nat table of a sidecar pod, for `iptables-restore`."""
    lines = [
        *_HEADER,
        ":MESHWARD_INBOUND - [0:0]",
        ":MESHWARD_IN_REDIRECT - [0:0]",
        ":MESHWARD_OUTPUT - [0:0]",
        ":MESHWARD_REDIRECT - [0:0]",
        "-A PREROUTING -p tcp -j MESHWARD_INBOUND",
        f"-A MESHWARD_INBOUND -p tcp --dport {ADMIN_PORT} -j RETURN",
        "-A MESHWARD_INBOUND -p tcp -j MESHWARD_IN_REDIRECT",
        f"-A MESHWARD_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_CAPTURE_PORT}",
        "-A OUTPUT -p tcp -j MESHWARD_OUTPUT",
        f"-A MESHWARD_OUTPUT -s {INBOUND_PASSTHROUGH_BIND}/32 -o lo -j RETURN",
        *(
            f"-A MESHWARD_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --{kind}-owner {SIDECAR_ID} "
            "-j MESHWARD_IN_REDIRECT"
            for kind in ("uid", "gid")
        ),
        f"-A MESHWARD_OUTPUT -o lo -m owner ! --gid-owner {SIDECAR_ID} -j RETURN",
        f"-A MESHWARD_OUTPUT -m owner --uid-owner {SIDECAR_ID} -j RETURN",
        f"-A MESHWARD_OUTPUT -m owner --gid-owner {SIDECAR_ID} -j RETURN",
        "-A MESHWARD_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A MESHWARD_OUTPUT -j MESHWARD_REDIRECT",
        f"-A MESHWARD_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_CAPTURE_PORT}",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def legacy_rules(translations: Iterable[tuple[str, int, str, int]]) -> str:
    """The nat table of a pod without sidecar: (vip, port, endpoint ip, endpoint port) DNATs."""
    lines = [*_HEADER]
    for vip, port, ip, target in sorted(translations):
        lines.append(
            f"-A OUTPUT -d {vip}/32 -p tcp --dport {port} -j DNAT --to-destination {ip}:{target}"
        )
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
