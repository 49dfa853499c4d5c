"""The demo's end-user authentication part (examples/simple-system/end-user.yaml).

Called by cli/demo.py. The example's IdP (`auth/idp`, the IdP sample) issues development
tokens at its /token endpoint; the demo asks it for an `admin` token (sent with the demo's
first request, since user-service requires end user admin) and a `user` token, then shows
the seed's pattern: the `user` token refused by user-service (403), a forged `alg: none`
token refused by every sidecar (401), and `authz explain --jwt` saying why.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Callable

from meshward.cli import authz
from meshward.samples.idp.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json

IDP = ("idp", "auth", 9443)
AUDIENCE = "simple-system"

GetUser = Callable[[dict[str, str]], "tuple[int, str, str] | None"]


def token(state: StateDir, subject: str, *, timeout: float = 20.0) -> str:
    """A token for `subject` from the example's IdP once the control plane holds its keys;
    "" when the example has no IdP."""
    mesh = read_mesh(state)
    pods = mesh.find(IDP[0], IDP[1]) if mesh else []
    if not pods:
        return ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sources = (read_json(state.control_plane) or {}).get("jwks") or []
        if sources and all(source["state"] == "ok" for source in sources):
            break
        time.sleep(0.2)
    credentials = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode())
    body = json.dumps({"sub": subject, "aud": [AUDIENCE], "ttl": 3600})
    connection = http.client.HTTPConnection(pods[0].pod_ip, IDP[2], timeout=10)
    try:
        connection.request(
            "POST", "/token", body=body, headers={"Authorization": f"Basic {credentials.decode()}"}
        )
        return str(json.loads(connection.getresponse().read()).get("access_token", ""))
    except (OSError, ValueError):
        return ""
    finally:
        connection.close()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"} if value else {}


def show(state: StateDir, get_user: GetUser, extra: dict[str, str]) -> None:
    """The seed's end-user pattern on the running example; `get_user(headers)` sends GET
    /users/1 from location-service's sidecar, `extra` are headers it needs besides."""
    user = token(state, "user")
    if not user:
        return
    print(
        "\nEnd-user authentication: a JWT from auth/idp is checked at each service;"
        "\n  user-service requires end user `admin`, location-service accepts `user`."
    )
    refused = get_user(extra | bearer(user))
    if refused is not None:
        print(f"  GET /users/1 as end user `user`: HTTP {refused[0]}")
    forged = get_user(extra | bearer(unsigned(user, subject="admin")))
    if forged is not None:
        print(f"  the same token forged to alg none, sub admin: HTTP {forged[0]}")
    print(
        "  Why? `meshward authz explain --from location-service -n geo --to user-service.core"
        " --path /users/1 --jwt TOKEN`:"
    )
    authz.explain_request(
        state,
        source="location-service",
        source_namespace="geo",
        to="user-service.core:8080",
        path="/users/1",
        headers=[f"{k}={v}" for k, v in extra.items()],
        jwt=user,
    )


def unsigned(value: str, *, subject: str) -> str:
    """`value` re-encoded with `alg: none`, no signature and another `sub` (an attack)."""
    body = value.split(".")[1]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))

    def part(segment: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(segment).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload | {'sub': subject})}."
