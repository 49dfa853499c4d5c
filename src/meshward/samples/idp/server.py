"""The IdP sample server: OIDC discovery, JWKS with key rotation, a development token
endpoint and RFC 7662 token introspection. `python -m meshward.samples.idp`.

Started by the demo and the JWT end-to-end tests (as a plain process on a loopback address);
the mesh's control plane fetches its JWKS, another plugin calls /introspect. Endpoints:

- `GET /.well-known/openid-configuration` — OpenID Connect Discovery 1.0 §4: issuer,
  jwks_uri, token_endpoint, introspection_endpoint, supported algorithms.
- `GET /jwks` — the published keys (keys.KeyStore.public_jwks: signing key plus keys retired
  within the grace period).
- `POST /rotate` — a new signing key (optional JSON `{"alg": "ES256"}`); the old one stays
  published for `--grace` seconds. Answers `{"kid": ...}`.
- `POST /token` — development tokens: JSON `{"sub", "ttl", "aud": [..], "claims": {..}}`,
  answers `{"access_token", "token_type": "Bearer", "expires_in"}` (RFC 6749 §5.1 shape).
- `POST /introspect` — RFC 7662: form field `token`; answers `{"active": false}` or
  `{"active": true, "sub", "iss", "exp", "iat", "aud"?, "scope"?, "client_id", ...claims}`.

/token, /rotate and /introspect need HTTP Basic client credentials (RFC 6749 §2.3.1; RFC 7662
§2.1 requires the introspection caller to authenticate): `--client-id`/`--client-secret`,
default `meshward-dev` / `meshward-dev-secret` — a development server on loopback, never a
production IdP.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import signal
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshward.samples import http1, server
from meshward.samples.idp import keys, tokens

DEFAULT_CLIENT_ID = "meshward-dev"
DEFAULT_CLIENT_SECRET = "meshward-dev-secret"  # documented development default
DEFAULT_GRACE_SECONDS = 300.0


@dataclass
class IdentityProvider:
    """The server's state: key store, issuer URL (known once the port is bound), clock."""

    store: keys.KeyStore
    issuer: str = ""
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    clock: Callable[[], float] = time.time

    def respond(self, request: http1.Request, peer: str) -> http1.Response:
        del peer
        route = (request.method, request.path)
        if route == ("GET", "/.well-known/openid-configuration"):
            return _json(200, self.discovery())
        if route == ("GET", "/jwks"):
            return _json(200, self.store.public_jwks(self.clock(), self.grace_seconds))
        handlers = {"/token": self._token, "/rotate": self._rotate, "/introspect": self._introspect}
        handler = handlers.get(request.path)
        if handler is None:
            return _json(404, {"error": "not found"})
        if request.method != "POST":
            return _json(405, {"error": "method not allowed"})
        if not self._authenticated(request):
            return http1.Response(
                401,
                b'{"error": "invalid_client"}\n',
                headers=(("WWW-Authenticate", 'Basic realm="meshward-idp"'),),
            )
        try:
            return handler(request)
        except (ValueError, KeyError, TypeError) as error:
            return _json(400, {"error": "invalid_request", "error_description": str(error)})

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "token_endpoint": f"{self.issuer}/token",
            "introspection_endpoint": f"{self.issuer}/introspect",
            "id_token_signing_alg_values_supported": list(keys.ALGORITHMS),
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
        }

    def _authenticated(self, request: http1.Request) -> bool:
        scheme, _, encoded = (request.header("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.client_id) & hmac.compare_digest(
            password, self.client_secret
        )

    def _token(self, request: http1.Request) -> http1.Response:
        body = json.loads(request.body or b"{}")
        ttl = float(body.get("ttl", 300))
        token = tokens.issue(
            self.store,
            issuer=self.issuer,
            subject=str(body["sub"]),
            now=self.clock(),
            ttl_seconds=ttl,
            audiences=tuple(body.get("aud", ())),
            claims=dict(body.get("claims", {})),
        )
        return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": ttl})

    def _rotate(self, request: http1.Request) -> http1.Response:
        body = json.loads(request.body or b"{}")
        alg = body.get("alg")
        if alg is not None and alg not in keys.ALGORITHMS:
            raise ValueError(f"alg must be one of {', '.join(keys.ALGORITHMS)}")
        entry = self.store.rotate(self.clock(), alg)
        return _json(200, {"kid": entry.kid, "alg": entry.alg})

    def _introspect(self, request: http1.Request) -> http1.Response:
        form = urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True)
        token = form.get("token", [""])[0]
        payload = tokens.check(
            self.store,
            token,
            issuer=self.issuer,
            now=self.clock(),
            grace_seconds=self.grace_seconds,
        )
        if payload is None:
            return _json(200, {"active": False})  # RFC 7662 §2.2: nothing else is disclosed
        return _json(
            200, {**payload, "active": True, "client_id": self.client_id, "token_type": "Bearer"}
        )


def _json(status: int, value: object) -> http1.Response:
    return http1.Response(status, json.dumps(value).encode() + b"\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m meshward.samples.idp",
        description="Development identity provider: OIDC discovery, JWKS with rotation, "
        "token issuance and RFC 7662 introspection.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443, help="0 picks a free port")
    parser.add_argument(
        "--key-dir",
        type=Path,
        help="the key store directory (`meshward token issue --key-dir` signs with it); "
        "default: a private temporary one, removed on exit",
    )
    parser.add_argument("--issuer", default="", help="default: http://HOST:PORT")
    parser.add_argument("--alg", choices=keys.ALGORITHMS, default="RS256")
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_SECONDS,
        help="seconds a rotated-out key stays published",
    )
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshward-idp-") as scratch:
        _serve(options, options.key_dir or Path(scratch))


def _serve(options: argparse.Namespace, key_dir: Path) -> None:
    idp = IdentityProvider(
        keys.KeyStore(key_dir),
        grace_seconds=options.grace,
        client_id=options.client_id,
        client_secret=options.client_secret,
    )
    idp.store.ensure(time.time(), options.alg)

    async def serve() -> None:
        listener = await server.start(
            idp.respond, options.host, options.port, log=server.stdout_log
        )
        port = server.bound_port(listener)
        idp.issuer = options.issuer or f"http://{options.host}:{port}"
        server.stdout_log(f"idp listening on {options.host}:{port} issuer {idp.issuer}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        listener.close()

    asyncio.run(serve())
