"""The Flask example runs for real: ``app.py`` as a pulsar-wsgi process on port 0 with two
worker processes, requested over real sockets with httpx (HTML, a form POST, JSON in and out,
404), then stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("flask")

HERE = os.path.dirname(os.path.abspath(__file__))
LISTENING = re.compile(r"wsgi: listening on (\S+)")


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(HERE, "app.py"),
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--graceful-timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines: list[str] = []
    bound = threading.Event()
    address: list[str] = []

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = LISTENING.search(line)
            if match and not address:
                address.append(match.group(1))
                bound.set()
        bound.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert bound.wait(30) and address, "".join(lines)
        base = f"http://{address[0]}"
        deadline = time.monotonic() + 30
        while True:  # the arbiter binds before the workers start
            assert proc.poll() is None, "".join(lines)
            try:
                httpx.get(base + "/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.05)
        yield base
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_html_page(url: str) -> None:
    response = httpx.get(url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Flask on pulsar-wsgi</h1>" in response.text
    assert 'action="/greet"' in response.text


def test_form_post(url: str) -> None:
    response = httpx.post(url + "/greet", data={"name": "Ada <3", "lang": "en"})
    assert response.status_code == 200
    assert "<p>Hello Ada &lt;3 (en)!</p>" in response.text
    assert httpx.post(url + "/greet", data={"lang": "en"}).status_code == 400


def test_json_api(url: str) -> None:
    with httpx.Client(base_url=url) as client:  # keep-alive across the calls
        items = client.get("/api/items")
        assert items.status_code == 200
        assert items.headers["content-type"] == "application/json"
        assert [i["name"] for i in items.json()][:2] == ["actor", "monitor"]
        assert client.get("/api/items/2").json() == {"id": 2, "name": "monitor", "price": 2.25}
        missing = client.get("/api/items/999")
        assert missing.status_code == 404 and missing.json() == {"error": "not found", "id": 999}
        created = client.post("/api/items", json={"name": "arbiter", "price": 3})
        assert created.status_code == 201
        assert created.json()["name"] == "arbiter"
        assert created.headers["location"] == f"/api/items/{created.json()['id']}"
        assert client.post("/api/items", content=b"not json").status_code == 400
        assert client.get("/nowhere").status_code == 404


def test_environ_from_pulsar(url: str) -> None:
    info = httpx.get(url + "/api/info").json()
    assert info["server"].startswith("pulsar")
    assert info["multithread"] is True and info["multiprocess"] is True
    assert info["url_scheme"] == "http" and info["remote_addr"] == "127.0.0.1"
    pids = {httpx.get(url + "/api/info").json()["pid"] for _ in range(30)}  # new connections
    assert pids  # served by the worker processes, not the test
    assert os.getpid() not in pids


def test_large_form(url: str) -> None:
    """A body bigger than one socket read streams through ``wsgi.input`` into Flask."""
    response = httpx.post(url + "/greet", data={"name": "n" * 200_000})
    assert response.status_code == 200
    assert response.text.count("n" * 1000) >= 1
