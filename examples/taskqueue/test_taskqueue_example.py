"""The task queue example runs for real: the MultiApp server, the client queueing over RPC."""

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


def _redis() -> str:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            pass
    except OSError:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip("no Redis server answers on 127.0.0.1:6379")
    import uuid

    # a key prefix of its own in database 13: concurrent runs do not collide
    return f"redis://127.0.0.1:6379/13?prefix=example-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("store", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_taskqueue_example(store: str, tmp_path) -> None:
    backend = f"sqlite:///{tmp_path}/t.db" if store == "sqlite" else _redis()
    server = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "server.py"),
            "--backend",
            backend,
            "--rpc-bind",
            "127.0.0.1:0",
            "--tasks-workers",
            "2",
            "--rpc-workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        address = _listening(server)
        client = subprocess.run(
            [sys.executable, os.path.join(HERE, "client.py"), address, "-n", "5"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stdout + client.stderr
        assert "10/10 tasks succeeded: [0, 2, 4, 6, 8, 0, 1, 4, 9, 16]" in client.stdout
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        assert server.returncode == 0, err[-3000:]
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
