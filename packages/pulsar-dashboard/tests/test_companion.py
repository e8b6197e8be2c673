"""``--dashboard`` / ``--metrics`` on any pulsar application (pulsar-core's ``dashboard`` and
``metrics`` settings, served through this package's ``pulsar.companions`` entry point): real
processes, real sockets, signals sent to the process group as systemd does."""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import dash_helpers as h
import httpx
import psutil
import pytest
from dash_helpers import metrics, state
from site_app import hello

import pulsar
from pulsar.apps import wsgi
from pulsar.apps.dashboard import DashboardServer
from pulsar.apps.dashboard._companion import companions

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

LISTENING = r"{name}: listening on (\S+)"
GROUP = "pulsar.companions"  # the entry point group pulsar-core looks in


def pulsar_wsgi(*args: str, env: dict[str, str] | None = None) -> h.Proc:
    """The ``pulsar-wsgi`` console script of this environment, serving ``site_app:hello``."""
    script = Path(sys.executable).with_name("pulsar-wsgi")
    return h.spawn([str(script), "site_app:hello", "--bind", "127.0.0.1:0", *args], env=env)


def apps_of(url: str) -> dict[str, dict[str, Any]]:
    return {a["app"]: a for a in state(url).get("apps") or ()}


def tree(proc: h.Proc) -> list[psutil.Process]:
    """The process and its descendants (the arbiter and every actor's process)."""
    top = psutil.Process(proc.popen.pid)
    return [top, *top.children(recursive=True)]


def alive(processes: list[psutil.Process]) -> list[str]:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {' '.join(p.cmdline())}")
        except psutil.NoSuchProcess:
            pass
    return left


def test_the_entry_point_is_declared() -> None:
    (point,) = entry_points(group=GROUP, name="dashboard")
    assert point.load() is companions


def companion(app: wsgi.WSGIServer, setting: str) -> DashboardServer:
    """What pulsar-core gets from the entry point for ``app`` (nothing is bound)."""
    (server,) = companions(setting, app.cfg.get(setting), apps=[app], label=setting)
    return server


def test_pulsar_wsgi_dashboard_shows_the_app_and_stops_with_its_process_group() -> None:
    proc = pulsar_wsgi("--workers", "2", "--dashboard", "127.0.0.1:0")
    try:
        url = "http://" + proc.wait_for(LISTENING.format(name="dashboard"))[1]

        def ready() -> dict[str, dict[str, Any]] | None:
            apps = apps_of(url)
            return apps if len(apps.get("wsgi", {}).get("workers", ())) == 2 else None

        apps = h.eventually(ready, timeout=15)
        assert set(apps) == {"wsgi", "dashboard"}  # one dashboard, beside the application
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for worker in apps["wsgi"]["workers"]:
            assert f'data-aid="{worker["aid"]}"' in page.text
        m = metrics(url)
        assert m[("pulsar_workers", (("app", "wsgi"),))] == 2
        assert m[("pulsar_up", ())] == 1
        processes = tree(proc)
        workers = [w["pid"] for a in ("wsgi", "dashboard") for w in apps_of(url)[a]["workers"]]
        assert len(workers) == 3  # 2 wsgi workers, the dashboard's, all children of the arbiter
        assert set(workers) <= {p.pid for p in processes}
        os.killpg(proc.popen.pid, signal.SIGTERM)  # as systemd stops a service
        assert proc.popen.wait(30) == 0
        h.eventually(lambda: not alive(processes), timeout=10)
    finally:
        proc.stop()


def test_metrics_serves_only_metrics() -> None:
    proc = pulsar_wsgi("--workers", "2", "--metrics", "127.0.0.1:0")
    try:
        url = "http://" + proc.wait_for(LISTENING.format(name="metrics"))[1]
        m = h.eventually(
            lambda: (x := metrics(url)).get(("pulsar_workers", (("app", "wsgi"),))) == 2 and x,
            timeout=15,
        )
        assert ("pulsar_workers", (("app", "dashboard"),)) not in m  # no dashboard here
        for path in ("/", "/api/state", "/servers", "/static/dashboard.js", "/login"):
            assert httpx.get(url + path, timeout=10).status_code == 404, path
        assert httpx.post(url + "/metrics", timeout=10).status_code == 404
    finally:
        proc.stop()


def test_dashboard_and_metrics_together_one_each() -> None:
    proc = pulsar_wsgi("--dashboard", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
    try:
        dash = "http://" + proc.wait_for(LISTENING.format(name="dashboard"))[1]
        exporter = "http://" + proc.wait_for(LISTENING.format(name="metrics"))[1]
        apps = h.eventually(lambda: (a := apps_of(dash)).get("metrics") and a, timeout=15)
        assert set(apps) == {"wsgi", "dashboard", "metrics"}
        assert metrics(exporter)[("pulsar_workers", (("app", "dashboard"),))] == 1
    finally:
        proc.stop()


def test_python_form_dashboard_address() -> None:
    proc = h.spawn(["companion_app.py", "wsgi", "127.0.0.1:0"])
    try:
        url = "http://" + proc.wait_for(LISTENING.format(name="dashboard"))[1]
        apps = h.eventually(lambda: (a := apps_of(url)).get("wsgi", {}).get("workers") and a)
        assert set(apps) == {"wsgi", "dashboard"}
        assert httpx.get(url + "/", timeout=10).status_code == 200
    finally:
        proc.stop()


def test_python_form_dashboard_true_is_127_0_0_1_8070() -> None:
    server = companion(wsgi.WSGIServer(callable=hello, dashboard=True), "dashboard")
    assert isinstance(server, DashboardServer) and server.name == "dashboard"
    assert list(server.cfg.get("bind")) == ["127.0.0.1:8070"]
    assert server.cfg.get("workers") == 1 and not server.wsgi_callable.metrics_only
    exporter = companion(wsgi.WSGIServer(callable=hello, metrics=True), "metrics")
    assert exporter.name == "metrics" and list(exporter.cfg.get("bind")) == ["127.0.0.1:9090"]
    assert exporter.wsgi_callable.metrics_only


def test_the_companion_takes_the_environment_and_the_global_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSAR_DASHBOARD_TOKEN", h.TOKEN)
    monkeypatch.setenv("PULSAR_DASHBOARD_INTERVAL", "0.5")
    app = wsgi.WSGIServer(callable=hello, dashboard="0.0.0.0:0", log_level="debug", workers=3)
    server = companion(app, "dashboard")
    assert server.cfg.get("dashboard_token") == h.TOKEN
    assert server.cfg.get("dashboard_interval") == 0.5
    assert server.cfg.get("log_level") == "debug"  # a global setting the user set
    assert server.cfg.get("workers") == 1  # not the application's own
    monkeypatch.setenv("PULSAR_DASHBOARD_INTERVAL", "soon")
    with pytest.raises(pulsar.ConfigError, match=r"PULSAR_DASHBOARD_INTERVAL: invalid value"):
        companion(app, "dashboard")


@pytest.mark.parametrize("kind", ["socket", "tasks", "multi"])
def test_any_application(kind: str, tmp_path: Path) -> None:
    backend = [f"sqlite:///{tmp_path / 'tasks.db'}"] if kind != "socket" else []
    proc = h.spawn(["companion_app.py", kind, *backend, "--dashboard", "127.0.0.1:0"])
    expected = {"socket": {"socketserver"}, "tasks": {"tasks"}, "multi": {"web", "tasks"}}[kind]
    try:
        url = "http://" + proc.wait_for(LISTENING.format(name="dashboard"))[1]

        def ready() -> dict[str, dict[str, Any]] | None:
            apps = apps_of(url)
            return apps if all(apps.get(a, {}).get("workers") for a in expected) else None

        apps = h.eventually(ready, timeout=20)
        assert set(apps) == {*expected, "dashboard"}  # one dashboard per arbiter
        assert len(apps["dashboard"]["workers"]) == 1
        if kind == "multi":
            assert len(apps["web"]["workers"]) == 2
        processes = tree(proc)
        os.killpg(proc.popen.pid, signal.SIGTERM)
        assert proc.popen.wait(30) == 0
        h.eventually(lambda: not alive(processes), timeout=10)
    finally:
        proc.stop()


def test_applications_started_in_a_running_arbiter_share_one_dashboard() -> None:
    proc = h.spawn(["companion_app.py", "running", "127.0.0.1:0"])
    try:
        url = "http://" + proc.wait_for(LISTENING.format(name="dashboard"))[1]
        apps = h.eventually(lambda: (a := apps_of(url)).get("two", {}).get("workers") and a)
        assert set(apps) == {"one", "two", "dashboard"}
        assert proc.output.count("dashboard: listening on") == 1
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--dashboard", "0.0.0.0:0"], {}, "error: --dashboard: refusing to listen on 0.0.0.0:0"),
        (["--metrics", ":0"], {}, "error: --metrics: refusing to listen on 0.0.0.0:0"),
        ([], {"PULSAR_DASHBOARD": "0.0.0.0:0"}, "error: PULSAR_DASHBOARD: refusing to listen"),
    ],
)
def test_a_remote_address_without_token_is_refused(
    args: list[str], env: dict[str, str], message: str
) -> None:
    proc = pulsar_wsgi(*args, env=env)
    assert proc.popen.wait(15) == 2
    proc.wait_for(message)
    assert "PULSAR_DASHBOARD_TOKEN" in proc.output
    assert "listening" not in proc.output  # nothing started


def test_a_remote_address_with_a_token_protects_metrics() -> None:
    proc = pulsar_wsgi("--metrics", "0.0.0.0:0", env={"PULSAR_DASHBOARD_TOKEN": h.TOKEN})
    try:
        port = proc.wait_for(r"metrics: listening on \S+:(\d+)")[1]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/metrics", timeout=10).status_code == 401
        m = metrics(url, Authorization=f"Bearer {h.TOKEN}")
        assert ("pulsar_workers", (("app", "wsgi"),)) in m
    finally:
        proc.stop()


def test_a_second_dashboard_is_refused() -> None:
    proc = h.spawn(["-m", "pulsar.apps.dashboard", "--attach", "x.pid", "--dashboard"])
    assert proc.popen.wait(15) == 2
    proc.wait_for("error: --dashboard: this application is a dashboard already")


def test_missing_package_is_one_error_line(tmp_path: Path) -> None:
    """pulsar-dashboard not installed: an interpreter that sees this environment without it
    (``python -S`` and a copy of site-packages without pulsar-dashboard's metadata and path)."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = tmp_path / "site-packages"
    site.mkdir()
    for entry in purelib.iterdir():
        if "pulsar_dashboard" not in entry.name:
            (site / entry.name).symlink_to(entry)
    boot = "import site, sys; site.addsitedir(sys.argv.pop(1)); import runpy; "
    boot += "runpy.run_module('pulsar.apps.wsgi', run_name='__main__')"
    proc = h.spawn(["-S", "-c", boot, str(site), "site_app:hello", "--dashboard"])
    assert proc.popen.wait(30) == 2, proc.output
    lines = proc.output.strip().splitlines()
    assert lines == [
        "error: --dashboard needs pulsar-dashboard, which is not installed: "
        "pip install pulsar-dashboard"
    ]


def test_the_server_pickles_for_spawned_workers() -> None:
    """A worker started with spawn or forkserver gets the application pickled: the dashboard's
    lock and source stay behind, its options travel."""
    import pickle

    server = companion(wsgi.WSGIServer(callable=hello, metrics=True), "metrics")
    copy = pickle.loads(pickle.dumps(server))
    assert copy.wsgi_callable.metrics_only and copy.name == "metrics"
    assert list(copy.cfg.get("bind")) == ["127.0.0.1:9090"]


def test_a_spawned_dashboard_worker() -> None:
    """The spawn start method pickles the DashboardServer to its worker (it could not: the
    dashboard's lock)."""
    proc = h.spawn(["beside_app.py", "--dashboard-start-method", "spawn"])
    try:
        url = "http://" + proc.wait_for(LISTENING.format(name="dashboard"))[1]
        m = h.eventually(
            lambda: (x := metrics(url)).get(("pulsar_workers", (("app", "web"),))) == 2 and x,
            timeout=20,
        )
        assert m[("pulsar_workers", (("app", "dashboard"),))] == 1
    finally:
        proc.stop()


def test_metrics_beside_an_attached_dashboard(site: Any) -> None:
    """``pulsar-dashboard --attach app.pid --metrics ADDRESS``: the exporter reads the attached
    application, as the dashboard does."""
    proc = h.attach(str(site.pidfile), "--metrics", "127.0.0.1:0")
    try:
        exporter = "http://" + proc.wait_for(LISTENING.format(name="metrics"))[1]
        m = h.eventually(
            lambda: (x := metrics(exporter)).get(("pulsar_workers", (("app", "wsgi"),))) == 2 and x,
            timeout=20,
        )
        assert m[("pulsar_workers", (("app", "tasks"),))] == 1  # the attached site's
        assert httpx.get(exporter + "/", timeout=10).status_code == 404
    finally:
        proc.stop()
