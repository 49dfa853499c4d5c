"""`meshward admission audit`: the AdmissionPolicy violations a config has, refusing nothing.

Called by `meshward.cli.main`. Audit mode (Gatekeeper's audit, Kyverno's background scan):
every policy, deny ones included, is evaluated against the running mesh's config store (or
the PATHs given) and each violation is printed as a warning. Exit 0 when there is none, 1
otherwise, so CI can gate on it; `--json` prints the diagnostics as a list.
"""

from __future__ import annotations

import argparse
import json
import sys

from meshward import admission
from meshward.config import load
from meshward.diagnostics import has_errors
from meshward.runner.runner import Runner
from meshward.state.layout import StateDir


def audit(args: argparse.Namespace) -> int:
    if args.paths:
        config = load(args.paths)
    else:
        stored = Runner.stored(StateDir(args.state_dir))
        if stored is None:
            print(
                "error: no config store in this state directory (meshward up first)",
                file=sys.stderr,
            )
            return 2
        config = stored
    if has_errors(config.diagnostics):
        for diagnostic in config.diagnostics:
            print(str(diagnostic), file=sys.stderr)
        return 2
    found = admission.audit(config)
    if args.json:
        rows = [
            {
                "code": d.code,
                "level": d.level.value,
                "resource": d.resource,
                "file": d.location.file,
                "line": d.location.line,
                "field": d.location.field,
                "message": d.message,
            }
            for d in found
        ]
        print(json.dumps(rows, indent=2))
    else:
        for diagnostic in found:
            print(str(diagnostic))
        print(f"{len(found)} violation(s) of {len(config.admission_policies)} admission policies")
    return 1 if found else 0
