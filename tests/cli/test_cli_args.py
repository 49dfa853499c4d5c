"""Argument handling shared by every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.cli.main import main


@pytest.mark.parametrize("before", [True, False])
def test_state_dir_is_accepted_before_or_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], before: bool
) -> None:
    state = ["--state-dir", str(tmp_path / "nowhere")]
    argv = [*state, "status"] if before else ["status", *state]
    assert main(argv) == 0
    assert f"no mesh running from {tmp_path / 'nowhere'}" in capsys.readouterr().out


def test_exec_takes_everything_after_double_dash_as_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No mesh: the pod lookup fails, but only after the command line was split correctly.
    assert main(["--state-dir", str(tmp_path), "exec", "web", "-n", "shop", "--", "ls", "-n"]) == 1
    assert "no workload or pod 'web' in namespace shop" in capsys.readouterr().err
