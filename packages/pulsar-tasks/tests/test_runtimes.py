"""The worker's run-time histogram: the sans-IO counts (``_runtimes``), then a real consumer's
``info`` after real runs."""

from __future__ import annotations

import asyncio

import pytest
import tq_helpers as h
import tq_jobs  # noqa: F401  (the jobs the tests queue)

from pulsar.apps.tasks import TaskState
from pulsar.apps.tasks._runtimes import BUCKETS, RunTimes


def test_observe_counts_each_run_in_its_bucket_cumulatively() -> None:
    rt = RunTimes((0.1, 1.0, 10.0))
    for seconds in (0.0, 0.1, 0.1000001, 1.0, 5.0, 10.0, 11.0, -1.0):
        rt.observe("default", seconds)
    rt.observe("other", 0.5)
    info = rt.info()
    assert info["buckets"] == [0.1, 1.0, 10.0]
    # le=0.1 holds 0.0, 0.1 and the negative time (as 0); le=1: + 0.1000001 and 1.0; ...
    assert info["queues"]["default"] == {
        "counts": [3, 5, 7, 8],
        "sum": pytest.approx(0.1 + 0.1000001 + 1.0 + 5.0 + 10.0 + 11.0),
        "count": 8,
    }
    assert info["queues"]["other"] == {"counts": [0, 1, 1, 1], "sum": 0.5, "count": 1}


def test_default_buckets_and_bad_buckets() -> None:
    assert RunTimes().info() == {"buckets": list(BUCKETS), "queues": {}}
    assert BUCKETS[0] == 0.005 and BUCKETS[-1] == 300.0
    for bad in ((), (1.0, 0.5), (1.0, 1.0)):
        with pytest.raises(ValueError, match="increasing"):
            RunTimes(bad)


@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)
async def test_the_worker_info_has_the_run_times_per_queue(client, backend_url) -> None:
    async with h.consuming(backend_url, queues=("default", "other")) as consumer:
        ids = [(await client.queue_task("add", [i, 1])).id for i in range(3)]
        ids.append((await client.queue_task("boom", ["no"])).id)  # a failure counts too
        ids.append((await client.queue_task("sleeper", [0.3], queue="other")).id)
        ids.append((await client.queue_task("elsewhere")).id)
        done = [await client.wait_for_task(i, timeout=10) for i in ids]
        assert [t.status for t in done].count(TaskState.SUCCESS) == 5
        for _ in range(100):  # the outcome is written before the run's end is counted
            if consumer.counters["processed"] == 6:
                break
            await asyncio.sleep(0.01)
        info = consumer.info()["run_time"]
    assert info["buckets"] == list(BUCKETS)
    default, other = info["queues"]["default"], info["queues"]["other"]
    assert default["count"] == 4 and default["counts"][-1] == 4
    assert other["count"] == 2 and other["sum"] >= 0.3
    # the sleeper took 0.3 s and more: above le=0.25, within le=1 (this machine may be slow)
    assert other["counts"][BUCKETS.index(0.25)] <= 1
    assert other["counts"][BUCKETS.index(60.0)] == 2
    assert default["counts"] == sorted(default["counts"])  # cumulative
