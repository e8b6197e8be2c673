"""Sans-IO: the run-time histograms added up across workers (``_runtimes``), the quantiles,
the histogram family in ``/metrics`` and the run-time chart."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsar.apps import dashboard
from pulsar.apps.dashboard import _charts, _views
from pulsar.apps.dashboard._runtimes import RunTimes, quantile

BUCKETS = [0.1, 1.0, 10.0]


def worker(aid: str, **queues: tuple[list[int], float]) -> dict[str, Any]:
    """A worker's info with a run-time histogram: queue=(cumulative counts, sum)."""
    return {
        "aid": aid,
        "tasks": {
            "run_time": {
                "buckets": BUCKETS,
                "queues": {
                    q: {"counts": c, "sum": s, "count": c[-1]} for q, (c, s) in queues.items()
                },
            }
        },
    }


def monitors(*workers: dict[str, Any], app: str = "tasks") -> dict[str, Any]:
    return {app: {"workers": list(workers)}, "web": {"workers": [{"aid": "h1"}]}}


def test_quantile_as_histogram_quantile() -> None:
    assert quantile(0.5, BUCKETS, [0, 0, 0, 0]) is None
    # 10 runs: 4 <= 0.1, 4 in (0.1, 1], 2 in (1, 10]
    counts = [4, 8, 10, 10]
    assert quantile(0.5, BUCKETS, counts) == pytest.approx(0.1 + 0.9 * 1 / 4)
    assert quantile(0.2, BUCKETS, counts) == pytest.approx(0.05)
    assert quantile(0.95, BUCKETS, counts) == pytest.approx(1.0 + 9.0 * 1.5 / 2)
    assert quantile(0.99, BUCKETS, [0, 0, 0, 3]) == 10.0  # in +Inf: the highest bound


def test_workers_added_up_and_the_gone_ones_kept() -> None:
    rt = RunTimes()
    out = rt.update(1.0, monitors(worker("w1", default=([1, 2, 2, 2], 0.5))))
    assert set(out) == {"tasks"}  # the web app has no task workers
    assert out["tasks"]["buckets"] == BUCKETS
    assert out["tasks"]["queues"]["default"] == {"counts": [1, 2, 2, 2], "sum": 0.5, "count": 2}
    out = rt.update(
        2.0,
        monitors(
            worker("w1", default=([1, 3, 3, 3], 0.7), other=([0, 0, 1, 1], 5.0)),
            worker("w2", default=([2, 2, 2, 2], 0.1)),
        ),
    )
    assert out["tasks"]["queues"]["default"] == {
        "counts": [3, 5, 5, 5],
        "sum": pytest.approx(0.8),
        "count": 5,
    }
    assert out["tasks"]["queues"]["other"]["count"] == 1
    # w1 is replaced by w3 (no runs yet): w1's last figures stay
    out = rt.update(3.0, monitors(worker("w2", default=([2, 2, 2, 2], 0.1)), worker("w3")))
    assert out["tasks"]["queues"]["default"] == {
        "counts": [3, 5, 5, 5],
        "sum": pytest.approx(0.8),
        "count": 5,
    }
    assert out["tasks"]["queues"]["other"] == {"counts": [0, 0, 1, 1], "sum": 5.0, "count": 1}
    out = rt.update(4.0, monitors(worker("w2", default=([2, 2, 2, 2], 0.1)), worker("w3")))
    assert out["tasks"]["queues"]["default"]["count"] == 5  # retired once, not at every read
    # w2's info timed out (the arbiter lists it with its summary only): its last figures
    # stay, and are not counted twice when it answers again
    busy = {"aid": "w2", "info_error": "TimeoutError"}
    out = rt.update(4.5, monitors(busy, worker("w3")))
    assert out["tasks"]["queues"]["default"]["count"] == 5
    out = rt.update(4.6, monitors(worker("w2", default=([2, 3, 3, 3], 0.2)), worker("w3")))
    assert out["tasks"]["queues"]["default"]["count"] == 6
    # a worker whose buckets differ (another pulsar-tasks version) is left out
    odd = worker("w4", default=([9, 9, 9], 1.0))
    odd["tasks"]["run_time"]["buckets"] = [1.0, 2.0]
    out = rt.update(5.0, monitors(worker("w2", default=([2, 3, 3, 3], 0.2)), worker("w3"), odd))
    assert out["tasks"]["queues"]["default"]["count"] == 6


def test_latency_over_a_window() -> None:
    rt = RunTimes(window=10.0)
    rt.update(0.0, monitors(worker("w1")))
    assert rt.latency() == [(0.0, None, None)]
    rt.update(1.0, monitors(worker("w1", default=([4, 8, 10, 10], 6.0))))
    (_, p50, p95) = rt.latency()[-1]
    assert p50 == pytest.approx(0.325) and p95 == pytest.approx(7.75)
    # 20 s later: nothing ran within the window
    rt.update(21.0, monitors(worker("w1", default=([4, 8, 10, 10], 6.0))))
    assert rt.latency()[-1] == (21.0, None, None)
    rt.update(22.0, monitors(worker("w1", default=([5, 9, 11, 11], 6.05))))
    assert rt.latency()[-1][1] == pytest.approx(0.05)  # one run, <= 0.1 s


def test_latency_of_the_first_runs_of_workers_seen_late() -> None:
    """Workers whose info has no histogram yet (still starting) at the first reads: the runs
    in the first histogram seen are in the window of that read."""
    rt = RunTimes(window=10.0)
    rt.update(0.0, {"tasks": {"workers": [{"aid": "w1"}]}})
    rt.update(0.2, monitors(worker("w1", default=([4, 8, 10, 10], 6.0))))
    assert rt.latency()[0] == (0.0, None, None)
    assert rt.latency()[-1][1] == pytest.approx(0.325)
    # attached to an application that ran for long: its past runs are not in the first window
    late = RunTimes(window=10.0)
    late.update(0.0, monitors(worker("w1", default=([4, 8, 10, 10], 6.0))))
    late.update(0.2, monitors(worker("w1", default=([4, 8, 10, 10], 6.0))))
    assert late.latency() == [(0.0, None, None), (0.2, None, None)]


def snapshot(run_time: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "connected": True,
        "arbiter": {"aid": "arbiter", "kind": "arbiter", "state": "RUNNING"},
        "apps": [
            {
                "app": "tasks",
                "aid": "monitor-tasks",
                "kind": "monitor",
                "state": "RUNNING",
                "restarts": 0,
                "crashes": 0,
                "workers": [],
                "is_tasks": True,
                "tasks_total": 10,
                "run_time": run_time,
            }
        ],
        "tasks": {
            "installed": True,
            "available": True,
            "counts": {"SUCCESS": 10},
            "by_queue": {"default": {"SUCCESS": 10}},
            "queues": {"default": 0},
            "workers": [],
            "jobs": [],
            "history": [],
            "latency": [(1.0, 0.2, 0.5), (2.0, None, None), (3.0, 0.3, 0.9), (4.0, 0.25, 0.8)],
            "rate": 0.0,
        },
    }


def test_the_histogram_in_metrics_and_on_the_tasks_page() -> None:
    rt = {
        "buckets": BUCKETS,
        "queues": {"default": {"counts": [4, 8, 10, 10], "sum": 6.0, "count": 10}},
    }
    text = dashboard.render_metrics(lambda: snapshot(rt)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["pulsar_task_run_duration_seconds"]
    assert family.type == "histogram"
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("pulsar_task_run_duration_seconds_bucket", "0.1")] == 4
    assert samples[("pulsar_task_run_duration_seconds_bucket", "10.0")] == 10
    assert samples[("pulsar_task_run_duration_seconds_bucket", "+Inf")] == 10
    assert samples[("pulsar_task_run_duration_seconds_count", None)] == 10
    assert samples[("pulsar_task_run_duration_seconds_sum", None)] == 6.0
    assert {s.labels.get("queue") for s in family.samples} == {"default"}
    page = _views.render_tasks(snapshot(rt), [], {})
    row = page.split('<tr data-queue="default">', 1)[1].split("</tr>", 1)[0]
    assert 'data-runs="">10<' in row and "325.0 ms" in row  # runs, p50
    assert 'aria-label="run time (10 s window)"' in page
    # no task worker yet: an empty family, and a page all the same
    text = dashboard.render_metrics(lambda: snapshot(None)).decode()
    assert "pulsar_task_run_duration_seconds_count" not in text
    assert "run time (10 s window)" in _views.render_tasks(snapshot(None), [], {})


def test_line_chart_breaks_at_none() -> None:
    svg = _charts.line_chart(
        [("p50", [(1.0, 0.2), (2.0, None), (3.0, 0.3), (4.0, 0.25)]), ("<p95>", [(1.0, 0.5)])],
        title="run time",
        unit=" ms",
        scale=1000.0,
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<polyline") == 1  # p50's two points after the gap
    assert svg.count("<circle") == 2  # p50's first point, alone before the gap; p95's one
    assert 'data-series="p50"' in svg and "&lt;p95&gt;" in svg and "<p95>" not in svg
    assert "500ms" in svg.replace(" ", "")  # the top of the axis: 0.5 s in ms
    assert "now: p50 250 ms" in svg
    empty = _charts.line_chart([("p50", [])], title="run time")
    assert "collecting samples" in empty
