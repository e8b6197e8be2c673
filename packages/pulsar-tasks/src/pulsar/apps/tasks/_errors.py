"""The exceptions of pulsar-tasks; :class:`TaskError` is the base of them all."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "DuplicateTask",
    "PayloadTooLarge",
    "JobOverlap",
    "TaskError",
    "TaskFailed",
    "TaskNotFound",
    "TaskSerializationError",
    "TaskTimeout",
    "UnknownJob",
]


class TaskError(Exception):
    """Base class of the errors raised by pulsar-tasks."""


class UnknownJob(TaskError):
    """``queue_task`` named a job that no loaded module (nor any running worker) declares."""


class TaskSerializationError(TaskError, TypeError):
    """Arguments (or a result) cannot be serialized as JSON."""


class JobOverlap(TaskError):
    """A job with ``overlap=False`` already has a task with the same arguments queued or running."""


class TaskNotFound(TaskError, KeyError):
    """No task with that id (never queued, or its result expired)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not found"


class TaskTimeout(TaskError):
    """A task ran past its job's ``timeout`` (or ``wait_for_task`` waited past its own)."""


class TaskFailed(TaskError):
    """Raised by ``Task.result_or_raise()`` for a task that ended in FAILURE or REVOKED."""


class BackendError(TaskError):
    """The backend URL is invalid or the backend cannot be used."""


class PayloadTooLarge(TaskError, ValueError):
    """A task's JSON arguments are larger than the client's ``max_payload_size``."""


class DuplicateTask(TaskError):
    """``queue_task(..., task_id=...)`` named an id that a stored task already has."""
