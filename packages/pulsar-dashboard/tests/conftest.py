"""Fixtures of the pulsar-dashboard tests: one real application (a WSGI server with 2 worker
processes and a TaskQueue on SQLite) and one dashboard attached to it, for the session."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import dash_helpers as h  # noqa: E402

if sys.platform == "win32":  # the dashboard attaches through the unix mailbox socket
    collect_ignore = ["test_live.py", "test_browser.py"]


@dataclass
class Site:
    pidfile: Path
    backend: str
    web: str  # host:port of the WSGI app
    proc: h.Proc


@dataclass
class Live:
    site: Site
    url: str  # the dashboard's base URL
    proc: h.Proc


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The application, started as a subprocess with a pid file."""
    tmp = tmp_path_factory.mktemp("site")
    pidfile = tmp / "site.pid"
    backend = f"sqlite:///{tmp / 'tasks.db'}"
    proc = h.spawn(["site_app.py", "--backend", backend, "--pidfile", str(pidfile)])
    try:
        web = proc.wait_for(r"LISTENING (\S+)")[1]
        proc.wait_for(r"tasks: worker \w+ started")
        h.eventually(lambda: Path(f"{pidfile}.mailbox").exists())
        yield Site(pidfile, backend, web, proc)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def live(site: Site) -> Iterator[Live]:
    """``pulsar-dashboard --attach`` of the site, on a free port, with a token, reading every
    0.3 s."""
    proc = h.attach(site.pidfile, "--interval", "0.3", env={"PULSAR_DASHBOARD_TOKEN": h.TOKEN})
    try:
        address = proc.wait_for(r"dashboard: listening on (\S+)")[1]
        yield Live(site, f"http://{address}", proc)
    finally:
        proc.stop()
