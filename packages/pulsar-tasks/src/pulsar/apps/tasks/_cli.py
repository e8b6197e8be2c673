"""The ``pulsar-tasks`` command line.

* ``pulsar-tasks worker --backend URL --modules pkg.jobs [pulsar options]``: run a TaskQueue;
* ``pulsar-tasks queue JOB key=value... [--wait SECONDS]``: queue a task (values are JSON when
  they parse as JSON, strings otherwise; ``--arg VALUE`` adds a positional argument);
* ``pulsar-tasks status [ID] [--status S] [--limit N]``: a table of recent tasks, or one task;
* ``pulsar-tasks jobs``: the jobs known to the backend.

The backend comes from ``--backend`` or the ``PULSAR_BACKEND`` environment variable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._client import SyncClient
from ._errors import TaskError
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
                str(t.status),
                str(t.attempts),
                _when(t.time_queued),
                _when(t.time_finished),
                (outcome[:47] + "...") if len(outcome) > 50 else outcome,
            )
        )
    # no rows (nothing matched): the headers alone
    widths = [max([len(h), *(len(r[i]) for r in lines)]) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines]
    return "\n".join(out)


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
        shown = json.dumps(value) if key in ("args", "kwargs", "result") else value
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


def _client_parser(
    name: str, help: str, sub: Any, description: str = ""
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=description or help
    )
    parser.add_argument(
        "--backend",
        default=os.environ.get("PULSAR_BACKEND", DEFAULT_BACKEND),
        metavar="URL",
        help="task backend: sqlite:///path/tasks.db or redis://host:port/db (default: "
        "$PULSAR_BACKEND, else %(default)s)",
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
    ns = parser.parse_args(args_list)
    try:
        import_modules([m for m in ns.modules.split(",") if m.strip()])
        with SyncClient(ns.backend) as client:
            return _run(ns, client)
    except (TaskError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(ns: argparse.Namespace, client: SyncClient) -> int:
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
            print(format_task(found))
            return 0
        print(format_table(client.list_tasks(ns.status, ns.limit)))
        return 0
    jobs = client.job_list()
    for name, meta in sorted(jobs.items()):
        extra = f" every {meta['run_every']}s" if meta.get("run_every") else ""
        extra += f" cron {meta['cron']!r}" if meta.get("cron") else ""
        print(f"{name:<24} queue={meta.get('queue')}{extra}  {meta.get('doc') or ''}".rstrip())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
