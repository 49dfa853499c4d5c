"""verify/."""
