"""meshward: a zero-trust service mesh security system.

Istio-compatible YAML in, SPIFFE identities and Envoy configuration out, and a verifier that
proves the result. See DESIGN.md in the shared notes for the pipeline:
config → model → xds → snapshot → server.
"""

__version__ = "0.1.0"
