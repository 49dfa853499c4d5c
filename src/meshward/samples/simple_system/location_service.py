"""location-service: GET /locations/{id} → {"id", "city", "caller"}; GET /healthz → 200.

`caller` is the X-Forwarded-Client-Cert header the request arrived with: the caller's identity
as location-service's sidecar saw it over mTLS (Envoy's XFCC, `By=...;URI=spiffe://...`), or
null for plaintext — which makes the PERMISSIVE → STRICT migration visible from the outside.
Called by `__main__`; the app is a `meshward.samples.server.Respond`.
"""

from __future__ import annotations

import json

from meshward.samples import http1

CITIES: dict[str, str] = {
    "1": "London",
    "2": "Bengaluru",
    "3": "Palo Alto",
    "4": "Lisbon",
    "5": "Nairobi",
}

_HEALTHY = http1.Response(200, b'{"status": "ok"}\n')
_NOT_FOUND = http1.Response(404, b'{"error": "not found"}\n')
_NOT_ALLOWED = http1.Response(405, b'{"error": "method not allowed"}\n')


def _json(status: int, value: object) -> http1.Response:
    return http1.Response(status, (json.dumps(value, sort_keys=True) + "\n").encode())


def respond(request: http1.Request, peer: str) -> http1.Response:
    if request.method not in ("GET", "HEAD"):
        return _NOT_ALLOWED
    path = request.path
    if path == "/healthz":
        return _HEALTHY
    location_id = path.removeprefix("/locations/")
    if location_id == path or location_id not in CITIES:
        return _NOT_FOUND
    caller = request.header("X-Forwarded-Client-Cert")
    return _json(200, {"id": location_id, "city": CITIES[location_id], "caller": caller})
