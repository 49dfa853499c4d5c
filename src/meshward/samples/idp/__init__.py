"""The identity-provider sample: a key store, token issuance and an OIDC/JWKS server.

`keys` (the key directory both the server and `meshward token issue` use), `tokens`
(signing and checking development JWTs), `server` (`python -m meshward.samples.idp`).
"""
