"""Atomic writes of PEM files: keys created 0600 from the first byte, certificates 0644.

Called by `meshward.ca.plugin` (the four Istio plug-in CA files) and `meshward.ca.credentials`
(the token signing key). A crash mid-write leaves the old file or none, never half a key.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to `path` via a sibling temp file and rename (POSIX rename is atomic).

    The temp file is opened with `mode` directly (O_CREAT|O_EXCL), so a private key is never
    readable by others, not even between creation and a later chmod.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)  # the umask may have cleared bits of a PUBLIC mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
