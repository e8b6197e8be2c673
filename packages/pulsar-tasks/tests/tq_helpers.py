"""Process helpers of pulsar-tasks' tests (scripts run as real processes)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "scripts")
#: the PostgreSQL the tests use (a schema of their own in it); here, not in conftest: with
#: --import-mode=importlib a ``from conftest import`` may find another package's conftest
POSTGRES_URL = os.environ.get(
    "PULSAR_TASKS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
RUNNING: list[Run] = []


class Run:
    """A script run as a real process in its own session; killed (with its children) at the end
    of the test."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(SCRIPTS, script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": HERE, **(env or {})},
        )
        RUNNING.append(self)

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        """The JSON of the next ``READY`` line on stdout."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                return json.loads(line[6:])  # type: ignore[no-any-return]
        self.kill()
        raise AssertionError(f"never ready: {self.proc.communicate()[1][-3000:]}")

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        self.proc.kill()
        self.proc.communicate()


def kill_running() -> None:
    while RUNNING:
        run = RUNNING.pop()
        if run.proc.poll() is None:
            run.kill()


def marks(path: str, prefix: str = "") -> list[str]:
    try:
        with open(path) as f:
            return [line.split()[0] for line in f if line.startswith(prefix)]
    except FileNotFoundError:
        return []


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.05) -> Any:
    """Poll ``predicate()`` until truthy; returns its value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def postgres_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5) as sock:
            # an SSLRequest: a PostgreSQL server answers with one byte, S or N
            sock.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def require_postgres() -> None:
    """Skip (visibly) without a PostgreSQL server, unless CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        return
    if not postgres_available():
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432")


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``pulsar-tasks ARGS`` as a real process (the test jobs importable); ``stdin``: what
    it reads (else nothing)."""
    return subprocess.run(
        [sys.executable, "-m", "pulsar.apps.tasks", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": HERE},
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def start_cli_worker(url: str, *options: str) -> subprocess.Popen:
    """``pulsar-tasks worker`` of the test jobs on ``url`` with one worker (and ``options``),
    its stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "pulsar.apps.tasks", "worker", "--backend", url,
         "--modules", "tq_jobs", "--workers", "1", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": HERE},
    )  # fmt: skip


@contextlib.asynccontextmanager
async def consuming(
    url: str,
    *,
    backend_options: dict[str, Any] | None = None,
    worker_id: str | None = None,
    queues: tuple[str, ...] = ("default", "other"),
    lease: float = 5.0,
    **options: Any,
) -> AsyncIterator[Any]:
    """A started :class:`Consumer` of a backend object of its own (as a worker process would
    have), stopped (1 s of grace) and its backend closed at the end. ``backend_options`` go to
    ``create_backend`` (``events=True``, ``result_ttl=``...), ``options`` to the Consumer."""
    from pulsar.apps import tasks

    backend = tasks.create_backend(url, **(backend_options or {}))
    consumer = tasks.Consumer(
        backend,
        worker_id=worker_id or f"w-{uuid.uuid4().hex[:6]}",
        queues=queues,
        lease=lease,
        **options,
    )
    consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop(grace=1.0)
        await backend.close()


async def fill_pending(backend: Any, n: int = 20000, *, priorities: bool = False) -> float:
    """``n`` QUEUED tasks written straight into a PostgreSQL backend's table (due over the last
    ``n`` seconds; priorities 0-9 in turn with ``priorities``), then ANALYZE: what the plan
    tests EXPLAIN their queries against. Returns the time they are all due by."""
    await backend.counts()  # the schema exists
    now = time.time()
    prio = ", priority" if priorities else ""
    await backend._fetch(
        f"INSERT INTO {backend._s}.tasks (id, name, queue, status, payload, eta, time_queued"
        f"{prio}) SELECT 'i' || g, 'add', 'default', 'QUEUED', '{{}}', %s + g, %s"
        f"{', g %% 10' if priorities else ''} FROM generate_series(1, {int(n)}) g",
        (now - n - 10000, now),
    )
    await backend._fetch(f"ANALYZE {backend._s}.tasks")
    return now
