"""Workflows and depends_on (``_workflow``), on every backend (``backend_url``): chain, group,
chord, depends_on met/failed/unknown, nesting; the chord race and the SIGKILL mid-chain with
real worker processes; the CLI tree."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from typing import Any

import pytest
import tq_helpers
import tq_jobs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState, chain, chord, group


def consuming(url: str, concurrent: int = 10) -> Any:
    # max_idle: a stop waits for the idle wait
    return tq_helpers.consuming(url, queues=("default",), concurrent_tasks=concurrent, max_idle=0.1)


def lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return [line.split()[0] for line in f]
    except FileNotFoundError:
        return []


# -- declaring ---------------------------------------------------------------------------------
def test_signatures_and_bad_input() -> None:
    sig = tq_jobs.add.s(1, b=2)
    assert (sig.name, sig.args, sig.kwargs, sig.immutable) == ("add", (1,), {"b": 2}, False)
    assert tq_jobs.add.si(1).immutable
    assert sig.set(queue="other").options == {"queue": "other"}
    assert repr(sig) == "add.s(1, b=2)"
    with pytest.raises(TypeError, match="unknown task option 'queues'"):
        sig.set(queues="x")
    with pytest.raises(TypeError, match=r"chain\(\) takes signatures"):
        chain(tq_jobs.add.s(1, 2), tq_jobs.add)
    with pytest.raises(ValueError, match="at least one"):
        group([])
    with pytest.raises(TypeError, match="chord"):
        chord(tq_jobs.add.s(1, 2), tq_jobs.wf_sum.s())
    assert group([tq_jobs.add.s(1, 2)]).members == group(tq_jobs.add.s(1, 2)).members


async def test_bad_workflows_are_refused_before_anything_is_stored(client) -> None:
    with pytest.raises(TypeError, match="queue_workflow"):
        await client.queue_workflow(tq_jobs.add.s(1, 2))
    with pytest.raises(tasks.UnknownJob):
        await client.queue_workflow(chain(tq_jobs.add.s(1, 2), tasks.Signature("nope")))
    with pytest.raises(tasks.TaskSerializationError):
        await client.queue_workflow(group(tq_jobs.add.s(1, object())))
    with pytest.raises(ValueError, match="overlap=False"):
        await client.queue_workflow(chain(tq_jobs.add.s(1, 2), tq_jobs.exclusive.s()))
    dup = await client.queue_task("add", [1, 2])
    with pytest.raises(tasks.DuplicateTask):
        await client.queue_workflow(
            chain(tq_jobs.add.s(1, 2), tq_jobs.add.s(3).set(task_id=dup.id))
        )
    assert [t.id for t in await client.list_tasks()] == [dup.id]  # nothing else stored


# -- depends_on -------------------------------------------------------------------------------
async def test_depends_on_waits_then_runs(client, backend_url) -> None:
    first = await client.queue_task("add", [1, 2], countdown=0.3)
    second = await client.queue_task("add", [1, 2])
    after = await client.queue_task("add", [3, 4], depends_on=[first.id, second])
    assert after.status == TaskState.DEFERRED and after.depends_on == [first.id, second.id]
    assert (await client.backend.pending(["default"])) == 2  # DEFERRED is not pending
    async with consuming(backend_url):
        done = await client.wait_for_task(after.id, timeout=10)
    assert done.status == TaskState.SUCCESS and done.result == 7 and done.args == [3, 4]
    assert (await client.get_task(first.id)).time_finished <= done.time_started
    # a dependency already SUCCESS counts as met: queued at once
    met = await client.queue_task("add", [5, 6], depends_on=[first.id])
    assert met.status == TaskState.QUEUED


async def test_depends_on_failed_or_revoked_revokes_with_the_reason(client, backend_url) -> None:
    bad = await client.queue_task("boom", ["nope"])
    waiting = await client.queue_task("add", [1, 2], depends_on=[bad.id])
    further = await client.queue_task("add", [1, 2], depends_on=[waiting.id])
    async with consuming(backend_url):
        done = await client.wait_for_task(further.id, timeout=10)
    first = await client.get_task(waiting.id)
    assert first.status == TaskState.REVOKED
    assert first.error == f"dependency boom[{bad.id}] FAILURE: ValueError: nope"
    assert done.status == TaskState.REVOKED and done.error == first.error  # the cascade
    # already failed: revoked at once
    late = await client.queue_task("add", [1, 2], depends_on=[bad.id])
    assert late.status == TaskState.REVOKED and late.error == first.error
    # a revoked dependency (and a revoke of a DEFERRED task) cascades too
    root = await client.queue_task("add", [1, 2], countdown=60)
    child = await client.queue_task("add", [1, 2], depends_on=[root.id])
    grandchild = await client.queue_task("add", [1, 2], depends_on=[child.id])
    assert await client.revoke(child.id) == TaskState.REVOKED
    got = await client.wait_for_task(grandchild.id, timeout=5)
    assert got.status == TaskState.REVOKED
    assert got.error == f"dependency add[{child.id}] REVOKED: revoked"
    assert (await client.get_task(root.id)).status == TaskState.QUEUED


async def test_every_end_of_a_dependency_resolves_its_dependents(client) -> None:
    """Purged, expired, lost (its worker died, no retry left) and revoked while running: each
    end revokes the dependents in the same step, with the reason."""
    b = client.backend
    purged = await client.queue_task("add", [1, 2], queue="bulk")
    expired = await client.queue_task("add", [1, 2], expires=0.01)
    lost = await client.queue_task("boom", ["x"])  # max_retries=0
    running = await client.queue_task("sleeper", [5])
    waiting = {
        t.id: await client.queue_task("add", [0, 0], depends_on=[t.id])
        for t in (purged, expired, lost, running)
    }
    assert await b.purge("bulk") == 1
    await asyncio.sleep(0.05)
    claimed = {r["id"]: r for r in (await b.claim(["default"], "dead", 30.0, 10)).tasks}
    assert set(claimed) == {lost.id, running.id}  # the expired one was revoked instead
    assert await b.release_worker("dead") == 2  # lost is out of retries; sleeper is queued
    row = (await b.claim(["default"], "w2", 30.0, 10)).tasks[0]
    assert row["id"] == running.id
    assert await b.revoke(running.id) == TaskState.STARTED  # flagged: its worker ends it
    assert await b.complete(running.id, row["token"], TaskState.REVOKED, error="revoked")
    errors = {}
    for dep, task in waiting.items():
        got = await client.wait_for_task(task.id, timeout=5)
        assert got.status == TaskState.REVOKED, (got.status, got.error)
        errors[dep] = got.error
    assert errors == {
        purged.id: f"dependency add[{purged.id}] REVOKED: purged",
        expired.id: f"dependency add[{expired.id}] REVOKED: expired",
        lost.id: f"dependency boom[{lost.id}] FAILURE: "
        + "lost: the worker running it died or stopped answering (1 attempts)",
        running.id: f"dependency sleeper[{running.id}] REVOKED: revoked",
    }


async def test_depends_on_unknown_or_bad_is_refused(client) -> None:
    with pytest.raises(ValueError, match="no task 'missing'"):
        await client.queue_task("add", [1, 2], depends_on=["missing"])
    with pytest.raises(TypeError, match="list of task ids"):
        await client.queue_task("add", [1, 2], depends_on="abc")
    with pytest.raises(TypeError, match="task ids"):
        await client.queue_task("add", [1, 2], depends_on=[1])
    assert await client.list_tasks() == []


# -- chain, group, chord ------------------------------------------------------------------------
async def test_chain_group_chord_and_nesting(client, backend_url, tmp_path) -> None:
    path = str(tmp_path / "log")
    s = tq_jobs.wf_step
    three = await client.queue_workflow(chain(s.s([], path, "a"), s.s(path, "b"), s.s(path, "c")))
    assert three.name == "workflow.chain" and three.status == TaskState.DEFERRED
    members = await client.queue_workflow(group(tq_jobs.add.s(i, i) for i in range(5)))
    summed = await client.queue_workflow(
        chord([tq_jobs.add.s(i, 1) for i in range(4)], tq_jobs.wf_sum.s())
    )
    nested = await client.queue_workflow(
        chain(
            tq_jobs.add.s(1, 1),
            group(tq_jobs.add.s(10), tq_jobs.add.s(20), chain(tq_jobs.add.s(30), tq_jobs.add.s(1))),
            tq_jobs.wf_sum.s(),
            tq_jobs.add.si(5, 5),
        )
    )
    groups = await client.queue_workflow(
        group(group(tq_jobs.add.s(1, 1), tq_jobs.add.s(2, 2)), tq_jobs.add.s(3, 3))
    )
    delayed = await chain(tq_jobs.add.s(1, 1), tq_jobs.add.s(1)).delay()  # the default client
    async with consuming(backend_url):
        done = await client.wait_for_task(three.id, timeout=10)
        assert done.status == TaskState.SUCCESS and done.result == ["a", "b", "c"]
        assert lines(path) == ["a", "b", "c"]
        assert (await client.wait_for_task(members.id, timeout=10)).result == [0, 2, 4, 6, 8]
        assert (await client.wait_for_task(summed.id, timeout=10)).result == 1 + 2 + 3 + 4
        assert (await client.wait_for_task(nested.id, timeout=10)).result == 10
        assert (await client.wait_for_task(groups.id, timeout=10)).result == [[2, 4], 6]
        assert (await client.wait_for_task(delayed.id, timeout=10)).result == 3
    tree = (await client.get_task(nested.id)).kwargs
    assert tree["kind"] == "chain" and [m.get("kind") for m in tree["members"]] == [
        None, "group", None, None,
    ]  # fmt: skip
    step = await client.get_task(tree["members"][2]["id"])
    assert step.workflow == nested.id and step.args == [[12, 22, 33]]
    inner = tree["members"][1]["members"]  # two steps and a chain: its last step
    assert step.depends_on == [inner[0]["id"], inner[1]["id"], inner[2]["members"][1]["id"]]


async def test_failing_step_stops_the_chain(client, backend_url, tmp_path) -> None:
    path = str(tmp_path / "log")
    s = tq_jobs.wf_step
    flow = await client.queue_workflow(
        chain(s.s([], path, "a"), tq_jobs.wf_fail.s("broken"), s.s(path, "c"), s.s(path, "d"))
    )
    async with consuming(backend_url):
        done = await client.wait_for_task(flow.id, timeout=10)
    members = [m["id"] for m in done.kwargs["members"]]
    assert done.status == TaskState.FAILURE
    assert done.error == f"dependency wf_fail[{members[1]}] FAILURE: ValueError: broken"
    assert [(await client.get_task(i)).status for i in members] == [
        TaskState.SUCCESS, TaskState.FAILURE, TaskState.REVOKED, TaskState.REVOKED,
    ]  # fmt: skip
    assert (await client.get_task(members[3])).error == done.error
    assert lines(path) == ["a"]
    with pytest.raises(tasks.TaskFailed, match="wf_fail"):
        done.result_or_raise()


async def test_a_long_cascade_takes_no_stack(client, backend_url) -> None:
    """A chain of 400 steps whose first fails: the cascade is a work list in each backend
    (recursion overflowed PL/pgSQL's stack at a few hundred steps, leaving the first step's
    completion impossible)."""
    steps = [tq_jobs.add.s(1) for _ in range(400)]
    flow = await client.queue_workflow(chain(tq_jobs.wf_fail.s(None, "first"), *steps))
    async with consuming(backend_url):
        done = await client.wait_for_task(flow.id, timeout=20)
    assert done.status == TaskState.FAILURE and done.error.endswith("ValueError: first")
    last = await client.get_task(done.kwargs["members"][-1]["id"])
    assert last.status == TaskState.REVOKED and last.error == done.error


async def test_a_retried_step_does_not_restart_the_chain(client, backend_url, tmp_path) -> None:
    path = str(tmp_path / "log")
    s = tq_jobs.wf_step
    flow = await client.queue_workflow(
        chain(s.s([], path, "a"), tq_jobs.wf_flaky_step.s(path, "b"), s.s(path, "c"))
    )
    async with consuming(backend_url):
        done = await client.wait_for_task(flow.id, timeout=10)
    assert done.status == TaskState.SUCCESS and done.result == ["a", "b", "c"]
    assert lines(path) == ["a", "b", "b", "c"]
    assert (await client.get_task(done.kwargs["members"][1]["id"])).attempts == 2


async def test_chord_with_a_failing_member(client, backend_url, tmp_path) -> None:
    path = str(tmp_path / "log")
    flow = await client.queue_workflow(
        chord(
            [tq_jobs.add.s(1, 2), tq_jobs.wf_fail.s(None, "member down"), tq_jobs.add.s(3, 4)],
            tq_jobs.wf_count.s(path),
        )
    )
    async with consuming(backend_url):
        done = await client.wait_for_task(flow.id, timeout=10)
        header = done.kwargs["members"][0]["members"]
        for member in (header[0], header[2]):  # the others still ran
            assert (await client.wait_for_task(member["id"], timeout=10)).status == "SUCCESS"
    assert done.status == TaskState.FAILURE
    assert done.error == f"dependency wf_fail[{header[1]['id']}] FAILURE: ValueError: member down"
    callback = await client.get_task(done.kwargs["members"][1]["id"])
    assert callback.status == TaskState.REVOKED and callback.error == done.error
    assert lines(path) == []


def test_sync_client_and_delay(backend_url) -> None:
    with tasks.connect_sync(backend_url) as c:
        record = c.queue_workflow(chain(tq_jobs.add.s(1, 2), tq_jobs.add.s(3)))
        also = chain(tq_jobs.add.s(1, 2), tq_jobs.add.s(4)).delay()
        assert record.status == also.status == TaskState.DEFERRED
        assert c.get_task(also.id).name == "workflow.chain"


# -- real worker processes -------------------------------------------------------------------
BASE = ["--modules", "tq_jobs", "--heartbeat", "1", "--timeout", "10", "--graceful-timeout", "5"]


def test_chord_race_sigkill_mid_chain_and_cli_tree(backend_url, tmp_path) -> None:
    """Two worker processes of one concurrent task each. (1) A chord's two members wait on a
    barrier (a file) and finish at the same moment, one on each worker: the callback runs
    once, four times over. (2) A worker SIGKILLed while it runs step 2 of a chain: the chain
    completes on the replacement, step 1 and step 3 ran once, step 2 twice. (3) The CLI
    prints the workflow's tree."""
    run = tq_helpers.Run(
        "tq_app.py", *BASE, "--backend", backend_url, "--workers", "2", "--concurrent-tasks", "1"
    )
    run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        counts = str(tmp_path / "callbacks")
        for round_ in range(4):
            folder = tmp_path / f"round{round_}"
            folder.mkdir()
            flow = c.queue_workflow(
                chord(
                    [tq_jobs.wf_barrier.s(str(folder), i, 2) for i in range(2)],
                    tq_jobs.wf_count.s(counts),
                )
            )
            done = c.wait_for_task(flow.id, timeout=30)
            assert done.status == TaskState.SUCCESS and done.result == 1, done.error
            assert lines(counts) == ["callback"] * (round_ + 1)
            with open(folder / "arrived") as f:
                pids = {line.split()[1] for line in f}
            assert len(pids) == 2  # one member on each worker process
        time.sleep(0.3)
        assert lines(counts) == ["callback"] * 4  # no late second run

        path = str(tmp_path / "steps")
        flow = c.queue_workflow(
            chain(
                tq_jobs.wf_step.s([], path, "one"),
                tq_jobs.wf_slow_step.s(path, "two", 60),
                tq_jobs.wf_step.s(path, "three"),
            )
        )
        tq_helpers.wait_for(lambda: "two" in lines(path), timeout=20, interval=0.01)
        step2 = c.get_task(flow.kwargs["members"][1]["id"])
        assert step2.status == TaskState.STARTED
        with open(path) as f:
            pid = int(f.read().splitlines()[-1].split()[1])  # "two <pid of its worker>"
        os.kill(pid, signal.SIGKILL)
        done = c.wait_for_task(flow.id, timeout=30)
        assert done.status == TaskState.SUCCESS and done.result == ["one", "two", "three"]
        assert lines(path) == ["one", "two", "two", "three"]
        assert c.get_task(step2.id).attempts == 2

    table = tq_helpers.cli("status", flow.id, "--backend", backend_url)
    assert table.returncode == 0, table.stderr
    ids = [m["id"] for m in flow.kwargs["members"]]
    assert table.stdout.split("\n\n", 1)[1].splitlines() == [
        f"chain  {flow.id}  SUCCESS",
        f'├── wf_step  {ids[0]}  SUCCESS  ["one"]',
        f'├── wf_slow_step  {ids[1]}  SUCCESS  ["one", "two"]',
        f'└── wf_step  {ids[2]}  SUCCESS  ["one", "two", "three"]',
    ]
    out = tq_helpers.cli("status", flow.id, "--json", "--backend", backend_url)
    tree = json.loads(out.stdout)["tree"]
    assert tree["kind"] == "chain" and tree["status"] == "SUCCESS"
    assert [(m["id"], m["status"]) for m in tree["members"]] == [(i, "SUCCESS") for i in ids]
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err[-3000:]


# -- schema migrations ---------------------------------------------------------------------
NEW_COLUMNS = ("workflow", "depends", "dependents", "waiting", "inject")


async def test_a_sqlite_database_of_the_previous_version_is_migrated(tmp_path) -> None:
    """A database made before depends_on gets the new columns at start; its tasks stay and
    can be depended on."""
    import sqlite3

    path = tmp_path / "old.db"
    old = [c for c in tasks.Task.__dataclass_fields__ if c not in NEW_COLUMNS]
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE tasks ({', '.join(old)}, purge_at REAL)")
        conn.execute(
            "INSERT INTO tasks (id, name, queue, status, payload, attempts, max_retries, eta, "
            "time_queued, revoke) VALUES ('old', 'add', 'default', 'QUEUED', "
            '\'{"args": [1, 2], "kwargs": {}}\', 0, 0, 0, 0, 0)'
        )
    url = f"sqlite:///{path}"
    client = tasks.connect(url, set_default=False)
    try:
        after = await client.queue_task("add", [3, 4], depends_on=["old"])
        assert after.status == TaskState.DEFERRED
        async with consuming(url):
            assert (await client.wait_for_task(after.id, timeout=10)).result == 7
        assert (await client.get_task("old")).dependents == json.dumps([after.id])
    finally:
        await client.close()
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    assert set(NEW_COLUMNS) <= columns


@pytest.mark.postgres
async def test_a_postgres_schema_of_version_3_is_migrated(monkeypatch) -> None:
    """A version 3 schema (before depends_on) is migrated at start: the columns and functions
    are added, its pending tasks can be depended on."""
    from tq_helpers import POSTGRES_URL, require_postgres

    from pulsar.apps.tasks import _postgres

    require_postgres()
    url = f"{POSTGRES_URL}?schema=pt_mig_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(_postgres, "SCHEMA_VERSION", 3)
    old = tasks.create_backend(url)
    try:
        await old.counts()  # creates version 3 (with this code's columns: drop the new ones)
        await old._fetch(
            f"ALTER TABLE {old._s}.tasks "
            + ", ".join(f"DROP COLUMN {c}" for c in NEW_COLUMNS)
            + f"; INSERT INTO {old._s}.tasks (id, name, status, payload, time_queued) "
            f"VALUES ('old', 'add', 'QUEUED', '{{\"args\": [1, 2], \"kwargs\": {{}}}}', 0)"
        )
    finally:
        await old.close()
    monkeypatch.undo()
    client = tasks.connect(url, set_default=False)
    try:
        after = await client.queue_task("add", [3, 4], depends_on=["old"])
        assert after.status == TaskState.DEFERRED
        async with consuming(url):
            assert (await client.wait_for_task(after.id, timeout=10)).result == 7
            assert (await client.wait_for_task("old", timeout=10)).result == 3
        rows = await client.backend._fetch(
            f"SELECT value FROM {client.backend._s}.meta WHERE key = 'schema_version'"
        )
        assert rows == [(str(_postgres.SCHEMA_VERSION),)]
    finally:
        await client.backend.drop_schema()
        await client.close()
