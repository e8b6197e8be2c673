"""The API a user meets first, on every backend (part of the conformance suite): ``result`` is
the value, job arguments and task options have separate places, the sync shortcut, a job sees
its own task, duplicate ids and oversized payloads are refused, duplicate job names are an
error."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
import tq_helpers as h
import tq_jobs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState
from pulsar.apps.tasks._client import DEFAULT_MAX_PAYLOAD_SIZE


def consuming(url: str, **kwargs: Any) -> Any:
    return h.consuming(url, worker_id="w-api", **kwargs)


async def test_result_is_the_decoded_value_raw_text_kept(client, backend_url) -> None:
    async with consuming(backend_url):
        t = await client.queue_task("add", [1, 2])
        done = await client.wait_for_task(t.id, timeout=10)
        listed = await client.list_tasks(status="SUCCESS")
    assert done.result == 3 and isinstance(done.result, int)
    assert done.result_json == "3" and done.value == 3  # the raw text under an explicit name
    assert done.result_or_raise() == 3
    assert [x.result for x in listed] == [3]
    assert done.as_dict()["result"] == 3 and "result_json" not in done.as_dict()


async def test_job_arguments_named_like_options_reach_the_job(client, backend_url) -> None:
    kwargs = {"queue": "q", "countdown": 7, "eta": "soon", "expires": 1.5, "task_id": "x"}
    async with consuming(backend_url):
        t = await client.queue_task("options_echo", kwargs=kwargs)
        assert t.queue == "default" and t.id != "x" and t.expires is None
        assert t.eta <= time.time()
        t2 = await tq_jobs.options_echo.delay(**kwargs)  # delay: every keyword is the job's
        done = [await client.wait_for_task(x.id, timeout=10) for x in (t, t2)]
    assert [d.result for d in done] == [["q", 7, "soon", 1.5, "x"]] * 2
    assert done[0].kwargs == kwargs


async def test_options_have_their_own_place(client, backend_url) -> None:
    t = await client.queue_task(
        "add", [1], {"b": 2}, countdown=30, queue="other", task_id="my-id", expires=60
    )
    assert (t.id, t.queue, t.args, t.kwargs) == ("my-id", "other", [1], {"b": 2})
    assert t.eta == pytest.approx(time.time() + 30, abs=2)
    assert t.expires == pytest.approx(time.time() + 60, abs=2)
    t2 = await tq_jobs.add.apply(args=[1, 2], countdown=30)
    t3 = await tq_jobs.add.apply_async(kwargs={"a": 1, "b": 2}, eta=time.time() + 30)
    assert t2.args == [1, 2] and t3.kwargs == {"a": 1, "b": 2}
    stored = await client.get_task("my-id")
    assert stored is not None and stored.queue == "other" and stored.status == TaskState.QUEUED


async def test_expires_keeps_its_meaning_beyond_1e9(client) -> None:
    """``expires`` as a number is always seconds from now (it used to become a UNIX time at
    1e9); absolute times are datetimes."""
    now = time.time()
    far = await client.queue_task("add", [1, 2], expires=2e9)
    assert far.expires == pytest.approx(now + 2e9, abs=5)
    delta = await client.queue_task("add", [1, 2], expires=dt.timedelta(minutes=1))
    assert delta.expires == pytest.approx(now + 60, abs=5)
    when = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    absolute = await client.queue_task("add", [1, 2], expires=when)
    assert absolute.expires == pytest.approx(when.timestamp(), abs=1)


async def test_arguments_in_the_wrong_shape_are_refused(client) -> None:
    with pytest.raises(TypeError, match="args must be a list"):
        await client.queue_task("add", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="args must be a list"):
        await client.queue_task("add", "12")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kwargs must be a dict"):
        await client.queue_task("add", [1], [2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="countdown or eta"):
        await client.queue_task("add", [1, 2], countdown=1, eta=time.time())
    assert await client.list_tasks() == []


async def test_sync_shortcut_in_plain_sync_code(backend_url) -> None:
    """``add.delay(1, 2)`` in sync code (no event loop in the thread) queues and returns the
    record through the open sync client."""
    out: dict[str, object] = {}

    def sync_code() -> None:
        with tasks.connect_sync(backend_url) as c:
            task = tq_jobs.add.delay(1, 2)
            out["task"] = task
            out["applied"] = tq_jobs.add.apply(args=[3], kwargs={"b": 4}, queue="default")
            out["stored"] = c.get_task(task.id)

    async with consuming(backend_url):
        await asyncio.get_running_loop().run_in_executor(None, sync_code)
        waiter = tasks.connect(backend_url, set_default=False)
        try:
            task = out["task"]
            assert isinstance(task, tasks.Task)
            done = await waiter.wait_for_task(task.id, timeout=10)
            applied = out["applied"]
            assert isinstance(applied, tasks.Task)
            done2 = await waiter.wait_for_task(applied.id, timeout=10)
        finally:
            await waiter.close()
    assert done.result == 3 and done2.result == 7
    assert isinstance(out["stored"], tasks.Task)


async def test_a_job_sees_its_own_task(client, backend_url) -> None:
    async with consuming(backend_url):
        sync = await client.queue_task("whoami")
        asy = await client.queue_task("awhoami")
        done = [await client.wait_for_task(t.id, timeout=10) for t in (sync, asy)]
    assert done[0].result == {"id": sync.id, "attempts": 1, "queue": "other", "name": "whoami"}
    assert done[1].result == {"id": asy.id, "attempts": 1, "queue": "default", "name": "awhoami"}
    assert tasks.current_task() is None  # outside a run


async def test_duplicate_task_id_is_the_same_error_on_every_backend(client) -> None:
    first = await client.queue_task("add", [1, 2], task_id="dup")
    with pytest.raises(tasks.DuplicateTask, match="dup"):
        await client.queue_task("add", [5, 5], task_id="dup")
    stored = await client.get_task("dup")
    assert stored is not None and stored.args == [1, 2] and stored.time_queued == first.time_queued
    assert len(await client.list_tasks()) == 1


async def test_payload_over_max_payload_size_is_refused_before_storing(backend_url) -> None:
    c = tasks.connect(backend_url, set_default=False, max_payload_size=1000)
    try:
        await c.queue_task("add", ["x" * 900, ""])  # under the limit
        with pytest.raises(tasks.PayloadTooLarge, match="max_payload_size"):
            await c.queue_task("add", ["x" * 2000, ""])
        assert len(await c.list_tasks()) == 1
    finally:
        await c.close()
    default = tasks.connect(backend_url, set_default=False)
    try:
        assert default.max_payload_size == DEFAULT_MAX_PAYLOAD_SIZE == 4 * 1024 * 1024
        with pytest.raises(tasks.PayloadTooLarge):
            await default.queue_task("add", ["x" * (10 * 1024 * 1024), ""])
    finally:
        await default.close()


def test_sync_shortcut_without_a_client_is_a_clear_error() -> None:
    with pytest.raises(tasks.TaskError, match="connect_sync"):
        tq_jobs.add.delay(1, 2)


def test_two_jobs_with_one_name_is_an_error_naming_both() -> None:
    def first() -> None: ...

    tasks.job(name="api-dup")(first)
    with pytest.raises(tasks.TaskError, match=r"two jobs are named 'api-dup'.*first.*second"):

        @tasks.job(name="api-dup")
        def second() -> None: ...

    with pytest.raises(tasks.TaskError, match="add"):

        @tasks.job()
        def add(a: int, b: int) -> int:  # tq_jobs declares 'add'
            return a + b

    @tasks.job(name="add-again")  # an explicit name resolves it
    def add2(a: int, b: int) -> int:
        return a + b

    assert tasks.get_job("add") is tq_jobs.add
    tasks.job(name="api-dup")(first)  # the same function declared again: no error


def test_result_json_is_what_backends_store() -> None:
    t = tasks.Task(id="a", name="add", result_json=json.dumps({"k": [1]}))
    assert t.result == {"k": [1]} and tasks.Task.from_row(t.to_row()).result == {"k": [1]}


def test_no_thread_left_by_the_sync_shortcut() -> None:
    before = threading.active_count()
    with tasks.connect_sync("sqlite://:memory:"):
        pass
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


async def test_worker_logs_received_succeeded_failed_retried(client, backend_url, caplog) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="pulsar.tasks")
    async with consuming(backend_url):
        ok = await client.queue_task("add", [1, 2])
        bad = await client.queue_task("boom", ["bad thing"])
        retried = await client.queue_task("sync_boom", ["k"])
        for t in (ok, bad, retried):
            await client.wait_for_task(t.id, timeout=10)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"task add[{ok.id}] received (attempt 1)" in text
    assert f"task add[{ok.id}] succeeded in " in text and "s: 3" in text
    assert f"task boom[{bad.id}] failed: ValueError: bad thing" in text
    assert f"task sync_boom[{retried.id}] retry in " in text and "KeyError: 'k'" in text


@pytest.mark.parametrize("job", ["queue_another", "queue_another_in_process"])
async def test_a_sync_job_queues_another_with_delay(client, backend_url, job) -> None:
    async with consuming(backend_url):
        t = await client.queue_task(job, [2, 5])
        # a job in a child process of its own: a fork and an import, slow on a loaded host
        done = await client.wait_for_task(t.id, timeout=30)
        assert done.status == TaskState.SUCCESS, done.error
        child = await client.wait_for_task(done.result, timeout=30)
    assert child.name == "add" and child.result == 7


def test_logs_and_errors_mask_the_backend_password() -> None:
    """The worker's ready line and every BackendError name the backend by public_url()."""
    backend = tasks.create_backend("redis://user:s3cret@127.0.0.1:6379/13")
    assert backend.public_url() == "redis://user:***@127.0.0.1:6379/13"
    assert "s3cret" not in backend.describe()
    plain = tasks.create_backend("redis://127.0.0.1:6379/13")
    assert plain.public_url() == "redis://127.0.0.1:6379/13"
