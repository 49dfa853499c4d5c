"""analyze/: best-practice findings for a config set or the running mesh (`meshward analyze`).

Public facade: `analyze(config, model, ...)` runs the check table (analysis.py) and returns
Diagnostics with catalogued MW05xx codes (fix text in the catalog); `LiveFacts` carries what
only a running mesh knows; `ca_health` reads a CA directory; report.py renders table, JSON
and SARIF. Called by cli/analyze.py.
"""

from meshward.analyze.analysis import CHECKS, analyze
from meshward.analyze.certificates import ca_health
from meshward.analyze.facts import DEFAULT_MAX_CERT_TTL, LiveFacts

__all__ = ["CHECKS", "DEFAULT_MAX_CERT_TTL", "LiveFacts", "analyze", "ca_health"]
