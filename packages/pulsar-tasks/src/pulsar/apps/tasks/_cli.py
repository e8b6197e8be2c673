"""The ``pulsar-tasks`` command line.

* ``pulsar-tasks worker --backend URL --modules pkg.jobs [pulsar options]``: run a TaskQueue;
* ``pulsar-tasks queue JOB key=value... [--wait SECONDS]``: queue a task (values are JSON when
  they parse as JSON, strings otherwise; ``--arg VALUE`` adds a positional argument);
* ``pulsar-tasks status [ID] [--status S] [--limit N]``: a table of recent tasks, or one task
  (a workflow's record: with its tree);
* ``pulsar-tasks jobs``: the jobs known to the backend;
* ``pulsar-tasks events [--queue Q] [--task ID] [--kind K] [--json]``: a live tail of the task
  events, one line (or JSON object) per event, until Ctrl-C or SIGTERM.

The operator's commands (Celery's ``inspect active`` / ``purge``, RQ's ``requeue`` and failed
job registry), each with ``--json`` (one JSON document on stdout) or a table:

* ``pulsar-tasks inspect``: every live worker (from its heartbeat) and the tasks it runs now;
* ``pulsar-tasks revoke ID...``: revoke tasks (pending: at once; running: stopped);
* ``pulsar-tasks purge QUEUE [--yes]``: revoke every task of QUEUE that has not started, after
  a confirmation asked on the terminal (none without one: ``--yes``);
* ``pulsar-tasks retry ID... | --failed [--since WHEN]``: queue failed (or revoked) tasks again;
* ``pulsar-tasks failed [--since WHEN]``: the dead-letter list, FAILURE tasks with their error.

``WHEN`` is a duration back from now (``90s``, ``30m``, ``1h``, ``2d``, ``1h30m``) or an ISO 8601
date and time (``2026-12-03T14:00``, ``2026-12-03T14:00+01:00``; without an offset: UTC).

Exit status: 0 done; 1 something asked for was not done (an unknown id, a task that cannot be
revoked or requeued, a purge not confirmed); 2 a usage or backend error.
The backend comes from ``--backend`` or the ``PULSAR_BACKEND`` environment variable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from ._client import SyncClient
from ._errors import BackendError, TaskError
from ._events import KINDS, TaskEvent
from ._job import import_modules
from ._state import Task, TaskState

__all__ = ["main"]

DEFAULT_BACKEND = "sqlite:///pulsar-tasks.db"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def _date(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, width: int = 50) -> str:
    text = " ".join(text.split())  # one line
    return (text[: width - 3] + "...") if len(text) > width else text


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned text table; no rows (nothing matched) gives the headers alone."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def _status(task: Task) -> str:
    """The status, with the progress of a running task that published one (``STARTED 40%``)."""
    if task.status == TaskState.STARTED and task.progress is not None:
        return f"STARTED {task.progress:.0%}"
    return str(task.status)


def format_event(event: TaskEvent) -> str:
    """One event on one line: time, kind, job[id], then what the event carries."""
    stamp = dt.datetime.fromtimestamp(event.time, dt.UTC).strftime("%H:%M:%S.%f")[:-3]
    parts = [stamp, event.kind.ljust(9), f"{event.name}[{event.task_id}]", f"queue={event.queue}"]
    if event.worker:
        parts.append(f"worker={event.worker}")
    parts.append(f"attempt={event.attempts}")
    if event.progress is not None:
        parts.append(f"progress={event.progress:.0%}")
    if event.meta is not None:
        parts.append(f"meta={_short(json.dumps(event.meta), 60)}")
    if event.reason:
        parts.append(f"reason={event.reason}")
    if event.error:
        parts.append(f"error={_short(event.error, 80)}")
    return "  ".join(parts)


def format_table(rows: Sequence[Task]) -> str:
    """Tasks as an aligned text table."""
    headers = ("ID", "JOB", "STATUS", "TRIES", "QUEUED", "FINISHED", "RESULT / ERROR")
    lines = []
    for t in rows:
        outcome = t.error if t.error else (t.result_json or "")
        lines.append(
            (
                t.id,
                t.name,
                _status(t),
                str(t.attempts),
                _when(t.time_queued),
                _when(t.time_finished),
                (outcome[:47] + "...") if len(outcome) > 50 else outcome,
            )
        )
    return text_table(headers, lines)


def format_failed(rows: Sequence[Task]) -> str:
    """The dead-letter list as a table: failed tasks with their error."""
    headers = ("ID", "JOB", "QUEUE", "TRIES", "FINISHED", "ERROR")
    return text_table(
        headers,
        [
            (
                t.id,
                t.name,
                t.queue,
                str(t.attempts),
                _date(t.time_finished),
                _short(t.error or "", 100),
            )
            for t in rows
        ],
    )


def format_workers(workers: Sequence[dict[str, Any]], now: float) -> str:
    """``inspect``: one line per running task (the worker's columns on its first line only),
    one line for an idle worker."""
    headers = ("WORKER", "HOST", "PID", "QUEUES", "BUSY", "TASK", "JOB", "STARTED", "RUNTIME")
    lines: list[tuple[str, ...]] = []
    for w in workers:
        running = list(w.get("running") or [])
        worker = (
            str(w.get("worker", "?")),
            str(w.get("host", "?")),
            str(w.get("pid", "?")),
            ",".join(w.get("queues") or []),
            f"{len(running)}/{w.get('concurrency', '?')}",
        )
        if not running:
            lines.append((*worker, "-", "", "", ""))
        for i, run in enumerate(running):
            started = run.get("started")
            lines.append(
                (
                    *(worker if i == 0 else ("",) * len(worker)),
                    str(run.get("id")),
                    str(run.get("name") or "?"),
                    _when(started),
                    "-" if started is None else _duration(max(0.0, now - started)),
                )
            )
    return text_table(headers, lines)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")


def parse_when(text: str, now: float | None = None) -> float:
    """``WHEN`` as a UNIX time: a duration back from now (``90s``, ``30m``, ``1h``, ``2d``,
    ``1h30m``) or an ISO 8601 date and time (naive means UTC). Raises ValueError."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text))
        return (time.time() if now is None else now) - seconds
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a WHEN: give a duration back from now (30m, 1h, 2d, 1h30m) or an "
            f"ISO date and time (2026-12-03T14:00, naive means UTC)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _when_arg(text: str) -> float:
    try:
        return parse_when(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def format_task(task: Task) -> str:
    """One task, field by field."""
    data = task.as_dict()
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if key.startswith("time_") or key in ("eta", "expires", "lease_expires"):
            value = _when(value) if value is not None else "-"
        if key == "traceback" and value:
            lines.append(f"{key.ljust(width)}  |")
            lines.extend("    " + line for line in str(value).rstrip().splitlines())
            continue
        shown = json.dumps(value) if key in ("args", "kwargs", "result", "meta") else value
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


def workflow_tree(client: SyncClient, record: Task) -> dict[str, Any] | None:
    """The tree of a workflow's record (None for any other task): its kind, id and state,
    and its members, each ``{id, name, status, result, error}`` or a nested
    ``{kind, members}`` (``id`` and ``status`` too when it has a record of its own)."""
    from ._workflow import RECORD_PREFIX

    if not record.name.startswith(RECORD_PREFIX):
        return None
    try:
        shape = record.kwargs
    except ValueError:
        return None

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if node.get("id"):
            task = client.get_task(node["id"])
            out = {"id": node["id"], "name": node.get("name"), "status": None}
            if task is not None:
                out.update(name=task.name, status=str(task.status), error=task.error)
                try:
                    out["result"] = task.result
                except ValueError:
                    out["result"] = task.result_json
        if "kind" in node:
            out["kind"] = node["kind"]
            out["members"] = [walk(m) for m in node.get("members", ())]
        return out

    return {"id": record.id, "status": str(record.status), **walk(shape)}


def format_tree(tree: dict[str, Any]) -> str:
    """A workflow's tree (:func:`workflow_tree`) as text, one line per member with its
    state and result (or error)."""
    lines: list[str] = []

    def label(node: dict[str, Any]) -> str:
        if "kind" in node:
            own = f"  {node['id']}  {node['status'] or 'gone'}" if node.get("id") else ""
            return f"{node['kind']}{own}"
        text = f"{node.get('name') or '?'}  {node['id']}  {node.get('status') or 'gone'}"
        if node.get("status") == "SUCCESS":
            text += "  " + _short(json.dumps(node.get("result")), 40)
        elif node.get("error"):
            text += "  " + _short(str(node["error"]), 60)
        return text

    def walk(node: dict[str, Any], prefix: str) -> None:
        members = node.get("members", [])
        for i, member in enumerate(members):
            last = i == len(members) - 1
            lines.append(prefix + ("└── " if last else "├── ") + label(member))
            walk(member, prefix + ("    " if last else "│   "))

    lines.append(label(tree))
    walk(tree, "")
    return "\n".join(lines)


def _client_parser(
    name: str, help: str, sub: Any, description: str = "", json_help: str = ""
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description or help
    )
    if json_help:
        parser.add_argument(
            "--json", action="store_true", help=f"print one JSON document: {json_help}"
        )
    parser.add_argument(
        "--backend",
        default=os.environ.get("PULSAR_BACKEND", DEFAULT_BACKEND),
        metavar="URL",
        help="task backend: sqlite:///path/tasks.db, redis://host:port/db or "
        "postgresql://user@host:port/db (default: $PULSAR_BACKEND, else %(default)s)",
    )
    parser.add_argument(
        "--modules",
        default="",
        metavar="MODULES",
        help="comma-separated modules declaring the jobs, imported from the current folder "
        "(needed for jobs no running worker has published)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # the jobs' modules are found in the current folder, as with ``python -m``
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "worker":
        from ._app import TaskQueue

        return int(TaskQueue().start(args_list[1:], exit=False) or 0)
    parser = argparse.ArgumentParser(prog="pulsar-tasks", description="pulsar task queue")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "worker",
        help="run a TaskQueue: workers consuming the tasks (pulsar-tasks worker --help)",
    )
    queue = _client_parser(
        "queue",
        "queue a task: JOB key=value...",
        sub,
        "Queue a task of JOB; prints its id (or, with --wait, the finished task).",
    )
    queue.add_argument("job", metavar="JOB", help="the job's name (pulsar-tasks jobs lists them)")
    queue.add_argument(
        "params",
        nargs="*",
        metavar="key=value",
        help="keyword arguments of the job; a value is JSON when it parses as JSON "
        '(1, true, [1, 2], {"a": 1}), else a string',
    )
    queue.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="VALUE",
        help="a positional argument of the job (repeat for several; JSON or a string)",
    )
    queue.add_argument(
        "--countdown", type=float, default=None, metavar="SECONDS", help="run it after SECONDS"
    )
    queue.add_argument(
        "--queue", default=None, metavar="NAME", help="the queue (default: the job's own)"
    )
    queue.add_argument(
        "--priority",
        type=int,
        default=None,
        metavar="N",
        help="0-9, higher runs first within its queue (default: the job's own)",
    )
    queue.add_argument(
        "--depends-on",
        action="append",
        default=None,
        metavar="ID",
        help="a task it waits for: DEFERRED until each succeeds, REVOKED if one fails "
        "(repeat for several)",
    )
    queue.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait up to SECONDS for the result and print the task (exit 1 unless SUCCESS)",
    )
    status = _client_parser(
        "status",
        "show recent tasks, or one task",
        sub,
        "A table of the most recently queued tasks, or every field of task ID (with its "
        "traceback).",
        json_help="the task object, or the list of tasks",
    )
    status.add_argument("id", nargs="?", metavar="ID", help="one task's id")
    states = [str(s) for s in TaskState]
    status.add_argument(
        "--status",
        default=None,
        choices=states,
        metavar="STATE",
        help=f"only tasks in STATE, one of {', '.join(states)}",
    )
    status.add_argument(
        "--limit", type=int, default=20, metavar="N", help="at most N tasks (default 20)"
    )
    _client_parser(
        "jobs",
        "list the known jobs",
        sub,
        "The jobs known to the backend (published by running workers) and those of --modules: "
        "name, queue, schedule and the first paragraph of each job's docstring.",
    )
    _operator_parsers(sub)
    _events_parser(sub)
    ns = parser.parse_args(args_list)
    if ns.command == "retry" and bool(ns.ids) == bool(ns.failed):
        parser.error("retry needs task IDs or --failed (one of them, not both)")
    if ns.command == "retry" and ns.since is not None and not ns.failed:
        parser.error("retry: --since goes with --failed")
    try:
        import_modules([m for m in ns.modules.split(",") if m.strip()])
        with SyncClient(ns.backend) as client:
            return _run(ns, client)
    except (TaskError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


_WHEN_HELP = (
    "a duration back from now (90s, 30m, 1h, 2d, 1h30m) or an ISO date and time "
    "(2026-12-03T14:00, 2026-12-03T14:00+01:00; without an offset: UTC)"
)


def _operator_parsers(sub: Any) -> None:
    _client_parser(
        "inspect",
        "show the live workers and the tasks they run now",
        sub,
        "Every live worker (from the heartbeat each publishes every task_lease/3 seconds, at "
        "most 5 s; a stopped or dead worker is gone within three of them): worker id, host, "
        "pid, queues, BUSY (running tasks / concurrency), and per running task its id, job, "
        "start time and runtime (Celery's `inspect active`).",
        "a list of workers, each with worker, host, pid, queues, concurrency, started, beat, "
        "processed, failed and running (id, name, started, runtime; times in UNIX seconds)",
    )
    revoke = _client_parser(
        "revoke",
        "revoke tasks: ID...",
        sub,
        "Revoke each task ID: a pending one (QUEUED/RETRY) is REVOKED at once; a running one "
        "is stopped at its worker's next lease renewal (a sync job without a timeout runs to "
        "its end, its result ignored). Exit 1 when an ID is unknown or already finished.",
        "a list of {id, status, done}: status is the task's state after the call (null: no "
        "such task)",
    )
    revoke.add_argument("ids", nargs="+", metavar="ID", help="the ids of the tasks")
    purge = _client_parser(
        "purge",
        "revoke every pending task of a queue: QUEUE [--yes]",
        sub,
        "Revoke every task of QUEUE that has not started (QUEUED or RETRY, due or not): each "
        "becomes REVOKED with error 'purged', and whoever waits for it gets that record. "
        "Running tasks are left alone. Asks for confirmation on the terminal first (answer y); "
        "without a terminal it refuses (exit 2) unless --yes. Exit 1 when not confirmed.",
        "{queue, purged}",
    )
    purge.add_argument("queue", metavar="QUEUE", help="the queue's name (e.g. default)")
    purge.add_argument(
        "--yes", "-y", action="store_true", help="purge without asking for confirmation"
    )
    retry = _client_parser(
        "retry",
        "queue failed tasks again: ID... | --failed [--since WHEN]",
        sub,
        "Queue each task ID again under the same id (RQ's requeue): a FAILURE (lost included) "
        "or REVOKED task becomes QUEUED, due now, with attempts reset to 0 (its whole retry "
        "budget again) and its result, error and traceback cleared. A SUCCESS, pending or "
        "running task is refused. With --failed: every FAILURE task (the `failed` list), or "
        "those finished since WHEN. Exit 1 when an ID is unknown or refused.",
        "a list of {id, requeued, error}",
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="the ids of the tasks")
    retry.add_argument(
        "--failed", action="store_true", help="every FAILURE task (with --since: the recent ones)"
    )
    retry.add_argument(
        "--since",
        type=_when_arg,
        default=None,
        metavar="WHEN",
        help=f"with --failed: only tasks that failed at or after WHEN: {_WHEN_HELP}",
    )
    failed = _client_parser(
        "failed",
        "list the dead letters: tasks that failed for good",
        sub,
        "The dead-letter list (RQ's failed job registry): FAILURE tasks, which raised without a "
        "retry left, timed out, or were lost (their workers kept dying), newest queued first, "
        "with their error; `status ID` shows one with its traceback, `retry` queues them again.",
        "a list of task records (id, name, queue, error, traceback, attempts, times...)",
    )
    failed.add_argument(
        "--since",
        type=_when_arg,
        default=None,
        metavar="WHEN",
        help=f"only tasks that failed at or after WHEN: {_WHEN_HELP}",
    )
    failed.add_argument(
        "--limit", type=int, default=100, metavar="N", help="at most N tasks (default 100)"
    )


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _run_operator(ns: argparse.Namespace, client: SyncClient) -> int:
    if ns.command == "inspect":
        now = time.time()
        workers = client.workers()
        if ns.json:
            for w in workers:
                for run in w.get("running") or []:
                    started = run.get("started")
                    run["runtime"] = None if started is None else max(0.0, now - started)
            _emit(workers)
        else:
            print(format_workers(workers, now))
        return 0
    if ns.command == "revoke":
        results = []
        for task_id in ns.ids:
            before = client.get_task(task_id)
            state = None if before is None else client.revoke(task_id)
            done = before is not None and not before.done
            results.append({"id": task_id, "status": state, "done": done})
        if ns.json:
            _emit(results)
        else:
            rows = []
            for r in results:
                if r["status"] is None:
                    outcome = "not found"
                elif r["status"] == TaskState.REVOKED and r["done"]:
                    outcome = "revoked"
                elif r["done"]:
                    outcome = "running: stopped at its worker's next lease renewal"
                else:
                    outcome = f"already {r['status']}: nothing to revoke"
                rows.append((r["id"], outcome))
            print(text_table(("ID", "RESULT"), rows))
        return 0 if all(r["done"] for r in results) else 1
    if ns.command == "purge":
        if not ns.yes:
            if not sys.stdin.isatty():
                print(
                    "error: purge asks for confirmation on a terminal and stdin is not one: "
                    "pass --yes to purge without asking",
                    file=sys.stderr,
                )
                return 2
            count = client.pending([ns.queue])
            sys.stderr.write(
                f"Purge {count} pending task(s) (QUEUED/RETRY) of queue {ns.queue!r}? They "
                f"become REVOKED; running tasks are left alone. [y/N] "
            )
            sys.stderr.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                print("nothing purged", file=sys.stderr)
                return 1
        purged = client.purge(ns.queue)
        if ns.json:
            _emit({"queue": ns.queue, "purged": purged})
        else:
            print(f"purged {purged} task(s) of queue {ns.queue!r}")
        return 0
    if ns.command == "retry":
        outcomes: list[dict[str, Any]] = []
        if ns.failed:
            seen: set[str] = set()
            while True:  # requeued tasks leave the list: page until only seen ones remain
                page = [
                    t.id
                    for t in client.list_tasks(TaskState.FAILURE, 500, since=ns.since)
                    if t.id not in seen
                ]
                if not page:
                    break
                for task_id in page:
                    seen.add(task_id)
                    outcomes.append(_requeue(client, task_id))
        else:
            outcomes = [_requeue(client, task_id) for task_id in ns.ids]
        if ns.json:
            _emit(outcomes)
        else:
            rows = [
                (o["id"], "requeued" if o["requeued"] else f"not requeued: {o['error']}")
                for o in outcomes
            ]
            print(text_table(("ID", "RESULT"), rows))
        return 0 if all(o["requeued"] for o in outcomes) else 1
    # failed
    dead = client.list_tasks(TaskState.FAILURE, ns.limit, since=ns.since)
    if ns.json:
        _emit([t.as_dict() for t in dead])
    else:
        print(format_failed(dead))
    return 0


def _requeue(client: SyncClient, task_id: str) -> dict[str, Any]:
    try:
        if client.requeue(task_id):
            return {"id": task_id, "requeued": True, "error": None}
        return {"id": task_id, "requeued": False, "error": "no such task"}
    except TaskError as exc:  # not FAILURE/REVOKED, or an overlap=False twin is pending
        if isinstance(exc, BackendError):
            raise
        return {"id": task_id, "requeued": False, "error": str(exc)}


def _events_parser(sub: Any) -> None:
    events = _client_parser(
        "events",
        "a live tail of the task events",
        sub,
        "Print the task events (queued, started, progress, succeeded, failed, retried, "
        "revoked) as they happen, one line each, until Ctrl-C or SIGTERM. Only changes made "
        "by processes recording events appear: workers with --task-events, clients with "
        "events=True (or ?events=1 in the backend URL).",
        json_help="one JSON object per line instead (an event's fields)",
    )
    events.add_argument(
        "--queue", action="append", default=None, metavar="NAME", help="only this queue (repeat)"
    )
    events.add_argument(
        "--task", action="append", default=None, metavar="ID", help="only this task (repeat)"
    )
    events.add_argument(
        "--kind",
        action="append",
        default=None,
        choices=KINDS,
        metavar="KIND",
        help=f"only this kind of event (repeat), one of {', '.join(KINDS)}",
    )
    events.add_argument(
        "--after",
        default=None,
        metavar="EVENT_ID",
        help="start after this event id instead of now (0: from the oldest event kept)",
    )


class _Stopped(Exception):
    """SIGTERM during ``pulsar-tasks events``."""


def _run_events(ns: argparse.Namespace, client: SyncClient) -> int:
    def stop(signum: int, frame: Any) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    stream: Any = None
    try:
        after = ns.after if ns.after is not None else client.last_event_id()
        print(
            f"listening for task events after {after} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        stream = client.events(queue=ns.queue, task_id=ns.task, kinds=ns.kind, after=after)
        for event in stream:
            if ns.json:
                print(json.dumps(event.as_dict()), flush=True)
            else:
                print(format_event(event), flush=True)
    except (KeyboardInterrupt, _Stopped):
        pass
    except BrokenPipeError:  # | head: the reader left
        with contextlib.suppress(OSError):
            sys.stdout.close()
    finally:
        if stream is not None:
            with contextlib.suppress(_Stopped, KeyboardInterrupt):
                stream.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


def _run(ns: argparse.Namespace, client: SyncClient) -> int:
    if ns.command == "events":
        return _run_events(ns, client)
    if ns.command in ("inspect", "revoke", "purge", "retry", "failed"):
        return _run_operator(ns, client)
    if ns.command == "queue":
        kwargs = {}
        for item in ns.params:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"expected key=value, got {item!r}")
            kwargs[key] = _value(value)
        task = client.queue_task(
            ns.job,
            [_value(a) for a in ns.arg],
            kwargs,
            countdown=ns.countdown,
            queue=ns.queue,
            priority=ns.priority,
            depends_on=ns.depends_on,
        )
        if ns.wait is None:
            print(task.id)
            return 0
        done = client.wait_for_task(task.id, timeout=ns.wait)
        print(format_task(done))
        return 0 if done.status == "SUCCESS" else 1
    if ns.command == "status":
        if ns.id:
            found = client.get_task(ns.id)
            if found is None:
                print(f"error: no task {ns.id!r}", file=sys.stderr)
                return 1
            tree = workflow_tree(client, found)
            if ns.json:
                _emit(found.as_dict() if tree is None else {**found.as_dict(), "tree": tree})
            else:
                print(format_task(found))
                if tree is not None:
                    print()
                    print(format_tree(tree))
            return 0
        listed = client.list_tasks(ns.status, ns.limit)
        if ns.json:
            _emit([t.as_dict() for t in listed])
        else:
            print(format_table(listed))
        return 0
    jobs = client.job_list()
    for name, meta in sorted(jobs.items()):
        extra = f" every {meta['run_every']}s" if meta.get("run_every") else ""
        extra += f" cron {meta['cron']!r}" if meta.get("cron") else ""
        extra += f" priority={meta['priority']}" if meta.get("priority") else ""
        extra += f" rate_limit={meta['rate_limit']}" if meta.get("rate_limit") else ""
        print(f"{name:<24} queue={meta.get('queue')}{extra}  {meta.get('doc') or ''}".rstrip())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
