"""pulsar.apps.tasks — a distributed task queue: SQLite embedded by default, Redis to scale out,
at-least-once delivery with leases. See the package README."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pulsar-tasks")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    import pulsar

    __version__ = pulsar.__version__

from ._app import TaskQueue
from ._backend import Backend, Claim, create_backend
from ._client import SyncClient, TaskClient, connect, connect_sync, default_client
from ._errors import (
    BackendError,
    DuplicateTask,
    JobOverlap,
    PayloadTooLarge,
    TaskError,
    TaskFailed,
    TaskNotFound,
    TaskSerializationError,
    TaskTimeout,
    UnknownJob,
)
from ._events import TaskEvent
from ._job import Job, current_task, get_job, job, registry
from ._progress import update
from ._rpc import TaskQueueRpc
from ._scheduler import Scheduler, periodic_task_id
from ._state import Task, TaskState
from ._worker import Consumer
from ._workflow import Signature, Workflow, chain, chord, group

__all__ = [
    "__version__",
    # application and jobs
    "TaskQueue",
    "Job",
    "job",
    "get_job",
    "registry",
    "current_task",
    "update",
    # tasks and producers
    "Task",
    "TaskState",
    "TaskEvent",
    "TaskClient",
    "SyncClient",
    "connect",
    "connect_sync",
    "default_client",
    "TaskQueueRpc",
    # workflows
    "Signature",
    "Workflow",
    "chain",
    "group",
    "chord",
    # backends and machinery
    "Backend",
    "Claim",
    "create_backend",
    "Consumer",
    "Scheduler",
    "periodic_task_id",
    # errors
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
]
