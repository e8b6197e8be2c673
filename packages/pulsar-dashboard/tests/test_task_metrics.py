"""Task metrics of a real task queue (2 worker processes, SQLite, jobs on two queues): the
per-queue counts and the run-time histogram in ``/metrics`` (parsed with prometheus_client's
parser) and on ``/tasks``, and the histogram kept when a worker is SIGKILLed and replaced."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import dash_helpers as h
import httpx
import pytest
from dash_helpers import metrics, state
from test_live import app

from pulsar.apps import tasks

RUN = "pulsar_task_run_duration_seconds"


@pytest.fixture
def queue_site(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """A site of its own (a fresh backend: exact counts) with 2 task workers, and a dashboard
    attached to it reading every 0.2 s: (dashboard URL, backend URL)."""
    pidfile = tmp_path / "site.pid"
    backend = f"sqlite:///{tmp_path / 'tasks.db'}"
    site = h.spawn(
        ["site_app.py", "--backend", backend, "--pidfile", str(pidfile), "--tasks-workers", "2"]
    )
    dash = None
    try:
        site.wait_for(r"LISTENING (\S+)")
        h.eventually(lambda: (tmp_path / "site.pid.mailbox").exists())
        dash = h.attach(str(pidfile), "--interval", "0.2")
        url = "http://" + dash.wait_for(r"dashboard: listening on (\S+)")[1]
        h.eventually(
            lambda: (s := state(url))["connected"] and len(app(s, "tasks")["workers"]) == 2,
            timeout=20,
        )
        yield url, backend
    finally:
        if dash is not None:
            dash.stop()
        site.stop()


def run_time(m: dict[Any, float], queue: str) -> dict[str, Any]:
    """The histogram of ``queue``: its count, sum and cumulative buckets by ``le``."""
    labels = (("app", "tasks"), ("queue", queue))
    buckets = {
        dict(lbl)["le"]: v
        for (name, lbl), v in m.items()
        if name == f"{RUN}_bucket" and dict(lbl).get("queue") == queue
    }
    return {
        "count": m.get((f"{RUN}_count", labels)),
        "sum": m.get((f"{RUN}_sum", labels)),
        "buckets": buckets,
    }


def test_per_queue_counts_and_run_time_histogram(queue_site: tuple[str, str]) -> None:
    url, backend = queue_site
    with tasks.connect_sync(backend) as client:
        default = [client.queue_task("add", [i, 1]) for i in range(5)]
        bad = client.queue_task("flaky", ["/nonexistent/flag"])  # fails at once (no retries)
        other = [client.queue_task("product", [i, 2]) for i in range(3)]
        for t in (*default, *other):
            assert client.wait_for_task(t.id, timeout=20).status == tasks.TaskState.SUCCESS
        assert client.wait_for_task(bad.id, timeout=20).status == tasks.TaskState.FAILURE
        assert {t.queue for t in other} == {"other"}
        assert client.queue_counts() == {
            "default": {"SUCCESS": 5, "FAILURE": 1},
            "other": {"SUCCESS": 3},
        }

    def counted() -> dict[Any, float] | None:
        m = metrics(url)
        done = run_time(m, "default")["count"] == 6 and run_time(m, "other")["count"] == 3
        return m if done else None

    m = h.eventually(counted, timeout=15)
    assert m[("pulsar_tasks", (("queue", "default"), ("state", "SUCCESS")))] == 5
    assert m[("pulsar_tasks", (("queue", "default"), ("state", "FAILURE")))] == 1
    assert m[("pulsar_tasks", (("queue", "other"), ("state", "SUCCESS")))] == 3
    assert not [k for k in m if k[0] == "pulsar_tasks" and dict(k[1])["state"] == "QUEUED"]
    assert m[("pulsar_task_queue_depth", (("queue", "other"),))] == 0
    for queue, n in (("default", 6), ("other", 3)):
        h_ = run_time(m, queue)
        assert h_["buckets"]["+Inf"] == n and 0 < h_["sum"] < 60
        bounds = sorted(h_["buckets"], key=float)
        assert bounds[0] == "0.005" and bounds[-2] == "300.0" and len(bounds) == 15
        values = [h_["buckets"][b] for b in bounds]
        assert values == sorted(values)  # cumulative
        assert h_["buckets"]["60.0"] == n  # these jobs take milliseconds
    # the same on /tasks: per queue and state, and the run-time chart beside tasks/s
    page = httpx.get(url + "/tasks", timeout=10).text
    assert '<tr data-queue="other">' in page and 'aria-label="run time (10 s window)"' in page
    row = page.split('<tr data-queue="other">', 1)[1].split("</tr>", 1)[0]
    assert 'data-state="SUCCESS">3<' in row and 'data-runs="">3<' in row
    snap = state(url)
    assert any(p50 is not None for _, p50, _ in snap["tasks"]["latency"])

    # a worker SIGKILLed and replaced: its runs stay in the totals (counters never go back)
    victim = max(app(snap, "tasks")["workers"], key=lambda w: w["tasks_processed"] or 0)
    assert victim["tasks_processed"] > 0  # the one that ran the most
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        workers = app(state(url), "tasks")["workers"]
        return len(workers) == 2 and victim["aid"] not in {w["aid"] for w in workers}

    h.eventually(replaced, timeout=15)
    m = metrics(url)
    assert run_time(m, "default")["count"] == 6 and run_time(m, "other")["count"] == 3
    with tasks.connect_sync(backend) as client:
        more = [client.queue_task("product", [i, 3]) for i in range(2)]
        for t in more:
            assert client.wait_for_task(t.id, timeout=20).result == t.args[0] * 3

    def five_in_other() -> dict[Any, float] | None:
        m = metrics(url)
        return m if run_time(m, "other")["count"] == 5 else None

    m = h.eventually(five_in_other, timeout=15)
    assert run_time(m, "default")["count"] == 6
    assert m[("pulsar_tasks", (("queue", "other"), ("state", "SUCCESS")))] == 5
