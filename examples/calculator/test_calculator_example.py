"""The calculator example runs for real: a pulsar RpcServer process on port 0, the client script
and JsonProxy calls against it (async methods on the worker's loop, the arbiter's info tree,
kill_actor and the replacement worker, an rpc setting from the command line)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pulsar.apps import rpc

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


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "calculator.py"),
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--rpc-timeout",
            "1",
            "--graceful-timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://{_listening(proc)}/"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _workers(info: dict[str, Any]) -> list[str]:
    monitors = info["arbiter"]["monitors"]
    return [w["aid"] for m in monitors.values() for w in m["workers"] if w["state"] == "RUNNING"]


def test_client_script(server: str) -> None:
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "client.py"), server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines == [
        "ping: pong",
        "calc.add(1, 2): 3",
        "calc.subtract(a=10, b=4): 6",
        "calc.divide(1, 0): error -32001 division by zero",
        "batch: 42 1.414214 MethodNotFound",
        "functions: 15 workers: 2",
        "10 concurrent calc.sleep(0.1): 1.0",
        "batch of 100 calc.add: 9900",
        "calc.sum(1, 2, 3.5): 6.5",
        "rpc.discover: Pulsar calculator 15 methods",
    ]


async def test_async_methods_run_on_the_worker_loop(server: str) -> None:
    async with rpc.JsonProxy(server) as proxy:
        seen = [await proxy.calc.worker() for _ in range(6)]
    assert all(w["on_actor_loop"] for w in seen)
    assert all(w["name"] == "calculator-worker" for w in seen)


def test_server_info_is_the_arbiter_tree(server: str) -> None:
    with rpc.SyncJsonProxy(server) as proxy:
        info = proxy.server_info()
    assert info["arbiter"]["kind"] == "arbiter"
    assert "calculator" in info["arbiter"]["monitors"]
    assert len(_workers(info)) == 2
    assert info["server"]["actor"]["aid"] in _workers(info)


def test_rpc_timeout_from_the_command_line(server: str) -> None:
    with rpc.SyncJsonProxy(server) as proxy:
        with pytest.raises(rpc.ServerError) as info:  # -32000: the client sees a server error
            proxy.calc.sleep(5)
        assert info.value.code == -32000 and info.value.data == {"timeout": 1.0}
        assert proxy.calc.sleep(0.01) == 0.01


def test_bad_inputs_keep_the_server_serving(server: str) -> None:
    import httpx

    bodies = [
        b"{",
        b"[]",
        b"[1,2]",
        b'{"jsonrpc": "1.0", "method": "ping", "id": 1}',
        b'{"jsonrpc": "2.0", "method": "rpc.nope", "id": 1}',
        b"\xff\xfe",
    ]
    with httpx.Client(timeout=10) as client:
        for body in bodies:
            resp = client.post(server, content=body, headers={"Content-Type": "application/json"})
            assert resp.status_code == 200
            assert "error" in (resp.json()[0] if body == b"[1,2]" else resp.json())
        assert client.get(server).status_code == 405
    with rpc.SyncJsonProxy(server) as proxy:
        assert proxy.calc.add(1, 1) == 2


def test_kill_actor_and_the_replacement(server: str) -> None:
    with rpc.SyncJsonProxy(server) as proxy:
        info = proxy.server_info()
        serving = info["server"]["actor"]["aid"]
        (other,) = [aid for aid in _workers(info) if aid != serving]
        assert proxy.kill_actor(other) is True  # waits for the other worker to exit
        assert proxy.kill_actor("nosuchactor") is False
        assert proxy.kill_actor(serving) is True  # answered before it stops
        _wait_replaced(proxy, {other, serving})
        assert proxy.calc.add(2, 2) == 4


def _wait_replaced(proxy: rpc.JsonProxy, gone: set[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            workers = _workers(proxy.server_info())
        except rpc.TransportError:  # the connection to a stopping worker
            workers = []
        if len(workers) == 2 and not gone & set(workers):
            return
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)
