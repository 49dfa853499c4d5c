"""The plugin API of `meshward extauthz`: request facts in, a decision out.

Used by both front ends (grpc_service.py, http_service.py), which turn what Envoy sends into
`Facts`, and by every plugin. A plugin is any object with a `name` and a `check` method; it
must not raise for a bad request (deny it), and it decides alone: the front end only
translates and logs. Write your own by implementing `Plugin` and passing it to `serve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Pairs = tuple[tuple[str, str], ...]
SPIFFE = "spiffe://"


@dataclass(frozen=True, slots=True)
class Facts:
    """One request as the authorization server sees it. `headers`: lowercase names.
    `principal`: the caller's mTLS identity as Istio writes it (`<td>/ns/<ns>/sa/<sa>`, no
    scheme), "" when the caller had no certificate. `path` may carry a query."""

    request_id: str
    method: str
    path: str
    host: str = ""
    headers: Pairs = ()
    principal: str = ""
    source_address: str = ""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)

    @property
    def bare_path(self) -> str:
        """The path without query or fragment (what Istio path rules see)."""
        return self.path.split("?", 1)[0].split("#", 1)[0]


def principal_of(uri: str) -> str:
    """`spiffe://td/ns/x/sa/y` → `td/ns/x/sa/y`; anything else as given."""
    return uri[len(SPIFFE) :] if uri.startswith(SPIFFE) else uri


@dataclass(frozen=True, slots=True)
class Decision:
    """`allow`, or deny with `status` (and `body`). `headers_to_upstream` are added to an
    allowed request; `headers_to_downstream` go to the client (with a denial, or with the
    response of an allowed request). `reason` is for the decision log only."""

    allow: bool
    status: int
    reason: str
    headers_to_upstream: Pairs = ()
    headers_to_downstream: Pairs = ()
    body: str = ""


class Plugin(Protocol):
    """Decides one request. Called from several threads at once: keep state thread-safe."""

    @property
    def name(self) -> str: ...

    def check(self, facts: Facts) -> Decision: ...
