"""Timeouts count from the start of a run, and a timed-out or revoked sync job is really
stopped (its child process is killed), on every backend."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import tq_helpers as h
import tq_jobs

from pulsar.apps.tasks import TaskState


def consuming(url: str, **kwargs: Any) -> Any:
    return h.consuming(url, worker_id="w-timeouts", queues=("default",), **kwargs)


async def test_12_sync_jobs_of_300ms_with_a_500ms_timeout_all_succeed(client, backend_url) -> None:
    """The clock starts with the run, not with the wait for a thread (8 of 12 timed out)."""
    async with consuming(backend_url, concurrent_tasks=12, lease=5.0):
        queued = [await client.queue_task("sync_timed", [0.3, str(i)]) for i in range(12)]
        done = [await client.wait_for_task(t.id, timeout=30) for t in queued]
    assert [d.status for d in done] == [TaskState.SUCCESS] * 12, [d.error for d in done]
    assert sorted(d.result for d in done) == sorted(str(i) for i in range(12))


async def test_timed_out_sync_job_is_killed(client, backend_url, tmp_path, monkeypatch) -> None:
    marks = str(tmp_path / "marks")
    monkeypatch.setattr(tq_jobs, "MARKS", marks)
    async with consuming(backend_url, lease=5.0):
        t = await client.queue_task("sync_timed", [1.5, "late"])
        done = await client.wait_for_task(t.id, timeout=10)
        assert done.status == TaskState.FAILURE and done.error == "timeout"
        assert done.time_finished - done.time_started < 1.2
        await asyncio.sleep(1.6)  # it would have finished by now
    assert h.marks(marks) == []  # killed: its side effect after the timeout never happened


async def test_revoked_running_sync_job_is_killed(client, backend_url, tmp_path, monkeypatch):
    marks = str(tmp_path / "marks")
    monkeypatch.setattr(tq_jobs, "MARKS", marks)
    async with consuming(backend_url, lease=0.3):  # renewals (and revoke checks) every 0.1 s
        t = await client.queue_task("sync_long", [1.5, "r"])
        deadline = time.monotonic() + 10
        while not h.marks(marks, "sync_long-start") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert await client.revoke(t.id) == TaskState.STARTED
        done = await client.wait_for_task(t.id, timeout=10)
        assert done.status == TaskState.REVOKED
        await asyncio.sleep(1.6)
    assert h.marks(marks) == ["sync_long-start:r"]  # stopped before its end


async def test_sync_job_in_a_child_process_sees_its_task_and_its_errors(client, backend_url):
    async with consuming(backend_url, lease=5.0):
        t = await client.queue_task("sync_long", [0, "x"])
        boom = await client.queue_task("sync_boom", ["key!"])
        done = await client.wait_for_task(t.id, timeout=10)
        failed = await client.wait_for_task(boom.id, timeout=10)
    assert done.status == TaskState.SUCCESS and done.result["id"] == t.id
    assert done.result["pid"] != os.getpid()  # it ran in a child process
    assert failed.status == TaskState.FAILURE and failed.attempts == 2  # retried: KeyError
    assert failed.error == "KeyError: 'key!'" and "sync_boom" in failed.traceback
