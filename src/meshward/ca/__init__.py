"""The mesh CA: roots, signing, an independent validator, rotation decisions, workload tokens.

Callers: server/ca_service (the CSR API), the agent (validation, rotation), the runner
(creating the CA directory and workload tokens). Modules:

    authority    CertificateAuthority, IssuedCertificate — load/create, sign, serving certs
    validator    validate_svid, validate_serving_certificate — independent of the signer
    template     what goes into a root, an SVID, a serving cert
    plugin       the Istio plug-in CA files on disk
    credentials  WorkloadTokens — ES256 workload JWTs for the CSR API
    rotation     rotation_due, next_rotation, expires_within
"""
