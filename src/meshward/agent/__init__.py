"""agent/."""
