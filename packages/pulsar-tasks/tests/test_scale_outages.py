"""Scale and outages on every backend: 5,000 concurrent calls from a fresh client wait for a
pooled connection instead of failing; every backend failure is a ``BackendError`` with its
cause; producers retry for a bounded time; workers wait for the backend to come back; a
read-only or corrupted SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tq_helpers as h

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState

N = 5000


def consuming(url: str) -> Any:
    return h.consuming(
        url, worker_id="w-scale", queues=("default",), lease=30.0, concurrent_tasks=50
    )


async def test_5000_concurrent_calls_from_a_fresh_client(backend_url) -> None:
    import tq_jobs  # noqa: F401  (the jobs are known here)

    producer = tasks.connect(backend_url, set_default=False)
    waiter = tasks.connect(backend_url, set_default=False)  # did not queue them: subscribes
    try:
        queued = await asyncio.gather(*(producer.queue_task("add", [i, 1]) for i in range(N)))
        async with consuming(backend_url):
            mine, theirs = await asyncio.gather(
                asyncio.gather(*(producer.wait_for_task(t.id, timeout=120) for t in queued)),
                asyncio.gather(*(waiter.wait_for_task(t.id, timeout=120) for t in queued)),
            )
        got = await asyncio.gather(*(waiter.get_task(t.id) for t in queued))
    finally:
        await producer.close()
        await waiter.close()
    assert [t.result for t in mine] == [i + 1 for i in range(N)]
    assert [t.result for t in theirs] == [i + 1 for i in range(N)]
    assert all(t is not None and t.status == TaskState.SUCCESS for t in got)


# -- a Redis server of our own, stopped and started by the test -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server on a free port, started and stopped (by PID) by the test."""

    def __init__(self, tmp_path) -> None:
        if shutil.which("redis-server") is None:
            if os.environ.get("CI", "").lower() == "true":
                raise AssertionError("redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.port = _free_port()
        self.dir = str(tmp_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--save", "", "--appendonly"),
                *("no", "--dir", self.dir, "--bind", "127.0.0.1"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        h.wait_for(up, timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def test_redis_down_producer_gets_backend_error_within_the_retry_time(own_redis) -> None:
    import tq_jobs  # noqa: F401

    c = tasks.connect(own_redis.url, set_default=False)
    c.backend.retry_timeout = 1.0
    try:
        start = time.monotonic()
        with pytest.raises(tasks.BackendError, match=str(own_redis.port)) as info:
            await c.queue_task("add", [1, 2])
        took = time.monotonic() - start
        assert 0.9 <= took < 5.0, took
        assert "\n" not in str(info.value)
        import redis

        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        for call in (c.get_task("x"), c.list_tasks(), c.wait_for_task("x", timeout=5)):
            with pytest.raises(tasks.BackendError):
                await call
    finally:
        await c.close()


async def test_redis_back_within_the_retry_time_nothing_lost(own_redis) -> None:
    import tq_jobs  # noqa: F401

    c = tasks.connect(own_redis.url, set_default=False)  # default retry time: 10 s
    try:
        loop = asyncio.get_running_loop()
        pending = asyncio.ensure_future(
            asyncio.gather(*(c.queue_task("add", [i, 1]) for i in range(20)))
        )
        await asyncio.sleep(0.5)  # the calls retry meanwhile
        assert not pending.done()
        await loop.run_in_executor(None, own_redis.start)
        queued = await asyncio.wait_for(pending, 15)
        stored = await asyncio.gather(*(c.get_task(t.id) for t in queued))
        assert all(t is not None and t.status == TaskState.QUEUED for t in stored)
    finally:
        await c.close()


async def test_worker_waits_for_redis_and_logs_each_retry(own_redis, caplog) -> None:
    import tq_jobs  # noqa: F401

    caplog.set_level(logging.WARNING, logger="pulsar.tasks")
    backend = tasks.create_backend(own_redis.url, retry_timeout=0.3)
    consumer = tasks.Consumer(backend, worker_id="w-wait", queues=("default",), lease=5.0)
    consumer.start()
    try:
        await asyncio.sleep(1.5)
        retries = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(retries) >= 2, [r.getMessage() for r in caplog.records]
        assert consumer._main is not None and not consumer._main.done()  # still waiting
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, own_redis.start)
        c = tasks.connect(own_redis.url, set_default=False)
        try:
            t = await c.queue_task("add", [2, 3])
            assert (await c.wait_for_task(t.id, timeout=15)).result == 5
        finally:
            await c.close()
    finally:
        await consumer.stop(grace=1.0)
        await backend.close()


def test_taskqueue_started_while_redis_is_down_waits_for_it(own_redis) -> None:
    run = h.Run(
        "tq_app.py",
        *("--modules", "tq_jobs", "--workers", "1", "--backend", own_redis.url),
    )
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # it must not exit meanwhile (it used to at 6 s)
            assert run.proc.poll() is None, run.finish()[2][-2000:]
            time.sleep(0.2)
        own_redis.start()
        run.wait_ready(timeout=30)
        with tasks.connect_sync(own_redis.url) as c:
            assert c.wait_for_task(c.queue_task("add", [1, 1]).id, timeout=20).result == 2
        run.proc.terminate()
        code, _, err = run.finish()
        assert code == 0, err[-3000:]
        assert "retry" in err.lower() or "unavailable" in err.lower(), err[-3000:]
    finally:
        if run.proc.poll() is None:
            run.kill()


# -- SQLite: read-only and corrupted files -----------------------------------------------------


_READ_ONLY_CHECK = r"""
import asyncio, os, sys
from pulsar.apps import tasks
import pulsar.apps.tasks._sqlite, tq_jobs, concurrent.futures.thread  # imported as root
os.setgid(65534); os.setuid(65534)  # nobody: the file and its folder are not writable

async def main(url):
    c = tasks.connect(url, set_default=False)
    listed = await c.list_tasks()
    one = await c.get_task(listed[0].id)
    counts = await c.counts()
    try:
        await c.queue_task("add", [1, 2])
    except tasks.BackendError as exc:
        print("WRITE", exc)
    print("READ", len(listed), one.result, counts)
    await c.close()

asyncio.run(main(sys.argv[1]))
"""


async def test_sqlite_read_only_database_can_be_inspected() -> None:
    import pathlib
    import tempfile

    import tq_jobs  # noqa: F401

    # a folder of its own under the system temp dir (pytest's is private to root)
    top = pathlib.Path(tempfile.mkdtemp(prefix="pulsar-tasks-ro-"))
    os.chmod(top, 0o755)
    try:
        await _read_only_check(top)
    finally:
        for path in (top, top / "ro"):
            with contextlib.suppress(OSError):
                os.chmod(path, 0o755)
        shutil.rmtree(top, ignore_errors=True)


async def _read_only_check(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    url = f"sqlite:///{folder}/tasks.db"
    async with consuming(url):
        c = tasks.connect(url, set_default=False)
        t = await c.queue_task("add", [1, 2])
        await c.wait_for_task(t.id, timeout=10)
        await c.close()
    for name in os.listdir(folder):
        os.chmod(folder / name, 0o444)
    os.chmod(folder, 0o555)
    try:
        if os.geteuid() == 0:
            cmd = [sys.executable, "-c", _READ_ONLY_CHECK, url]
        else:
            cmd = [sys.executable, "-c", _READ_ONLY_CHECK.replace("os.setgid", "# "), url]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([h.HERE, *sys.path])}
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        os.chmod(folder, 0o755)
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "READ 1 3 {'SUCCESS': 1}" in text, text
    assert "WRITE" in text and "read-only" in text and "tasks.db" in text, text


async def test_sqlite_corrupted_file_is_a_backend_error_naming_it(tmp_path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database" * 1000)
    c = tasks.connect(f"sqlite:///{path}", set_default=False)
    try:
        for call in (c.list_tasks(), c.get_task("x"), c.counts()):
            with pytest.raises(tasks.BackendError, match=r"broken\.db") as info:
                await call
            assert "\n" not in str(info.value)
    finally:
        await c.close()


def test_cli_status_on_a_corrupted_file_is_one_error_line(tmp_path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"garbage" * 1000)
    proc = subprocess.run(
        [sys.executable, "-m", "pulsar.apps.tasks", "status", "--backend", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.db" in lines[0], proc.stderr
