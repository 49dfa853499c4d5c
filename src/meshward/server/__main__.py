"""`python -m meshward.server --state-dir DIR`: the control-plane process (see control_plane)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from meshward.server.control_plane import ControlPlane
from meshward.state.layout import StateDir


def main() -> None:
    parser = argparse.ArgumentParser(prog="meshward-control-plane")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(ControlPlane(StateDir(args.state_dir)).run())


if __name__ == "__main__":
    main()
