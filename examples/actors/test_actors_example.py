"""The actors example runs for real and tells its story."""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_actors_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "actors.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("arbiter pid")
    assert "says hello back" in lines[1] and "says hello back" in lines[2]
    assert "exited: killed by SIGKILL" in out.stdout
    assert "monitor replaced it with" in out.stdout
    assert "says hello back" in lines[-2]
    assert lines[-1] == "stopping"
