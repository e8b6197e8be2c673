"""The echo example runs for real: the server as a process on port 0, the client against it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _listening(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("LISTENING "):
            return line.split()[1]
        if not line:
            break
    proc.kill()
    raise AssertionError(f"the server never listened: {proc.communicate()[1][-3000:]}")


@pytest.mark.parametrize("concurrency", ["process", "thread"])
def test_echo_server_and_client(concurrency: str) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "echo.py"),
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--concurrency",
            concurrency,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        address = _listening(server)
        client = subprocess.run(
            [sys.executable, os.path.join(HERE, "client.py"), address, "-n", "200", "-c", "8"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stdout + client.stderr
        assert client.stdout.startswith("200/200 messages echoed over 8 connections")
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        assert server.returncode == 0, err[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
