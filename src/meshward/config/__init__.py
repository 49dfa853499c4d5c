"""config/: sources → typed resources. The only layer that parses YAML.

The facade: `load(paths)` and `load_text(text)` return a `ConfigSet` (resources plus coded
diagnostics). Callers: the CLI, the runner, the control plane. Everything else in this package
is internal to it.
"""

from meshward.config.loader import load, load_text
from meshward.config.resources import ConfigSet

__all__ = ["ConfigSet", "load", "load_text"]
