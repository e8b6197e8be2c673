"""``/metrics``: the dashboard's snapshot in the Prometheus text format (prometheus_client).

How it works
------------
A custom collector (:class:`SnapshotCollector`) turns the :class:`~._source.Source` snapshot
into metric families at each scrape. The numbers are read from the arbiter, which gathers every
worker's info, so they are the whole application's whatever the number of worker processes
(no per-process registry to merge, no ``PROMETHEUS_MULTIPROC_DIR``). Totals of replaced
workers are kept by the source, so ``_total`` counters never go backwards while the dashboard
runs. HTTP responses are counted by status (``pulsar_http_requests_total{app,status}``: every
response a pulsar-wsgi worker sent, its own 400/408... to unparsable requests included) beside
their latency histogram (``pulsar_http_request_duration_seconds``), the workers' histograms
summed bucket by bucket (they share one set of bounds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "SnapshotCollector", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = ("INITIAL", "STARTING", "RUNNING", "STOPPING", "CLOSED")


class SnapshotCollector(Collector):
    """Metric families from ``snapshot()`` (a callable returning the source's snapshot)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        up = GaugeMetricFamily("pulsar_up", "1 when the dashboard read the application last time")
        up.add_metric([], 1.0 if snap.get("connected") else 0.0)
        yield up
        if not snap.get("connected") or not snap.get("arbiter"):
            return  # nothing stale: an application that cannot be read has only pulsar_up 0
        actors = GaugeMetricFamily(
            "pulsar_actors", "Actors by kind and state", labels=["kind", "state"]
        )
        counts: dict[tuple[str, str], int] = {}
        everyone = [
            snap["arbiter"],
            *snap["apps"],
            *(w for a in snap["apps"] for w in a["workers"]),
        ]
        for actor in everyone:
            key = (str(actor.get("kind")), str(actor.get("state")))
            counts[key] = counts.get(key, 0) + 1
        for kind in ("arbiter", "monitor", "worker"):
            for state in STATES:
                counts.setdefault((kind, state), 0)
        for (kind, state), n in sorted(counts.items()):
            actors.add_metric([kind, state], n)
        yield actors
        workers = GaugeMetricFamily(
            "pulsar_workers", "Running workers per application", labels=["app"]
        )
        target = GaugeMetricFamily(
            "pulsar_workers_target", "Workers an application keeps", labels=["app"]
        )
        restarts = CounterMetricFamily(
            "pulsar_actor_restarts", "Workers respawned after a start failure", labels=["app"]
        )
        crashes = CounterMetricFamily(
            "pulsar_actor_crashes", "Ready workers that died and were replaced", labels=["app"]
        )
        for app in snap["apps"]:
            workers.add_metric([app["app"]], len(app["workers"]))
            target.add_metric([app["app"]], float(app.get("workers_target") or 0))
            restarts.add_metric([app["app"]], app["restarts"])
            crashes.add_metric([app["app"]], app["crashes"])
        yield from (workers, target, restarts, crashes)
        labels = ["app", "aid", "kind"]
        cpu = GaugeMetricFamily(
            "pulsar_actor_cpu_percent", "CPU % of an actor's process", labels=labels
        )
        mem = GaugeMetricFamily(
            "pulsar_actor_memory_rss_bytes", "Resident memory of an actor's process", labels=labels
        )
        uptime = GaugeMetricFamily(
            "pulsar_actor_uptime_seconds", "Seconds since the actor started", labels=labels
        )
        messages = CounterMetricFamily(
            "pulsar_actor_mailbox_messages_received",
            "Mailbox messages an actor received",
            labels=labels,
        )
        rows = [("", snap["arbiter"])]
        rows += [(a["app"], a) for a in snap["apps"]]
        rows += [(a["app"], w) for a in snap["apps"] for w in a["workers"]]
        for app_name, actor in rows:
            values = [app_name, str(actor["aid"]), str(actor["kind"])]
            if actor.get("cpu_percent") is not None:
                cpu.add_metric(values, actor["cpu_percent"])
            if actor.get("memory_rss") is not None:
                mem.add_metric(values, actor["memory_rss"])
            if actor.get("uptime") is not None:
                uptime.add_metric(values, actor["uptime"])
            if actor.get("messages") is not None:
                messages.add_metric(values, actor["messages"])
        yield from (cpu, mem, uptime, messages)
        servers = [a for a in snap["apps"] if a.get("is_server")]
        if servers:
            yield from _http_families(servers)
        tasks = snap.get("tasks") or {}
        if tasks.get("counts") is not None:
            by_state = GaugeMetricFamily(
                "pulsar_tasks", "Task records by queue and state", labels=["queue", "state"]
            )
            for queue, states in sorted((tasks.get("by_queue") or {}).items()):
                for state, n in sorted(states.items()):
                    by_state.add_metric([queue, state], n)
            depth = GaugeMetricFamily(
                "pulsar_task_queue_depth",
                "Tasks waiting (QUEUED or RETRY) per queue",
                labels=["queue"],
            )
            for queue, n in sorted(tasks["queues"].items()):
                depth.add_metric([queue], n)
            processed = CounterMetricFamily(
                "pulsar_tasks_processed", "Tasks run by the workers of a task queue", labels=["app"]
            )
            for app in snap["apps"]:
                if app.get("is_tasks"):
                    processed.add_metric([app["app"]], app["tasks_total"])
            live = GaugeMetricFamily("pulsar_task_workers", "Task workers with a live heartbeat")
            live.add_metric([], len(tasks.get("workers") or ()))
            yield from (by_state, depth, processed, live)
            yield _run_durations(snap)


def _run_durations(snap: dict[str, Any]) -> Metric:
    """``pulsar_task_run_duration_seconds{app,queue}``: the workers' run-time histograms,
    added up per application and queue (replaced workers included, see ``_runtimes``)."""
    family = HistogramMetricFamily(
        "pulsar_task_run_duration_seconds",
        "Run time of the tasks (succeeded, failed, retried or revoked while running)",
        labels=["app", "queue"],
    )
    for app in snap["apps"]:
        rt = app.get("run_time")
        if not rt:
            continue
        bounds = [floatToGoString(b) for b in rt["buckets"]] + ["+Inf"]
        for queue, h in rt["queues"].items():
            family.add_metric(
                [app["app"], queue],
                buckets=list(zip(bounds, h["counts"], strict=True)),
                sum_value=h["sum"],
            )
    return family


def _http_families(servers: list[dict[str, Any]]) -> Iterator[Metric]:
    """Requests by status, the latency histogram and open connections of the HTTP apps."""
    requests = CounterMetricFamily(
        "pulsar_http_requests",
        "HTTP responses sent by an application's workers, by status code",
        labels=["app", "status"],
    )
    latency = HistogramMetricFamily(
        "pulsar_http_request_duration_seconds",
        "Time from a request head parsed to its response head sent (the whole response for a "
        "list body, the first byte for a streaming one)",
        labels=["app"],
    )
    conns = GaugeMetricFamily(
        "pulsar_http_open_connections", "Open connections of an application", labels=["app"]
    )
    for app in servers:
        http = app.get("http")
        if http is not None:  # a pulsar-wsgi server (not a raw socket server)
            for status, n in http["statuses"].items():
                requests.add_metric([app["app"], str(status)], n)
            hist = http["latency"]
            buckets = [(_le(b), float(n)) for b, n in zip(hist["le"], hist["buckets"], strict=True)]
            buckets.append(("+Inf", float(hist["count"])))
            latency.add_metric([app["app"]], buckets, sum_value=float(hist["sum"]))
        conns.add_metric([app["app"]], app["connections_open"])
    yield from (requests, latency, conns)


def _le(bound: float) -> str:
    """A bucket bound as Prometheus' clients write it (``0.005``, ``1.0``)."""
    return repr(float(bound))


def render_metrics(snapshot: Callable[[], dict[str, Any]]) -> bytes:
    """The Prometheus text exposition of ``snapshot()``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
