"""JWKS for RequestAuthentication: the control plane fetches key sets, Envoy gets them inline.

`fetch` (one HTTP fetch of a jwksUri or an OIDC discovery document, refusing blocked
addresses after DNS resolution), `key_sets` (the cache: last good key set per source,
refresh interval, backoff, refresh-on-unknown-kid; pure, time passed in), `resolve` (fills
the fetched keys into a model's JwtRules before translation).
"""
