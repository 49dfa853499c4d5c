"""Rotation decisions: when a certificate should be replaced. Pure functions of injected time.

Called by the agent (renew a workload SVID before it lapses) and by the control plane (warn
before the root or signing certificate expires, the outage Istio users know too well).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

# Istio's SECRET_GRACE_PERIOD_RATIO default is 0.5: renew once half the lifetime has passed,
# which leaves the other half to retry through a control-plane outage.
ROTATION_RATIO = 0.5


def next_rotation(not_before: datetime, not_after: datetime) -> datetime:
    """The instant at which a certificate valid for [not_before, not_after] should rotate."""
    return not_before + (not_after - not_before) * ROTATION_RATIO


def rotation_due(not_before: datetime, not_after: datetime, now: datetime) -> bool:
    """True once `now` has reached the rotation point (or the certificate already expired)."""
    return now >= next_rotation(not_before, not_after)


def expires_within(cert: x509.Certificate, now: datetime, window: timedelta) -> bool:
    """True if `cert` is no longer valid at `now + window` (already expired counts)."""
    return cert.not_valid_after_utc <= now + window
