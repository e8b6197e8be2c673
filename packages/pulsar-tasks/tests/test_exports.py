"""The public surface of pulsar.apps.tasks is pinned."""

from __future__ import annotations

from pulsar.apps import tasks

EXPECTED = {
    "__version__",
    "TaskQueue",
    "Job",
    "job",
    "get_job",
    "registry",
    "current_task",
    "update",
    "Task",
    "TaskEvent",
    "TaskState",
    "TaskClient",
    "SyncClient",
    "connect",
    "connect_sync",
    "default_client",
    "TaskQueueRpc",
    "Signature",
    "Workflow",
    "chain",
    "group",
    "chord",
    "Backend",
    "Claim",
    "create_backend",
    "Consumer",
    "Scheduler",
    "periodic_task_id",
    "TaskError",
    "BackendError",
    "DuplicateTask",
    "JobOverlap",
    "PayloadTooLarge",
    "TaskFailed",
    "TaskNotFound",
    "TaskSerializationError",
    "TaskTimeout",
    "UnknownJob",
}


def test_all_is_pinned_and_resolves() -> None:
    assert set(tasks.__all__) == EXPECTED
    for name in tasks.__all__:
        assert getattr(tasks, name) is not None


def test_errors_share_one_base() -> None:
    for name in tasks.__all__:
        obj = getattr(tasks, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, tasks.TaskError)
