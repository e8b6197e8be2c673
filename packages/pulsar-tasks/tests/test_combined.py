"""The features of issue 17 used together, on every backend: a workflow's step released with its
priority, the events of a chain, a step's task context and progress, a group of a rate-limited
job. (Each feature has its own module; these are the seams between them.)"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import tq_helpers as h
import tq_jobs

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState, chain, group


def consuming(url: str, *, events: bool = False) -> Any:
    return h.consuming(
        url, backend_options={"events": events}, queues=("default",), concurrent_tasks=5,
        max_idle=0.1,
    )  # fmt: skip


async def test_a_released_dependent_is_claimed_by_its_priority(client) -> None:
    b = client.backend
    first = await client.queue_task("add", [1, 2])
    after = await client.queue_task("add", [3, 4], depends_on=[first.id], priority=9)
    assert after.status == TaskState.DEFERRED and after.priority == 9
    plain = [await client.queue_task("add", [i, i]) for i in range(3)]  # priority 0, older
    claim = await b.claim(["default"], "w", 30.0, 1)
    assert [r["id"] for r in claim.tasks] == [first.id]
    row = claim.tasks[0]
    assert await b.complete(first.id, row["token"], TaskState.SUCCESS, result="3")
    # released by the completion: QUEUED with its priority, so it goes before the older ones
    released = await b.get(after.id)
    assert released.status == TaskState.QUEUED and released.priority == 9
    claim = await b.claim(["default"], "w", 30.0, 1)
    assert [r["id"] for r in claim.tasks] == [after.id]
    rest = await b.claim(["default"], "w", 30.0, 10)
    assert [r["id"] for r in rest.tasks] == [t.id for t in plain]


async def test_a_chain_records_the_events_of_its_steps(backend_url) -> None:
    client = tasks.connect(backend_url, events=True, set_default=False)
    try:
        start = await client.last_event_id()
        flow = await client.queue_workflow(
            chain(tq_jobs.add.s(1, 2), tq_jobs.add.s(10), tq_jobs.add.s(100))
        )
        tree = (await client.get_task(flow.id)).kwargs
        steps = [m["id"] for m in tree["members"]]
        seen: list[tasks.TaskEvent] = []

        async def read() -> None:
            left = {flow.id, *steps}  # until the record and every step succeeded
            async for event in client.events(after=start):
                seen.append(event)
                if event.kind == "succeeded":
                    left.discard(event.task_id)
                    if not left:
                        return

        async with consuming(backend_url, events=True):
            await asyncio.wait_for(read(), 30)
        done = await client.get_task(flow.id)
        assert done.status == TaskState.SUCCESS and done.result == 113
        for step in steps:
            kinds = [e.kind for e in seen if e.task_id == step]
            assert kinds[0] == "queued" and kinds[-2:] == ["started", "succeeded"], (step, kinds)
        # the later steps are queued twice: stored waiting, then released by their dependency
        later = [e for e in seen if e.task_id == steps[2] and e.kind == "queued"]
        assert len(later) == 2, [(e.kind, e.reason) for e in seen if e.task_id == steps[2]]
        assert [e.kind for e in seen if e.task_id == flow.id][-1] == "succeeded"
        # in causal order, also within one transaction (the last step's end completes the
        # record in the same script / transaction)
        finals = [e.task_id for e in seen if e.kind == "succeeded"]
        assert finals == [*steps, flow.id], finals
    finally:
        await client.close()


async def test_a_workflow_step_sees_its_workflow_and_publishes_progress(client, backend_url):
    flow = await client.queue_workflow(
        chain(tq_jobs.add.s(1, 2), tq_jobs.progress_async.si(2, 0.05))
    )
    async with consuming(backend_url):
        done = await client.wait_for_task(flow.id, timeout=30)
    assert done.status == TaskState.SUCCESS, done.error
    context = done.result  # what the last step saw of its own task
    assert context["workflow"] == flow.id and context["attempts"] == 1
    step = await client.get_task(context["id"])
    assert step.workflow == flow.id and step.progress == 1.0 and step.meta == {"step": 2}


async def test_a_group_of_a_rate_limited_job_runs_every_member_once(client, backend_url):
    members = 6  # rated: 10/s, so the last ones wait for the window: never failed or retried
    flow = await client.queue_workflow(group(tq_jobs.rated.s(str(i)) for i in range(members)))
    started = time.time()
    async with consuming(backend_url):
        done = await client.wait_for_task(flow.id, timeout=30)
    assert done.status == TaskState.SUCCESS, done.error
    assert [r[1] for r in done.result] == [str(i) for i in range(members)]
    assert all(r[0] >= started - 1 for r in done.result)
    tree = (await client.get_task(flow.id)).kwargs
    for member in tree["members"]:
        task = await client.get_task(member["id"])
        assert task.status == TaskState.SUCCESS and task.attempts == 1


async def test_revoking_a_workflow_revokes_its_members(client, backend_url) -> None:
    flow = await client.queue_workflow(
        chain(tq_jobs.add.s(1, 2), group(tq_jobs.add.s(1), tq_jobs.add.s(2)), tq_jobs.wf_sum.s())
    )
    other = await client.queue_task("add", [5, 5])  # not of the workflow: left alone
    assert await client.revoke(flow.id) == TaskState.REVOKED
    record = await client.get_task(flow.id)
    assert record.status == TaskState.REVOKED and record.error == "revoked"
    tree = record.kwargs
    ids = [m["id"] for m in tree["members"] if "id" in m]
    ids += [m["id"] for m in tree["members"][1]["members"]]
    for member in ids:
        assert (await client.get_task(member)).status == TaskState.REVOKED, member
    async with consuming(backend_url):  # nothing of it runs; the other task does
        assert (await client.wait_for_task(other.id, timeout=30)).result == 10
    for member in ids:
        assert (await client.get_task(member)).status == TaskState.REVOKED, member


def test_depends_on_over_rpc_and_the_cli(tmp_path) -> None:
    from test_cli_rpc import Api, call

    url = f"sqlite:///{tmp_path}/t.db"
    api = Api(task_backend=url)
    first = call(api, "queue_task", jobname="add", args=[1, 2])["result"]
    queued = call(api, "queue_task", jobname="add", args=[3, 4], depends_on=[first["id"]])
    assert queued["result"]["status"] == "DEFERRED" and queued["result"]["depends"] == [first["id"]]
    err = call(api, "queue_task", jobname="add", args=[1, 2], depends_on=["nope"])["error"]
    assert err["code"] == -32602 and "nope" in err["message"]
    out = h.cli(
        "queue", "add", "--arg", "1", "--arg", "1", "--depends-on", first["id"],
        "--depends-on", queued["result"]["id"], "--backend", url, "--modules", "tq_jobs",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    one = h.cli("status", out.stdout.strip(), "--backend", url, "--json")
    assert json.loads(one.stdout)["status"] == "DEFERRED", one.stdout
    bad = h.cli(
        "queue", "add", "--depends-on", "nope", "--backend", url, "--modules", "tq_jobs"
    )  # fmt: skip
    assert bad.returncode != 0 and "nope" in bad.stderr
