"""The dashboard attached to a real multi-process application, over real HTTP (httpx)."""

from __future__ import annotations

import signal
import time
from typing import Any

import dash_helpers as h
import httpx
import pytest
from dash_helpers import metrics, state

from pulsar.apps import tasks


def app(snap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in snap["apps"] if a["app"] == name)


def test_actor_tree_and_pages(live: Any) -> None:
    snap = h.eventually(lambda: (s := state(live.url))["connected"] and s)
    assert len(app(snap, "wsgi")["workers"]) == 2
    assert len(app(snap, "tasks")["workers"]) == 1
    worker = app(snap, "wsgi")["workers"][0]
    assert worker["state"] == "RUNNING" and worker["pid"] > 0
    assert worker["memory_rss"] > 0 and worker["cpu_percent"] is not None
    page = httpx.get(live.url + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for w in [*app(snap, "wsgi")["workers"], *app(snap, "tasks")["workers"]]:
        assert f'data-aid="{w["aid"]}"' in page.text
    assert '<script src="/static/dashboard.js">' in page.text
    js = httpx.get(live.url + "/static/dashboard.js", timeout=10)
    assert js.status_code == 200 and "fetch(" in js.text
    # the same URL as JSON: the refreshed part
    part = httpx.get(live.url + "/", headers={"Accept": "application/json"}, timeout=10).json()
    assert 'data-kind="worker"' in part["main"] and part["updated"] > 0
    detail = httpx.get(f"{live.url}/actors/{worker['aid']}", timeout=10)
    assert detail.status_code == 200
    assert f"/actors/{worker['aid']}/stop" in detail.text and "&quot;server&quot;" in detail.text
    assert httpx.get(f"{live.url}/actors/nosuchactor", timeout=10).status_code == 404
    servers = httpx.get(live.url + "/servers", timeout=10)
    assert servers.status_code == 200 and "<svg" in servers.text


def test_metrics_count_real_traffic(live: Any) -> None:
    key = ("pulsar_http_requests_total", (("app", "wsgi"), ("status", "200")))

    def settled() -> list[float] | None:  # the same total over several reads (0.3 s apart)
        m = metrics(live.url)
        first = m.get(key, 0.0)  # a status has no sample before its first response
        time.sleep(1.0)
        up = m[("pulsar_up", ())] == 1 and ("pulsar_workers", (("app", "wsgi"),)) in m
        return [first] if up and metrics(live.url).get(key, 0.0) == first else None

    before = h.eventually(settled)[0]
    with httpx.Client(base_url=f"http://{live.site.web}") as web:
        for _ in range(25):
            assert web.get("/").status_code == 200

    def counted() -> dict[Any, float] | None:
        m = metrics(live.url)
        return m if m.get(key, 0.0) == before + 25 else None

    m = h.eventually(counted)
    assert m[("pulsar_actors", (("kind", "worker"), ("state", "RUNNING")))] == 3
    assert m[("pulsar_workers", (("app", "wsgi"),))] == 2
    assert ("pulsar_actor_restarts_total", (("app", "wsgi"),)) in m
    assert m[("pulsar_up", ())] == 1


def http_numbers(url: str) -> dict[str, float]:
    """The wsgi app's requests by status and its latency histogram's samples, from /metrics."""
    out = {}
    for (name, labels), value in metrics(url).items():
        tags = dict(labels)
        if tags.get("app") != "wsgi":
            continue
        if name == "pulsar_http_requests_total":
            out[tags["status"]] = value
        elif name.startswith("pulsar_http_request_duration_seconds"):
            out[name.rsplit("_", 1)[1] + tags.get("le", "")] = value
    return out


def settled_http(url: str) -> dict[str, float]:
    """:func:`http_numbers` once they stay the same over a second (3 reads of the dashboard;
    the histogram's samples are there from the start, at 0)."""

    def same() -> dict[str, float] | None:
        first = http_numbers(url)
        time.sleep(1.0)
        return first if "count" in first and http_numbers(url) == first else None

    return h.eventually(same, timeout=20)


def test_error_rates_and_latency_of_real_traffic(live: Any) -> None:
    """200s, 404s and 500s sent over real sockets to the 2 worker processes: /metrics counts
    exactly those per status, the histogram's _count is their total, /servers shows the
    error shares and percentiles."""
    before = settled_http(live.url)
    sent = {"200": 20, "404": 7, "500": 5}
    with httpx.Client(base_url=f"http://{live.site.web}") as web:
        for _ in range(sent["200"]):
            assert web.get("/").status_code == 200
        for _ in range(sent["404"]):
            assert web.get("/missing").status_code == 404
    for _ in range(sent["500"]):  # new connections (a 500 closes its own): both workers answer
        assert httpx.get(f"http://{live.site.web}/fail", timeout=10).status_code == 500
    expected = {code: before.get(code, 0) + n for code, n in sent.items()}

    def counted() -> dict[str, float] | None:
        now = http_numbers(live.url)
        return now if all(now.get(code) == n for code, n in expected.items()) else None

    now = h.eventually(counted)
    statuses = {k: v for k, v in now.items() if k.isdigit()}
    assert statuses == {**{k: v for k, v in before.items() if k.isdigit()}, **expected}
    assert now["count"] == sum(statuses.values()) == now["bucket+Inf"]
    assert now["count"] - before.get("count", 0) == sum(sent.values())
    assert now["sum"] > before.get("sum", 0.0)
    buckets = sorted(
        (float(k.removeprefix("bucket")), v) for k, v in now.items() if k.startswith("bucket")
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative

    # the 10 s window of /api/state and /servers: 5xx and 4xx shares, percentiles
    wsgi = app(state(live.url), "wsgi")["http"]
    win = wsgi["window"]
    assert win["errors_5xx"] > 0 and win["errors_4xx"] > 0 and win["responses"] >= 32
    assert 0 <= win["p50"] <= win["p95"] <= win["p99"]
    assert wsgi["statuses"]["500"] == expected["500"]

    def page_shows_errors() -> bool:
        page = httpx.get(live.url + "/servers", timeout=10).text
        shown = page.split('class="errors-5xx">', 1)[1].split("<", 1)[0]
        return shown.endswith("%") and float(shown[:-1]) > 0 and "latency p50" in page

    h.eventually(page_shows_errors)
    page = httpx.get(live.url + "/servers", timeout=10).text
    assert "wsgi: errors (% of responses)" in page and "wsgi: latency" in page
    assert f"500: {int(expected['500'])}" in page


def test_tasks_views_and_actions_need_the_token(live: Any, tmp_path: Any) -> None:
    flag = tmp_path / "fixed"
    with tasks.connect_sync(live.site.backend) as client:
        ok = client.queue_task("add", [2, 3])
        bad = client.queue_task("flaky", [str(flag)])
        assert client.wait_for_task(ok.id, timeout=15).result == 5
        assert client.wait_for_task(bad.id, timeout=15).status == tasks.TaskState.FAILURE

    def failed_counted() -> dict[Any, float] | None:
        m = metrics(live.url)
        failed = ("pulsar_tasks", (("queue", "default"), ("state", "FAILURE")))
        return m if m.get(failed, 0) >= 1 else None

    m = h.eventually(failed_counted)
    assert m[("pulsar_tasks", (("queue", "default"), ("state", "SUCCESS")))] >= 1
    assert ("pulsar_task_queue_depth", (("queue", "default"),)) in m
    listing = httpx.get(live.url + "/tasks", params={"status": "FAILURE"}, timeout=10)
    assert listing.status_code == 200 and f'data-id="{bad.id}"' in listing.text
    assert f'data-id="{ok.id}"' not in listing.text
    record = httpx.get(f"{live.url}/tasks/{bad.id}", timeout=10)
    assert "Traceback" in record.text and "ValueError" in record.text
    assert f"/tasks/{bad.id}/retry" in record.text
    done = httpx.get(f"{live.url}/tasks/{ok.id}", timeout=10)
    assert 'id="result">5<' in done.text
    # no token: refused (also on localhost, since one is set)
    r = httpx.post(f"{live.url}/tasks/{bad.id}/retry", timeout=10)
    assert r.status_code == 403, (r.headers, r.text)
    auth = {"Authorization": f"Bearer {h.TOKEN}", "Accept": "application/json"}
    # another site cannot drive it through the user's browser
    r = httpx.post(
        f"{live.url}/tasks/{bad.id}/retry",
        headers={**auth, "Origin": "http://evil.example"},
        timeout=10,
    )
    assert r.status_code == 403
    flag.write_text("ok")
    r = httpx.post(f"{live.url}/tasks/{bad.id}/retry", headers=auth, timeout=10)
    assert r.status_code == 200 and r.json()["ok"], r.text
    with tasks.connect_sync(live.site.backend) as client:
        assert client.wait_for_task(bad.id, timeout=15).result == "fixed"


def test_stop_a_worker_needs_the_token_and_it_is_replaced(live: Any) -> None:
    snap = h.eventually(lambda: (s := state(live.url))["connected"] and s)
    victim = app(snap, "wsgi")["workers"][0]["aid"]
    assert httpx.post(f"{live.url}/actors/{victim}/stop", timeout=10).status_code == 403
    r = httpx.post(
        f"{live.url}/actors/{victim}/stop",
        headers={"Authorization": f"Bearer {h.TOKEN}", "Accept": "application/json"},
        timeout=15,
    )
    assert r.status_code == 200 and r.json()["ok"], r.text

    def replaced() -> bool:
        workers = app(state(live.url), "wsgi")["workers"]
        return len(workers) == 2 and victim not in {w["aid"] for w in workers}

    h.eventually(replaced, timeout=10)


@pytest.mark.parametrize("bind", ["0.0.0.0:0", "192.0.2.1:8070", ":0"])
def test_remote_bind_without_token_is_refused(site: Any, bind: str) -> None:
    proc = h.spawn(["-m", "pulsar.apps.dashboard", "--attach", str(site.pidfile), "--bind", bind])
    assert proc.popen.wait(15) == 2
    proc.wait_for("refusing to listen on")
    assert "--token" in proc.output


def test_missing_attach_is_a_config_error() -> None:
    proc = h.spawn(["-m", "pulsar.apps.dashboard", "--bind", "127.0.0.1:0"])
    assert proc.popen.wait(15) == 2
    proc.wait_for("--attach PIDFILE|SOCKET is required")


def test_remote_bind_with_a_token_protects_pages(site: Any) -> None:
    proc = h.spawn(
        [
            "-m",
            "pulsar.apps.dashboard",
            "--attach",
            str(site.pidfile),
            "--bind",
            "0.0.0.0:0",
            "--interval",
            "0.3",
        ],
        env={"PULSAR_DASHBOARD_TOKEN": h.TOKEN},
    )
    try:
        port = proc.wait_for(r"dashboard: listening on \S+:(\d+)")[1]
        url = f"http://127.0.0.1:{port}"
        r = httpx.get(url + "/", timeout=10)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert httpx.get(url + "/metrics", timeout=10).status_code == 401
        ok = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {h.TOKEN}"}, timeout=10)
        assert ok.status_code == 200
        login = httpx.post(url + "/login", data={"token": h.TOKEN, "next": "/servers"}, timeout=10)
        assert login.status_code == 303 and login.headers["location"] == "/servers"
        assert "HttpOnly" in login.headers["set-cookie"]
        wrong = httpx.post(url + "/login", data={"token": "nope"}, timeout=10)
        assert wrong.status_code == 401
    finally:
        proc.stop()


def test_sigkilled_worker_shows_replaced(live: Any) -> None:
    import os

    with httpx.Client(base_url=f"http://{live.site.web}") as web:  # numbers for the victim too
        for path in ("/", "/missing") * 5:
            web.get(path)
    snap = h.eventually(lambda: (s := state(live.url))["connected"] and s)
    before = settled_http(live.url)
    snap = state(live.url)
    victim = app(snap, "wsgi")["workers"][1]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        a = app(state(live.url), "wsgi")
        return len(a["workers"]) == 2 and victim["aid"] not in {w["aid"] for w in a["workers"]}

    h.eventually(replaced, timeout=10)
    m = metrics(live.url)
    assert m[("pulsar_actor_crashes_total", (("app", "wsgi"),))] >= 1
    # the dead worker's responses and timings stay in the totals: nothing goes backwards
    assert http_numbers(live.url) == before


def test_beside_the_application_in_a_multiapp() -> None:
    proc = h.spawn(["beside_app.py"])
    try:
        address = proc.wait_for(r"dashboard: listening on (\S+)")[1]
        url = f"http://{address}"

        def both() -> dict[str, Any] | None:
            snap = state(url)
            apps = {a["app"]: a for a in snap.get("apps") or ()}
            ok = len(apps.get("web", {}).get("workers", ())) == 2 and "dashboard" in apps
            return snap if ok else None

        snap = h.eventually(both, timeout=15)
        assert snap["attach"] == "(this application)"
        assert httpx.get(url + "/tasks", timeout=10).status_code == 404  # no task queue here
        m = metrics(url)
        assert m[("pulsar_workers", (("app", "web"),))] == 2
    finally:
        proc.stop()


def test_beside_the_application_a_remote_bind_without_token_is_refused() -> None:
    proc = h.spawn(["beside_app.py", "--dashboard-bind", "0.0.0.0:0"])
    assert proc.popen.wait(15) == 2
    proc.wait_for("error: pulsar-dashboard: refusing to listen on 0.0.0.0:0")


def test_recycle_a_worker(live: Any) -> None:
    snap = h.eventually(lambda: (s := state(live.url))["connected"] and s)
    victim = app(snap, "wsgi")["workers"][0]["aid"]
    auth = {"Authorization": f"Bearer {h.TOKEN}", "Accept": "application/json"}
    r = httpx.post(f"{live.url}/actors/{victim}/recycle", headers=auth, timeout=15)
    assert r.status_code == 200 and r.json()["ok"], r.text

    def replaced() -> bool:
        workers = app(state(live.url), "wsgi")["workers"]
        return len(workers) == 2 and victim not in {w["aid"] for w in workers}

    h.eventually(replaced, timeout=10)
    r = httpx.post(f"{live.url}/actors/arbiter/stop", headers=auth, timeout=15)
    assert r.status_code == 404  # only workers are stopped from the dashboard


def test_the_application_exits_and_comes_back(tmp_path: Any) -> None:
    pidfile = tmp_path / "hello.pid"
    web = [
        "-m",
        "pulsar.apps.wsgi",
        "site_app:hello",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--pidfile",
        str(pidfile),
    ]
    first = h.spawn(web)
    dash = None
    try:
        first.wait_for(r"worker \w+ started")
        h.eventually(lambda: (tmp_path / "hello.pid.mailbox").exists())
        dash = h.attach(str(pidfile), "--interval", "0.2")
        url = "http://" + dash.wait_for(r"dashboard: listening on (\S+)")[1]
        h.eventually(lambda: state(url)["connected"])
        first.stop()
        gone = h.eventually(lambda: (s := state(url))["connected"] is False and s)
        assert gone["error"]
        assert metrics(url) == {("pulsar_up", ()): 0.0}
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and 'id="disconnected"' in page.text
        second = h.spawn(web)  # the same pid file: the dashboard attaches again by itself
        try:
            snap = h.eventually(lambda: (s := state(url))["connected"] and s, timeout=15)
            assert len(app(snap, "wsgi")["workers"]) == 1
        finally:
            second.stop()
    finally:
        first.stop()
        if dash is not None:
            dash.stop()


def test_task_record_progress_and_workflow_tree(live: Any) -> None:
    # jobs by name (as published by the site's worker): importing site_jobs here would declare
    # `add` in this process, where other packages' tests declare theirs
    add = [tasks.Signature("add", [1, 2]), tasks.Signature("add", [10])]
    with tasks.connect_sync(live.site.backend) as client:
        half = client.queue_task("halfway")
        flow = client.queue_workflow(tasks.chain(*add))
        assert client.wait_for_task(flow.id, timeout=15).result == 13
        assert client.wait_for_task(half.id, timeout=15).result == "done"
    h.eventually(lambda: state(live.url)["connected"])
    record = httpx.get(f"{live.url}/tasks/{half.id}", timeout=10).text
    assert '<progress max="1" value="0.5">' in record and "50%" in record
    assert "&quot;step&quot;: &quot;half&quot;" in record
    tree = httpx.get(f"{live.url}/tasks/{flow.id}", timeout=10).text
    assert 'id="workflow"' in tree and "<strong>chain</strong>" in tree
    assert tree.count('class="st st-SUCCESS"') >= 3  # the record and both steps
    assert httpx.get(f"{live.url}/tasks/nosuchtask", timeout=10).status_code == 404
    listed = httpx.get(f"{live.url}/tasks", params={"name": "halfway"}, timeout=10).text
    assert f'data-id="{half.id}"' in listed and f'data-id="{flow.id}"' not in listed
    assert 'id="runtimes">run time of the' in listed
