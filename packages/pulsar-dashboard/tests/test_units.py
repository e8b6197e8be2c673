"""Sans-IO parts: bind checks, the SVG charts, the metrics collector, pages from a snapshot."""

from __future__ import annotations

import io
from collections import deque
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import pulsar
from pulsar.apps import dashboard
from pulsar.apps.dashboard import _charts, _http, _source, _views


@pytest.mark.parametrize(
    ("bind", "loopback"),
    [
        ("127.0.0.1:8070", True),
        ("127.0.0.2:1", True),
        ("localhost:8070", True),
        ("[::1]:8070", True),
        ("unix:/tmp/d.sock", True),
        ("0.0.0.0:8070", False),
        (":8070", False),
        ("8070", False),
        ("[::]:8070", False),
        ("192.168.1.4:8070", False),
        ("example.com:80", False),
    ],
)
def test_is_loopback(bind: str, loopback: bool) -> None:
    assert dashboard.is_loopback(bind) is loopback


def cfg(**params: Any) -> pulsar.Config:
    return pulsar.Config(apps=("dashboard",), **params)


def test_check_config() -> None:
    dashboard.check_config(cfg(bind=["127.0.0.1:0"]))
    with pytest.raises(pulsar.ConfigError, match=r"refusing to listen on 0\.0\.0\.0:1"):
        dashboard.check_config(cfg(bind=["127.0.0.1:0", "0.0.0.0:1"]))
    dashboard.check_config(cfg(bind=["0.0.0.0:1"], dashboard_token="t"))
    with pytest.raises(pulsar.ConfigError, match="--attach"):
        dashboard.check_config(cfg(), require_attach=True)
    dashboard.check_config(cfg(dashboard_attach="app.pid"), require_attach=True)


def test_rates_and_chart() -> None:
    samples = [(0.0, 0), (1.0, 10), (2.0, 30), (2.0, 30), (3.0, 25)]  # a reset counts as 0
    assert _charts.rates(samples) == [(1.0, 10.0), (2.0, 20.0), (3.0, 0.0)]
    svg = _charts.rate_chart(samples, title="a <b>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<polyline" in svg and "a &lt;b&gt;" in svg and "20/s" in svg
    assert "collecting samples" in _charts.rate_chart([(0.0, 1)], title="x")


def test_rate_over_window() -> None:
    history = deque([(float(t), 10 * t, 0) for t in range(30)])
    assert _source._rate(history, 1) == pytest.approx(10.0)
    assert _source._rate(deque([(0.0, 5, 0)]), 1) == 0.0


def test_mask() -> None:
    assert _source._mask("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert _source._mask("sqlite:///x.db") == "sqlite:///x.db"


def test_find_mailbox_errors(tmp_path: Any) -> None:
    with pytest.raises(dashboard.AttachError, match="No such file"):
        _source.find_mailbox(str(tmp_path / "nope.pid"))
    pid = tmp_path / "app.pid"
    pid.write_text("123\n")
    with pytest.raises(dashboard.AttachError, match="start the application with --pidfile"):
        _source.find_mailbox(str(pid))
    (tmp_path / "app.pid.mailbox").write_text(str(tmp_path / "gone.sock"))
    with pytest.raises(dashboard.AttachError, match="has exited"):
        _source.find_mailbox(str(pid))


def actor(aid: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "aid": aid,
        "name": aid,
        "kind": kind,
        "pid": 10,
        "state": "RUNNING",
        "uptime": 5.0,
        "cpu_percent": 1.5,
        "memory_rss": 1 << 20,
        "concurrency": "process",
        "requests": None,
        "connections": None,
        "tasks_processed": None,
        "tasks_running": None,
        "messages": 3,
        **extra,
    }


LE = [0.001, 0.01, 0.1]


def wsgi_info(statuses: dict[int, int], buckets: list[int], total: float) -> dict[str, Any]:
    """A pulsar-wsgi worker's ``info["wsgi"]`` (its ``statuses`` and ``latency``)."""
    count = sum(statuses.values())
    latency = {"le": LE, "buckets": buckets, "sum": total, "count": count}
    return {"statuses": statuses, "latency": latency}


def http_numbers() -> dict[str, Any]:
    totals = _http.HttpTotals()
    totals.update(98.0, [("web", [("w1", wsgi_info({200: 10}, [5, 10, 10], 0.02))])])
    w2 = wsgi_info({200: 20, 500: 2}, [10, 20, 21], 0.5)
    return totals.update(
        99.0, [("web", [("w1", wsgi_info({200: 10}, [5, 10, 10], 0.02)), ("<w2>", w2)])]
    )["web"]


SNAPSHOT: dict[str, Any] = {
    "connected": True,
    "error": None,
    "time": 100.0,
    "address": "/tmp/a.sock",
    "attach": "app.pid",
    "interval": 1.0,
    "arbiter": actor("arbiter", "arbiter"),
    "states": {"RUNNING": 4},
    "guests": [],
    "apps": [
        actor(
            "monitor-web",
            "monitor",
            app="web",
            restarts=1,
            crashes=2,
            workers_target=2,
            is_server=True,
            is_tasks=False,
            addresses=["127.0.0.1:1"],
            requests_total=42,
            tasks_total=0,
            connections_open=1,
            history=[(98.0, 0, 0), (99.0, 42, 0)],
            request_rate=42.0,
            task_rate=0.0,
            http=http_numbers(),
            workers=[
                actor("w1", "worker", requests=40, connections=1),
                actor("<w2>", "worker", requests=2, connections=0, state="STOPPING"),
            ],
        )
    ],
    "tasks": {
        "installed": True,
        "available": True,
        "counts": {"FAILURE": 2, "SUCCESS": 5},
        "by_queue": {"default": {"FAILURE": 2, "SUCCESS": 4}, "<q>": {"SUCCESS": 1}},
        "queues": {"default": 3},
        "workers": [{}],
        "jobs": ["add"],
        "history": [],
        "rate": 0.0,
        "backend": "sqlite:///x.db",
        "error": None,
        "total": 7,
    },
}


def test_metrics_of_a_snapshot() -> None:
    text = dashboard.render_metrics(lambda: SNAPSHOT).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("pulsar_up", ())] == 1
    assert samples[("pulsar_actors", (("kind", "worker"), ("state", "RUNNING")))] == 1
    assert samples[("pulsar_actors", (("kind", "worker"), ("state", "STOPPING")))] == 1
    assert samples[("pulsar_actors", (("kind", "worker"), ("state", "CLOSED")))] == 0
    assert samples[("pulsar_actor_restarts_total", (("app", "web"),))] == 1
    assert samples[("pulsar_actor_crashes_total", (("app", "web"),))] == 2
    assert samples[("pulsar_http_requests_total", (("app", "web"), ("status", "200")))] == 30
    assert samples[("pulsar_http_requests_total", (("app", "web"), ("status", "500")))] == 2
    bucket = "pulsar_http_request_duration_seconds_bucket"
    assert samples[(bucket, (("app", "web"), ("le", "0.001")))] == 15
    assert samples[(bucket, (("app", "web"), ("le", "0.1")))] == 31
    assert samples[(bucket, (("app", "web"), ("le", "+Inf")))] == 32
    assert samples[("pulsar_http_request_duration_seconds_count", (("app", "web"),))] == 32
    assert samples[("pulsar_http_request_duration_seconds_sum", (("app", "web"),))] == 0.52
    assert samples[("pulsar_http_open_connections", (("app", "web"),))] == 1
    assert samples[("pulsar_tasks", (("queue", "default"), ("state", "FAILURE")))] == 2
    assert samples[("pulsar_tasks", (("queue", "<q>"), ("state", "SUCCESS")))] == 1
    assert samples[("pulsar_task_queue_depth", (("queue", "default"),))] == 3
    labels = (("aid", "w1"), ("app", "web"), ("kind", "worker"))
    assert samples[("pulsar_actor_memory_rss_bytes", labels)] == 1 << 20


def test_metrics_when_not_connected() -> None:
    text = dashboard.render_metrics(lambda: {"connected": False, "error": "x"}).decode()
    assert "pulsar_up 0.0" in text and "pulsar_actors" not in text


def test_pages_escape_what_the_application_says() -> None:
    html = _views.render_actors(SNAPSHOT)
    assert "&lt;w2&gt;" in html and "<w2>" not in html
    assert html.count('data-kind="worker"') == 2
    assert "1 / 2" in html  # restarts / crashes
    page = _views.render_tasks(SNAPSHOT, [], {"status": "FAILURE"})
    assert 'data-state="FAILURE">' in page and "status=FAILURE" in page
    assert '<tr data-queue="&lt;q&gt;"><td>&lt;q&gt;</td>' in page and "<q>" not in page


class FakeSource:
    interval = 1.0

    def snapshot(self) -> dict[str, Any]:
        return SNAPSHOT

    def actor_info(self, aid: str) -> dict[str, Any] | None:
        return {"aid": aid, "kind": "worker", "pid": 10} if aid == "w1" else None

    def start(self) -> FakeSource:
        return self

    def wait_ready(self, timeout: float) -> bool:
        return True


def call(app: Any, path: str, method: str = "GET", **headers: str) -> tuple[str, dict, bytes]:
    got: dict[str, Any] = {}

    def start_response(status: str, hdrs: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(hdrs)

    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(),
        "HTTP_HOST": "127.0.0.1:8070",
        **headers,
    }
    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def test_wsgi_routes_and_token() -> None:
    app = dashboard.Dashboard(FakeSource(), token="tok", protect_reads=False)  # type: ignore[arg-type]
    status, headers, body = call(app, "/")
    assert status == "200 OK" and b'data-aid="w1"' in body
    assert headers["X-Frame-Options"] == "DENY"
    assert call(app, "/actors/w1")[0] == "200 OK"
    assert call(app, "/actors/zz")[0] == "404 Not Found"
    assert call(app, "/nowhere")[0] == "404 Not Found"
    assert call(app, "/", "DELETE")[0] == "405 Method Not Allowed"
    assert call(app, "/actors/w1/stop", "POST")[0] == "403 Forbidden"
    bad_origin = {"HTTP_ORIGIN": "http://evil.example", "HTTP_AUTHORIZATION": "Bearer tok"}
    assert call(app, "/actors/w1/stop", "POST", **bad_origin)[0] == "403 Forbidden"
    assert call(app, "/actors/w1/stop", "POST", HTTP_COOKIE="pulsar_dashboard=nope")[0] == (
        "403 Forbidden"
    )
    status, headers, _ = call(app, "/metrics")
    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert call(app, "/static/dashboard.js")[0] == "200 OK"
    protected = dashboard.Dashboard(FakeSource(), token="tok", protect_reads=True)  # type: ignore[arg-type]
    status, headers, _ = call(protected, "/servers")
    assert status == "303 See Other" and headers["Location"] == "/login?next=%2Fservers"
    assert call(protected, "/api/state")[0] == "401 Unauthorized"
    assert call(protected, "/api/state", HTTP_AUTHORIZATION="Bearer tok")[0] == "200 OK"
    assert call(protected, "/", HTTP_COOKIE="pulsar_dashboard=tok")[0] == "200 OK"


def test_dns_rebinding_is_refused() -> None:
    app = dashboard.Dashboard(FakeSource(), token=None, protect_reads=False)  # type: ignore[arg-type]
    for host in ("127.0.0.1:8070", "localhost:8070", "[::1]:8070", "127.0.0.1"):
        assert call(app, "/", HTTP_HOST=host)[0] == "200 OK", host
    for host in ("evil.example:8070", "evil.example", "10.0.0.1:8070"):
        status, _, body = call(app, "/", HTTP_HOST=host)
        assert status == "403 Forbidden" and b"unexpected Host" in body, host
        assert call(app, "/actors/w1/stop", "POST", HTTP_HOST=host)[0] == "403 Forbidden"
    # behind a token (a remote bind), any Host name may be used
    remote = dashboard.Dashboard(FakeSource(), token="tok", protect_reads=True)  # type: ignore[arg-type]
    ok = call(remote, "/", HTTP_HOST="dash.example.com", HTTP_AUTHORIZATION="Bearer tok")
    assert ok[0] == "200 OK"


def test_nothing_to_attach_to_is_shown_not_raised(tmp_path: Any) -> None:
    source = dashboard.Source(str(tmp_path / "nope.pid"), interval=0.05)
    app = dashboard.Dashboard(source, protect_reads=False)
    try:
        status, _, body = call(app, "/")
        assert status == "200 OK" and b'id="disconnected"' in body and b"nope.pid" in body
        assert call(app, "/servers")[0] == "200 OK"
        assert call(app, "/tasks")[0] == "404 Not Found"
        _, _, text = call(app, "/metrics")
        assert text.decode().splitlines()[-1] == "pulsar_up 0.0"
        status, _, body = call(app, "/actors/x/stop", "POST")
        assert status == "404 Not Found"
    finally:
        app.close()


def test_quantile_as_prometheus_estimates_it() -> None:
    hist = {"le": [0.1, 0.5, 1.0], "buckets": [10, 20, 30], "sum": 3.0, "count": 40}
    assert _http.quantile(0.25, hist) == pytest.approx(0.1)  # the top of the first bucket
    assert _http.quantile(0.125, hist) == pytest.approx(0.05)  # from 0, linearly
    assert _http.quantile(0.5, hist) == pytest.approx(0.5)
    assert _http.quantile(0.625, hist) == pytest.approx(0.75)  # inside (0.5, 1.0]
    assert _http.quantile(0.99, hist) == 1.0  # in +Inf: the highest finite bound
    assert _http.quantile(0.5, _http.empty_histogram([0.1])) is None
    skewed = {"le": [0.1, 0.5, 1.0], "buckets": [0, 0, 4], "sum": 3.0, "count": 4}
    assert _http.quantile(0.5, skewed) == pytest.approx(0.75)  # empty buckets skipped
    with pytest.raises(ValueError, match="between 0 and 1"):
        _http.quantile(1.5, hist)


def test_status_shares_and_window() -> None:
    assert _http.status_share({"200": 8, "404": 1, "503": 1}, 500) == pytest.approx(0.1)
    assert _http.status_share({"200": 8, "404": 1, "503": 1}, 400) == pytest.approx(0.1)
    assert _http.status_share({}, 500) is None
    w = _http.window_stats(
        {"200": 3, "500": 1}, {"le": [0.1], "buckets": [4], "sum": 0.2, "count": 4}
    )
    assert w["responses"] == 4 and w["errors_5xx"] == 0.25 and w["errors_4xx"] == 0.0
    assert w["p50"] == pytest.approx(0.05)


def test_http_totals_keep_replaced_workers_and_window() -> None:
    totals = _http.HttpTotals()
    a1 = wsgi_info({200: 10, 404: 2}, [6, 12, 12], 0.1)
    b1 = wsgi_info({200: 5, 500: 5}, [0, 5, 10], 0.6)
    first = totals.update(0.0, [("web", [("a", a1), ("b", b1)])])["web"]
    assert first["statuses"] == {"200": 15, "404": 2, "500": 5}
    assert first["latency"]["buckets"] == [6, 17, 22] and first["latency"]["count"] == 22
    assert first["window"]["responses"] == 0 and first["series"] == []
    # b died and was replaced by c (fresh counters), a served 10 more 200s, all fast
    a2 = wsgi_info({200: 20, 404: 2}, [16, 22, 22], 0.11)
    c1 = wsgi_info({500: 10}, [10, 10, 10], 0.001)
    second = totals.update(1.0, [("web", [("a", a2), ("c", c1)])])["web"]
    assert second["statuses"] == {"200": 25, "404": 2, "500": 15}  # b's 5 and 5 kept
    assert second["latency"]["count"] == 42 and second["latency"]["buckets"] == [26, 37, 42]
    assert second["latency"]["sum"] == pytest.approx(0.711)
    win = second["window"]
    assert win["responses"] == 20 and win["errors_5xx"] == 0.5 and win["errors_4xx"] == 0.0
    assert win["p99"] is not None and win["p99"] <= 0.001  # the 20 new ones were all fast
    ((t, e5, e4, p50, p95, p99),) = second["series"]
    assert (t, e5, e4) == (1.0, 50.0, 0.0) and p50 is not None and p50 <= p95 <= p99 <= 0.001
    # a worker without HTTP numbers (a raw socket server) gives no entry
    assert totals.update(2.0, [("raw", [("r", None)])]) == {}


def test_line_chart() -> None:
    svg = _charts.line_chart(
        [("p50", [(0.0, 0.001), (1.0, None), (2.0, 0.002), (3.0, 0.004)]), ("p99", [])],
        title="latency <x>",
        unit=" ms",
        scale=1000.0,
    )
    assert svg.startswith("<svg") and "latency &lt;x&gt;" in svg
    assert svg.count("<polyline") == 1  # the gap breaks the line; a run of one point is none
    assert "p50 4 ms" in svg and "4 ms</text>" in svg
    assert "collecting samples" in _charts.line_chart([("x", [])], title="t")
