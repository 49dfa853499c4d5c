"""state/."""
