"""admission/: keep unsafe config out — AdmissionPolicy evaluation (MW06xx).

The facade: `admit(candidate, previous)` for a change (error diagnostics refuse it) and
`audit(config)` for the violations a running config has. Callers: the CLI (`up` through the
runner, `apply`, `admission audit`) and the control plane's reload. See docs/admission.md.
"""

from meshward.admission.review import admit, audit

__all__ = ["admit", "audit"]
