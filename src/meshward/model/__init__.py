"""model/: typed resources → the frozen mesh IR (`meshward.model.ir`).

Public facade: `build(config, addresses)` makes the MeshModel; `replicas(workloads)` lists the
pods that need addresses and `allocate(...)` gives them loopback addresses (stable across
applies). Everything else in model/ is internal to this stage.
"""

from meshward.model.addressing import allocate
from meshward.model.mesh import build
from meshward.model.pods import replicas

__all__ = ["allocate", "build", "replicas"]
