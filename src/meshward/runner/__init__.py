"""runner/."""
