"""`python -m meshward.agent --state-dir DIR`: the node agent process (see agent.agent)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from meshward.agent.agent import Agent
from meshward.state.layout import StateDir


def main() -> None:
    parser = argparse.ArgumentParser(prog="meshward-agent")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(Agent(StateDir(args.state_dir)).run())


if __name__ == "__main__":
    main()
