"""Workflows: signatures (``job.s()``), :func:`chain`, :func:`group`, :func:`chord`, and the
``depends_on`` they reduce to.

How it works
------------
Everything reduces to ``depends_on`` plus "inject the dependencies' results". A task queued
with dependencies is stored DEFERRED (not claimable) with ``depends`` (the ids it waits for, in
order), ``waiting`` (how many are not SUCCESS yet) and ``inject`` (what it receives); each
dependency lists it in its ``dependents``. When a task ends, the same atomic step that records
its end (the Redis Lua script, the SQLite transaction, the PostgreSQL transaction holding the
dependent's row lock) resolves its dependents: on SUCCESS each one's ``waiting`` goes down, and
the one reaching 0 is QUEUED with its arguments completed (``inject="arg"``: the dependency's
result as the first positional argument; ``"list"``: the list of the dependencies' results);
on FAILURE/REVOKED each one becomes REVOKED with the reason (naming the dependency that failed
first and why), which cascades to its own dependents.

A workflow is built client side into such tasks, queued in one backend call (all or nothing):

* a chain step depends on the previous step and receives its result (unless ``.si()``);
* group members depend on what precedes the group; the group's output is its members;
* a chord's callback depends on the members and receives the list of their results;
* the workflow's *record* (the :class:`Task` :meth:`TaskClient.queue_workflow` returns) is a
  task named ``workflow.<kind>`` that depends on the workflow's output and is completed by the
  backend itself (``inject="result"``: SUCCESS with the last step's result; ``"results"``: with
  the list of the group's), or FAILURE with the reason when a step failed. Its ``kwargs`` hold
  the tree (``{"kind", "members": [...]}``, each leaf ``{"id"}``) that ``pulsar-tasks status``
  prints. Every member carries the workflow's id in ``workflow``.

Nesting works: a group or chord inside a chain, a chain or chord as a group member, a group of
groups (an inner group that must be one dependency gets a record of its own).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ._errors import TaskError
from ._job import dumps_payload
from ._state import Task

if TYPE_CHECKING:
    from ._client import TaskClient

__all__ = [
    "Signature",
    "Workflow",
    "chain",
    "chord",
    "depends_json",
    "failed_reason",
    "group",
    "inject_payload",
]

#: how every task payload starts (``dumps_payload``): results are spliced in after it
PAYLOAD_HEAD = '{"args": ['
#: the name of a workflow record is ``workflow.<kind>``
RECORD_PREFIX = "workflow."
#: ``inject`` values of a workflow record: the backend completes it instead of queueing it
RECORD_INJECT = frozenset({"result", "results"})
#: the options a signature may carry (those of ``TaskClient.queue_task``)
_OPTIONS = frozenset({"queue", "countdown", "eta", "expires", "task_id", "priority"})


# -- the rules every backend applies (Lua and PL/pgSQL copy them) ----------------------------
def inject_payload(payload: str, value: str) -> str:
    """``payload`` with the JSON text ``value`` as its first positional argument."""
    if not payload.startswith(PAYLOAD_HEAD):  # not written by dumps_payload: decode it
        data = json.loads(payload)
        data["args"] = [json.loads(value), *data.get("args", [])]
        return json.dumps(data)
    rest = payload[len(PAYLOAD_HEAD) :]
    return PAYLOAD_HEAD + value + (rest if rest.startswith("]") else ", " + rest)


def failed_reason(dep_id: str, name: str | None, status: str, error: str | None) -> str:
    """The error of a task revoked because its dependency ``dep_id`` ended ``status``: the
    dependency's own when it was itself revoked for a dependency (the first failure is named
    all along a cascade)."""
    if error and error.startswith("dependency "):
        return error
    out = f"dependency {name or '?'}[{dep_id}] {status}"
    return f"{out}: {error}" if error else out


def depends_json(depends_on: Any) -> str:
    """The stored form of ``depends_on`` (a list of task ids or tasks); TypeError else."""
    if isinstance(depends_on, str | bytes) or not isinstance(depends_on, Iterable):
        raise TypeError(
            f"depends_on must be a list of task ids (depends_on=[task.id, ...]), not "
            f"{type(depends_on).__name__}"
        )
    ids: list[str] = []
    for item in depends_on:
        if isinstance(item, Task):
            item = item.id
        if not isinstance(item, str) or not item:
            raise TypeError(f"depends_on must be a list of task ids (str) or tasks, got {item!r}")
        if item not in ids:
            ids.append(item)
    return json.dumps(ids)


def check_deferrable(task: Task) -> None:
    """ValueError for a task that cannot wait for dependencies (``overlap=False``: its key is
    taken when it is queued, not when it waits)."""
    if task.overlap_key is not None:
        raise ValueError(
            f"job {task.name!r} has overlap=False: its tasks cannot wait for dependencies "
            f"(depends_on, workflows); queue it without them or declare it with overlap=True"
        )


# -- signatures and workflows ----------------------------------------------------------------
class Signature:
    """A job call to be made later: the job's name, its arguments and task options
    (``job.s(1, 2).set(queue="x", countdown=5)``). ``immutable`` signatures (``job.si()``)
    do not receive the previous step's result."""

    __slots__ = ("args", "immutable", "kwargs", "name", "options")

    def __init__(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        immutable: bool = False,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a signature needs a job name, not {name!r}")
        bad = sorted(set(options) - _OPTIONS)
        if bad:
            raise TypeError(
                f"unknown task option {bad[0]!r} for {name!r}: options are "
                f"{', '.join(sorted(_OPTIONS))} (job arguments go in job.s(*args, **kwargs))"
            )
        self.name = name
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.immutable = bool(immutable)
        self.options = options

    def set(self, **options: Any) -> Signature:
        """A copy with task options added (``queue``, ``countdown``, ``eta``, ``expires``,
        ``task_id``, ``priority``)."""
        merged = {**self.options, **options}
        return Signature(self.name, self.args, self.kwargs, immutable=self.immutable, **merged)

    def __repr__(self) -> str:
        call = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.name}.{'si' if self.immutable else 's'}({call})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and (
            self.name,
            self.args,
            self.kwargs,
            self.immutable,
            self.options,
        ) == (other.name, other.args, other.kwargs, other.immutable, other.options)

    __hash__ = None  # type: ignore[assignment]

    def delay(self) -> Any:
        """Queue this call as one task (like ``Job.apply``): a coroutine in async code, the
        :class:`Task` in sync code."""
        from ._client import queue_from_anywhere

        return queue_from_anywhere(self.name, self.args, self.kwargs, **self.options)


def _nodes(kind: str, items: tuple[Any, ...]) -> list[Signature | Workflow]:
    if (
        len(items) == 1
        and isinstance(items[0], Iterable)
        and not isinstance(items[0], str | bytes | Mapping)
    ):
        items = tuple(items[0])  # group([...]), group(sig for ...)
    if not items:
        raise ValueError(f"{kind}() needs at least one signature (job.s(...))")
    for item in items:
        if not isinstance(item, Signature | Workflow):
            raise TypeError(
                f"{kind}() takes signatures (job.s(...), job.si(...)) or workflows, not "
                f"{type(item).__name__} {item!r}"
            )
    return list(items)


class Workflow:
    """A chain, group or chord (see :func:`chain`, :func:`group`, :func:`chord`)."""

    kind = ""

    def __init__(self, members: list[Signature | Workflow]) -> None:
        self.members = members

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(map(repr, self.members))})"

    def delay(self) -> Any:
        """Queue the workflow with the default client (as ``Job.delay()``): a coroutine in
        async code (``record = await flow.delay()``), the record in sync code."""
        return _flow_from_anywhere(self)


class chain(Workflow):
    """``chain(a.s(1), b.s(), c.s())``: the steps run one after the other, each receiving the
    previous step's result as its first positional argument (not ``.si()`` steps). A step
    that fails (for good: after its retries) stops the chain: the later steps are REVOKED and
    the chain's record is FAILURE, its error naming the step and why. The record's result is
    the last step's."""

    kind = "chain"

    def __init__(self, *steps: Any) -> None:
        super().__init__(_nodes("chain", steps))


class group(Workflow):
    """``group(a.s(1), a.s(2))`` (or ``group([...])``): the members run in parallel; the
    group's result is the list of their results, in order."""

    kind = "group"

    def __init__(self, *members: Any) -> None:
        super().__init__(_nodes("group", members))


class chord(Workflow):
    """``chord(group(...) or [signatures], callback.s())``: the callback runs once, when every
    member has succeeded, with the list of their results as its first argument. A member that
    fails revokes the callback; the chord's record is FAILURE naming the member."""

    kind = "chord"

    def __init__(self, header: Any, callback: Any) -> None:
        if isinstance(header, list | tuple):
            header = group(*header)
        if not isinstance(header, group):
            raise TypeError(
                f"chord() takes a group (or a list of signatures) and a callback, not "
                f"{type(header).__name__} {header!r}"
            )
        if not isinstance(callback, Signature | Workflow):
            raise TypeError(
                f"the callback of a chord is a signature (callback.s()), not "
                f"{type(callback).__name__} {callback!r}"
            )
        super().__init__([header, callback])


# -- building ---------------------------------------------------------------------------------
class _Collect:
    """A stand-in backend for :meth:`TaskClient.queue_task`: it keeps the task it would store
    (every check of ``queue_task`` applies to each step, nothing else is duplicated)."""

    def __init__(self, client: TaskClient) -> None:
        self._backend = client.backend
        self.tasks: list[Task] = []

    async def enqueue(self, task: Task, *, unique: bool = False, reply: bool = False) -> bool:
        self.tasks.append(task)
        return True

    async def jobs(self) -> dict[str, dict[str, Any]]:
        return await self._backend.jobs()


async def build(client: TaskClient, flow: Workflow) -> tuple[Task, list[Task]]:
    """The tasks of ``flow`` in dependency order, ending with its record (also returned
    first). Raises what ``queue_task`` raises for a bad step (nothing is stored)."""
    from ._backend import Backend
    from ._client import TaskClient

    collect = _Collect(client)
    maker = TaskClient(cast(Backend, collect), max_payload_size=client.max_payload_size)
    maker._remote_jobs = client._remote_jobs
    flow_id = uuid.uuid4().hex
    out: list[Task] = []

    async def step(sig: Signature, up: list[str], up_list: bool) -> str:
        await maker.queue_task(sig.name, sig.args, sig.kwargs, **sig.options)
        task = collect.tasks.pop()
        check_deferrable(task)
        task.workflow = flow_id
        if up:
            task.depends = json.dumps(up)
            task.inject = None if sig.immutable else ("list" if up_list else "arg")
        out.append(task)
        return task.id

    def record(kind: str, tree: dict[str, Any], deps: list[str], many: bool, rid: str) -> Task:
        task = Task(
            id=rid,
            name=RECORD_PREFIX + kind,
            payload=dumps_payload([], tree),
            depends=json.dumps(deps),
            inject="results" if many else "result",
            workflow=None if rid == flow_id else flow_id,
        )
        out.append(task)
        return task

    async def node(
        n: Signature | Workflow, up: list[str], up_list: bool
    ) -> tuple[list[str], bool, dict[str, Any]]:
        if isinstance(n, Signature):
            task_id = await step(n, up, up_list)
            return [task_id], False, {"id": task_id, "name": n.name}
        if isinstance(n, chain):
            tree = []
            for member in n.members:
                up, up_list, sub = await node(member, up, up_list)
                tree.append(sub)
            return up, up_list, {"kind": "chain", "members": tree}
        if isinstance(n, chord):
            outs, many, head = await node(n.members[0], up, up_list)
            outs, many, body = await node(n.members[1], outs, many)
            return outs, many, {"kind": "chord", "members": [head, body]}
        outs = []
        tree = []
        for member in n.members:
            sub_out, sub_many, sub = await node(member, up, up_list)
            if sub_many:  # a group in a group: one record of its own is its single output
                rid = uuid.uuid4().hex
                record(sub["kind"], sub, sub_out, True, rid)
                sub = {**sub, "id": rid}
                sub_out = [rid]
            outs += sub_out
            tree.append(sub)
        return outs, True, {"kind": "group", "members": tree}

    outs, many, tree = await node(flow, [], False)
    top = record(flow.kind, tree, outs, many, flow_id)
    return top, out


def _flow_from_anywhere(flow: Workflow) -> Any:
    """``flow.delay()``: what ``queue_from_anywhere`` does for a task, for a workflow."""
    from . import _client

    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    if running:
        return _client.default_client().queue_workflow(flow)
    if _client._DEFAULT_SYNC and _client._DEFAULT_SYNC[-1].pid == os.getpid():
        return _client._DEFAULT_SYNC[-1].queue_workflow(flow)
    client = _client._DEFAULT
    if client is not None and client.pid != os.getpid():
        forked = _client.SyncClient(client.backend.url, max_payload_size=client.max_payload_size)
        return forked.queue_workflow(flow)
    if client is not None and client.loop is not None and client.loop.is_running():
        coro = client.queue_workflow(flow)
        return asyncio.run_coroutine_threadsafe(coro, client.loop).result()
    raise TaskError(
        "no task backend connected: open one with pulsar.apps.tasks.connect_sync(url) "
        "(sync code) or pulsar.apps.tasks.connect(url) (async code)"
    )
