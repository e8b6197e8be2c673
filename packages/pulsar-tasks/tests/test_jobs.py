"""Sans-IO units: job options, back-off, due times, the task record and its state table."""

from __future__ import annotations

import datetime as dt

import pytest
import tq_jobs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState
from pulsar.apps.tasks._state import FINAL, PENDING, REQUEUEABLE, TRANSITIONS


def test_function_and_class_jobs_are_registered() -> None:
    assert tasks.get_job("add") is tq_jobs.add
    assert tq_jobs.add(2, 3) == 5  # calling a job runs it here
    assert tasks.get_job("multiply").default_queue == "default"
    assert tasks.get_job("elsewhere").default_queue == "other"
    assert tq_jobs.aadd.is_async and not tq_jobs.add.is_async
    assert tq_jobs.add.meta()["doc"] == "Add two numbers."


def test_bad_job_options() -> None:
    with pytest.raises(TypeError, match="unexpected option"):
        tasks.job(retries=3)(lambda: None)
    with pytest.raises(tasks.TaskError, match="cron"):
        tasks.job(name="badcron", cron="not a cron")(lambda: None)
    with pytest.raises(tasks.TaskError, match="not both"):
        tasks.job(name="both", cron="* * * * *", run_every=dt.timedelta(seconds=1))(lambda: 0)


def test_retry_policy_and_backoff() -> None:
    job = tasks.job(name="bo", max_retries=2, retry_on=KeyError, retry_delay=1.0, retry_jitter=0.0)(
        lambda: None
    )
    assert job.should_retry(KeyError("x"), 1) and job.should_retry(KeyError("x"), 2)
    assert not job.should_retry(KeyError("x"), 3)
    assert not job.should_retry(ValueError("x"), 1)
    assert [job.retry_delay_for(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    jittery = tasks.job(name="bj", retry_delay=10.0, retry_jitter=0.1)(lambda: None)
    delays = {jittery.retry_delay_for(1) for _ in range(50)}
    assert all(9.0 <= d <= 11.0 for d in delays) and len(delays) > 1


def test_due_times_are_shared_by_every_scheduler() -> None:
    assert tq_jobs.tick.next_due(100.2) == 101.0
    cron = tasks.job(name="every5", cron="*/5 * * * *")(lambda: None)
    start = dt.datetime(2024, 1, 1, 12, 3, tzinfo=dt.UTC).timestamp()
    assert cron.next_due(start) == dt.datetime(2024, 1, 1, 12, 5, tzinfo=dt.UTC).timestamp()
    assert tq_jobs.add.next_due(0) is None


def test_payload_serialization() -> None:
    assert tasks.Task(id="x", name="add", payload='{"args": [1], "kwargs": {"b": 2}}').kwargs == {
        "b": 2
    }
    from pulsar.apps.tasks._job import dumps_payload

    with pytest.raises(tasks.TaskSerializationError, match="JSON"):
        dumps_payload([{1, 2}], {})


def test_record_roundtrip_and_states() -> None:
    t = tasks.Task(id="x", name="add", attempts=2, eta=5.0)
    row = {k: ("" if v is None else str(v)) for k, v in t.to_row().items()}
    back = tasks.Task.from_row(row)
    assert back == t
    with pytest.raises(ValueError):
        tasks.Task.from_row({"id": "x", "payload": "{}"})
    for state in FINAL:  # no worker leaves a final state; an operator's requeue queues again
        expected = {TaskState.QUEUED} if state in REQUEUEABLE else set()
        assert TRANSITIONS[state] == expected
    assert TaskState.SUCCESS not in REQUEUEABLE
    assert {TaskState.QUEUED, TaskState.RETRY} == PENDING
    assert all(TaskState.STARTED in TRANSITIONS[s] for s in PENDING)
    with pytest.raises(tasks.TaskFailed):
        tasks.Task(id="x", name="add", status=TaskState.FAILURE, error="e").result_or_raise()


def test_unknown_backend_scheme() -> None:
    with pytest.raises(tasks.BackendError, match="unknown task backend"):
        tasks.create_backend("mongo://x")
