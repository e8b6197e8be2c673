"""The dining philosophers example runs for real, in processes and in threads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("concurrency", ["process", "thread"])
def test_philosophers_dine(concurrency: str) -> None:
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(HERE, "philosophers.py"),
            "--philosophers",
            "5",
            "--eat",
            "4",
            "--concurrency",
            concurrency,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "all forks are back on the table"
    assert [line.split()[0] for line in lines[:-1]] == [f"philosopher-{i}" for i in range(5)]
    assert all(" ate 4 times" in line for line in lines[:-1])
