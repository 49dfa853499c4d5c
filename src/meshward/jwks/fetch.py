"""One JWKS fetch: a jwksUri, or the issuer's OIDC discovery document then its `jwks_uri`.

Called by the control plane (in a worker thread) through `key_sets.KeySets`. A jwksUri is
written by whoever may write a RequestAuthentication, and the control plane fetches it from
inside the network: a classic server-side request forgery path towards cloud metadata
services (169.254.169.254). So the host is resolved first, every address it resolves to is
checked against the blocked CIDRs (MeshConfig `jwksFetchBlockedCidrs`), and the connection
goes to the checked address itself (pinned), so a second DNS answer cannot swap in a
blocked one. Redirects are not followed (a redirect would be a new, unchecked target).

Only what RFC 7517 §5 calls a JWK Set is accepted: a JSON object with a non-empty `keys`
array of objects; anything else is a failure, and the caller keeps its last good set.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from meshward.errors import JwksFetchError as FetchError

MAX_BYTES = 1 << 20  # a key set is a few KB; refuse to buffer a runaway answer

Resolver = Callable[[str, int], Sequence[str]]


def system_resolver(host: str, port: int) -> tuple[str, ...]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def check_address(address: str, blocked: Sequence[str]) -> None:
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:169.254.169.254 is the same host
    for block in blocked:
        network = ipaddress.ip_network(block)
        if ip in network or (mapped is not None and mapped in network):
            raise FetchError(f"{address} is in blocked range {block} (jwksFetchBlockedCidrs)")


def get_json(
    url: str, *, timeout: float, blocked: Sequence[str], resolver: Resolver = system_resolver
) -> object:
    """GET `url` and parse its JSON body; FetchError on any failure."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url!r} is not an http or https URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(parts.hostname, port)
    except OSError as error:
        raise FetchError(f"cannot resolve {parts.hostname}: {error}") from error
    if not addresses:
        raise FetchError(f"{parts.hostname} resolves to no address")
    for address in addresses:
        check_address(address, blocked)
    pinned = addresses[0]
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)

    # Connect to the address that was checked, not to a fresh resolution of the name (TLS
    # still verifies the certificate against the host name).
    def pinned_connect(
        _address: tuple[str, int], timeout: float | None = None, source: object = None
    ) -> socket.socket:
        del source
        return socket.create_connection((pinned, port), timeout)

    connection._create_connection = pinned_connect  # type: ignore[attr-defined]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read(MAX_BYTES + 1)
    except (OSError, http.client.HTTPException) as error:
        raise FetchError(f"GET {url}: {error}") from error
    finally:
        connection.close()
    if response.status != 200:
        raise FetchError(f"GET {url}: HTTP {response.status}")
    if len(body) > MAX_BYTES:
        raise FetchError(f"GET {url}: answer larger than {MAX_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as error:
        raise FetchError(f"GET {url}: not JSON ({error})") from error


def key_set(
    source: str,
    *,
    discovery: bool,
    timeout: float,
    blocked: Sequence[str],
    resolver: Resolver = system_resolver,
) -> str:
    """The key set JSON (normalised) from a jwksUri, or via a discovery document."""
    url = source
    if discovery:
        document = get_json(source, timeout=timeout, blocked=blocked, resolver=resolver)
        jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise FetchError(f"{source}: discovery document has no jwks_uri")
        url = jwks_uri
    value = get_json(url, timeout=timeout, blocked=blocked, resolver=resolver)
    keys = value.get("keys") if isinstance(value, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise FetchError(f"{url}: not a JSON Web Key Set with at least one key")
    return json.dumps({"keys": keys}, sort_keys=True, separators=(",", ":"))


def kids(jwks: str) -> frozenset[str]:
    """The `kid`s of a key set."""
    keys = json.loads(jwks).get("keys", []) if jwks else []
    return frozenset(str(k["kid"]) for k in keys if isinstance(k, dict) and "kid" in k)
