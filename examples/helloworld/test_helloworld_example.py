"""The hello-world example runs for real: ``hello.py`` (the seed's program as written: its
headers are a tuple of tuples; only the module-level ``return`` removed) as a process on port 0
(the arbiter and its workers), requested over real sockets with httpx, inline and on the thread
pool, then stopped with SIGTERM: exit code 0 and no process of its tree left behind.

    python examples/helloworld/hello.py                       # http://127.0.0.1:8060/
    python examples/helloworld/hello.py --bind 127.0.0.1:0 --workers 4 --thread-workers 0
    python examples/helloworld/hello.py --help                # every setting
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
LISTENING = re.compile(r"wsgi: listening on (\S+)")


class Server:
    """``hello.py`` with ``args`` in a subprocess; its output is drained by a thread (so a busy
    access log never blocks it) and the bound address read from the arbiter's log line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "hello.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.lines: list[str] = []
        self._bound = threading.Event()
        self.address = ""
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and not self.address:
                self.address = match.group(1)
                self._bound.set()
        self._bound.set()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_listening(self, timeout: float = 30) -> str:
        assert self._bound.wait(timeout) and self.address, f"never listened:\n{self.output}"
        return f"http://{self.address}"

    def tree(self) -> list[psutil.Process]:
        """The server process and its descendants (the worker processes)."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            for p in self.tree()[1:]:
                p.kill()
            self.proc.kill()
            self.proc.wait()


def _wait_for_workers(url: str, server: Server, timeout: float = 30) -> None:
    """The arbiter binds before its workers start: wait for the first answer."""
    deadline = time.monotonic() + timeout
    while True:
        assert server.proc.poll() is None, server.output
        try:
            httpx.get(url + "/", timeout=2)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"no answer:\n{server.output}"
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "processes"),
    [
        pytest.param(["--workers", "2", "--thread-workers", "0"], 3, id="inline"),
        pytest.param(["--workers", "2"], 3, id="thread-pool"),
        pytest.param(["--workers", "1", "--concurrency", "thread"], 1, id="thread-worker"),
    ],
)
def test_hello_world(args: list[str], processes: int) -> None:
    server = Server("--bind", "127.0.0.1:0", "--graceful-timeout", "5", *args)
    try:
        url = server.wait_listening()
        _wait_for_workers(url, server)
        with httpx.Client(base_url=url) as client:
            for path in ("/", "/any/path?x=1"):
                response = client.get(path)
                assert response.status_code == 200
                assert response.content == b"Hello World!\n"
                assert response.headers["content-type"] == "text/plain"
                assert response.headers["content-length"] == "13"
                assert response.headers["server"].startswith("pulsar")
                assert "date" in response.headers
            assert response.http_version == "HTTP/1.1"
            for _ in range(50):  # keep-alive: one connection, many requests
                assert client.get("/").content == b"Hello World!\n"
            head = client.head("/")
            assert head.status_code == 200 and head.content == b""
            posted = client.post("/", content=b"x" * 100_000)  # a body the app never reads
            assert posted.status_code == 200
            assert client.get("/", headers={"Connection": "close"}).status_code == 200
        deadline = time.monotonic() + 20  # every worker process is up (the arbiter + workers)
        while len(tree := server.tree()) < processes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tree) >= processes, tree
        assert server.stop() == 0, server.output
    finally:
        server.kill()
    psutil.wait_procs(tree, timeout=10)
    left = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left after SIGTERM: {left}"
    assert '"GET /any/path?x=1 HTTP/1.1" 200 13' in server.output  # the access log


def test_hello_is_the_seed_program() -> None:
    """The seed's text: a tuple of headers, started under ``if __name__ == '__main__':``."""
    with open(os.path.join(HERE, "hello.py")) as f:
        source = f.read()
    assert "    response_headers = (\n        ('Content-type','text/plain'),\n" in source
    assert "if __name__ == '__main__':\n    wsgi.WSGIServer(callable=hello).start()\n" in source
    assert "return wsgi" not in source


def test_default_address_and_help() -> None:
    """Without ``--bind`` it serves 127.0.0.1:8060 (checked through ``--help``, which lists every
    core and wsgi setting without binding anything)."""
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "hello.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--bind", "--workers", "--concurrency", "--thread-workers", "--keep-alive"):
        assert flag in result.stdout
    assert "127.0.0.1:8060" in result.stdout
