"""samples/."""
