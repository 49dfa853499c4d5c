"""state/: the runner's state directory — one running mesh per directory.

Writers: the runner (pods, addresses, config), the control plane (xDS status), the agent
(sidecar status). Readers: the CLI (`status`, `logs`, `exec`), the verifier. Every record is
JSON written atomically (tmp + rename), so a reader never sees half a file.
"""

from meshward.state.layout import StateDir
from meshward.state.records import read_json, write_json

__all__ = ["StateDir", "read_json", "write_json"]
