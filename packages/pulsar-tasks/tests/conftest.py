"""Fixtures of pulsar-tasks' tests: one ``backend_url`` parametrized over SQLite, Redis and
PostgreSQL.

Redis tests use database 13 under a key prefix of their own and delete only it; PostgreSQL
tests use a schema of the session's own (``pt_<random>``) on 127.0.0.1:5432, database ``test``,
dropped at the end. Without a server they are skipped with a reason, except when ``CI=true``
(then they run and fail).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # helper modules (jobs) importable by name, also in child processes
    sys.path.insert(0, HERE)

from tq_helpers import POSTGRES_URL, postgres_available, require_postgres  # noqa: E402

REDIS_URL = os.environ.get("PULSAR_TASKS_TEST_REDIS", "redis://127.0.0.1:6379/13")


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> None:
    """Skip (visibly) without a Redis server, unless CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        return
    if not redis_available():
        pytest.skip("no Redis server answers on 127.0.0.1:6379")


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A schema of this test session's own (dropped at the end): every postgres test uses it,
    each flushing it first."""
    import uuid

    schema = f"pt_{uuid.uuid4().hex[:12]}"
    yield schema
    if postgres_available():
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own on the shared server, dropped afterwards."""
    import uuid

    from pulsar.apps import tasks

    require_postgres()
    url = f"{POSTGRES_URL}?schema=pt_{uuid.uuid4().hex[:12]}"
    yield url
    backend = tasks.create_backend(url)
    try:
        await backend.drop_schema()
    finally:
        await backend.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def backend_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    """A fresh backend URL: a SQLite file in tmp_path, Redis db 13 under a key prefix of its
    own, or a PostgreSQL schema of this session's own (flushed)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tasks.db"
        return
    if request.param == "postgres":
        require_postgres()
        schema = request.getfixturevalue("postgres_schema")
        url = f"{POSTGRES_URL}?schema={schema}"
        await _flush_prefix(url)  # what an earlier test left
        yield url
        await _flush_prefix(url)
        return
    require_redis()
    # a key prefix of its own: concurrent runs of this suite share database 13 safely, and
    # only this prefix is deleted afterwards
    import uuid

    url = f"{REDIS_URL}?prefix=pt-{uuid.uuid4().hex[:12]}"
    yield url
    await _flush_prefix(url)


async def _flush_prefix(url: str) -> None:
    from pulsar.apps import tasks

    backend = tasks.create_backend(url)
    try:
        await backend.flush()
    finally:
        await backend.close()


@pytest.fixture
async def client(backend_url: str) -> AsyncIterator[object]:
    from pulsar.apps import tasks

    c = tasks.connect(backend_url, set_default=True)
    yield c
    await c.close()


def _stray_children() -> list[str]:
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            if "multiprocessing.forkserver" in cmd or "resource_tracker" in cmd:
                continue
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(f"{child.pid} {cmd}")
        except psutil.Error:
            continue
    return out


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Every test leaves no child process behind."""
    yield
    import tq_helpers

    tq_helpers.kill_running()
    stray = _stray_children()
    assert not stray, f"child processes left behind: {stray}"


@pytest.fixture(autouse=True, scope="session")
def no_stale_wakeup_sockets() -> Iterator[None]:
    """Workers SIGKILLed by the fault tests leave their SQLite wake-up sockets behind (a later
    process using the same database would remove them); remove those of dead processes."""
    yield
    import glob
    import tempfile

    from pulsar.apps.tasks._sqlite import _Wake

    for directory in glob.glob(os.path.join(tempfile.gettempdir(), "pulsar-tasks-*")):
        _Wake.sweep(directory)
