"""The settings of the ``tasks`` application (declared once; see ``docs/settings.md``)."""

from __future__ import annotations

from pulsar import Setting

# the validators live in pulsar-core's config module (not re-exported by ``pulsar``)
from pulsar.validators import (
    validate_bool,
    validate_list_of_strings,
    validate_non_negative_int,
    validate_non_negative_number,
    validate_positive_int,
    validate_positive_number,
    validate_string,
)

__all__ = ["TASKS"]

TASKS = "Task Queue"


class TaskBackend(Setting):
    name = "backend"
    app = "tasks"
    section = TASKS
    flags = ["--backend"]
    meta = "URL"
    default = "sqlite:///pulsar-tasks.db"
    validator = validate_string
    desc = "Task store: sqlite:///path/tasks.db (embedded) or redis://host:port/db."


class TaskModules(Setting):
    name = "modules"
    app = "tasks"
    section = TASKS
    flags = ["--modules"]
    meta = "MODULES"
    default = []  # type: ignore[var-annotated]
    validator = validate_list_of_strings
    desc = "Comma-separated modules declaring the jobs; workers import them."


class ConcurrentTasks(Setting):
    name = "concurrent_tasks"
    app = "tasks"
    section = TASKS
    flags = ["--concurrent-tasks"]
    meta = "INT"
    default = 10
    validator = validate_positive_int
    desc = "Tasks each worker runs at once (async jobs on its loop, sync ones in its threads)."


class TaskQueues(Setting):
    name = "task_queues"
    app = "tasks"
    section = TASKS
    flags = ["--queues"]
    meta = "QUEUES"
    default = []  # type: ignore[var-annotated]
    validator = validate_list_of_strings
    desc = "Queues the workers consume; empty: 'default' and every queue of the loaded jobs."


class TaskLease(Setting):
    name = "task_lease"
    app = "tasks"
    section = TASKS
    flags = ["--task-lease"]
    meta = "SECONDS"
    default = 30.0
    validator = validate_positive_number
    desc = "Lease of a claimed task; a task whose worker died runs again after it expires."
    doc = """
        The worker renews the leases of its running tasks every third of this time, so a
        living worker keeps its tasks however long they run. A short lease redelivers the
        tasks of a dead worker sooner but costs more renewals.
        """


class ResultTtl(Setting):
    name = "result_ttl"
    app = "tasks"
    section = TASKS
    flags = ["--result-ttl"]
    meta = "SECONDS"
    default = 86400.0
    validator = validate_non_negative_number
    desc = "Seconds a finished task (result or error) is kept; 0 keeps it forever."


class SchedulePeriodic(Setting):
    name = "schedule_periodic"
    app = "tasks"
    section = TASKS
    flags = ["--schedule-periodic"]
    default = True
    validator = validate_bool
    desc = "Run the scheduler of periodic jobs in the arbiter (safe with several schedulers)."


class MaxPayloadSize(Setting):
    name = "max_payload_size"
    app = "tasks"
    section = TASKS
    flags = ["--max-payload-size"]
    meta = "BYTES"
    default = 4 * 1024 * 1024
    validator = validate_non_negative_int
    desc = "Largest JSON arguments a task queued from this application may carry; 0: no limit."
    doc = """
        A larger task is refused with ``PayloadTooLarge`` before anything is stored (large
        data belongs in a file or a database, the task carries a reference).
        """


class TaskEvents(Setting):
    name = "task_events"
    app = "tasks"
    section = TASKS
    flags = ["--task-events"]
    default = False
    validator = validate_bool
    desc = "Record task events (queued, started, progress, ...) for `pulsar-tasks events`."
    doc = """
        Off by default: with it, every change of a task also writes an event in the same
        step (a Lua ``XADD`` on Redis, a trigger's insert on SQLite and PostgreSQL), which
        costs the hot path some work. Turn it on in the producers too (``connect(url,
        events=True)`` or ``?events=1`` in the URL) to see their ``queued`` events.
        """
