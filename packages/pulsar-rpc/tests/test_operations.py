"""``RpcServer`` operations as a user runs them: a real process, a real HUP, new code served."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

HANDLER = """
from pulsar.apps import rpc


class Root(rpc.JSONRPC):
    def rpc_version(self, request):
        return {version!r}


handler = Root()
"""

SERVER = """
from pulsar.apps import rpc

if __name__ == "__main__":
    rpc.RpcServer(callable="handlers:handler").start()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_handler(path: Path, version: str) -> None:
    path.write_text(HANDLER.format(version=version))
    later = time.time() + 2  # newer than any bytecode cached before
    os.utime(path, (later, later))


def version(port: int) -> str | None:
    body = {"jsonrpc": "2.0", "method": "version", "id": 1}
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/", json=body, timeout=5)
    except httpx.TransportError:
        return None
    result: str = response.json()["result"]
    return result


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_hup_serves_the_new_handler(tmp_path: Path) -> None:
    write_handler(tmp_path / "handlers.py", "v1")
    (tmp_path / "server.py").write_text(SERVER)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for(lambda: proc.poll() is None and version(port)) == "v1"

        def workers() -> set[int] | None:
            pids = {c.pid for c in psutil.Process(proc.pid).children()}
            return pids if len(pids) == 2 else None

        old = wait_for(workers)
        write_handler(tmp_path / "handlers.py", "v2 new")
        proc.send_signal(signal.SIGHUP)

        def rolled() -> bool:
            pids = {c.pid for c in psutil.Process(proc.pid).children()}
            return len(pids) == 2 and not pids & old

        wait_for(rolled)
        assert all(version(port) == "v2 new" for _ in range(5))
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")
