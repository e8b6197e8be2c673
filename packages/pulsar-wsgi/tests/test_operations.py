"""Operations of ``pulsar-wsgi`` as a user runs them: real processes, real signals, real sockets.

HUP serves the code on disk now (the workers import the application after they start), unless
``--preload``; a HUP with code that does not import keeps the running workers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

APP = """
import os

VERSION = {version!r}


def app(environ, start_response):
    data = ("%s %d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.05)


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    """One request on a new connection (``Connection: close``): (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data
    return int(head.split()[1]), body


def write_app(path: Path, version: str) -> None:
    path.write_text(APP.format(version=version))
    # a stale .pyc is never used: the source looks newer than any bytecode written before
    later = time.time() + 2
    os.utime(path, (later, later))


class Server:
    def __init__(self, cwd: Path, *args: str) -> None:
        self.port = free_port()
        self.log = cwd / "server.log"
        self.out = open(self.log, "wb")  # noqa: SIM115 - closed by stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulsar.apps.wsgi",
                *args,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--no-access-log",
            ],
            cwd=cwd,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self) -> bytes:
        assert self.proc.poll() is None, self.output()
        status, body = get(self.port)
        assert status == 200, body
        return body

    def wait_serving(self) -> bytes:
        def answer() -> bytes | None:
            assert self.proc.poll() is None, self.output()
            try:
                return self.get()
            except OSError:
                return None

        return wait_for(answer, what="the server to answer")  # type: ignore[no-any-return]

    def workers(self) -> set[int]:
        try:
            return {c.pid for c in psutil.Process(self.proc.pid).children() if c.is_running()}
        except psutil.Error:
            return set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.proc.pid).children(recursive=True):
                    child.kill()
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode


@pytest.fixture
def server_factory(tmp_path: Path):
    servers: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(tmp_path, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def rolled(server: Server, old: set[int], workers: int = 2) -> Callable[[], bool]:
    def done() -> bool:
        pids = server.workers()
        return len(pids) == workers and not pids & old

    return done


def edit_and_hup(tmp_path: Path, server_factory, *flags: str):
    """Serve ``mod:app`` ("old") with two workers, edit it to "new code", send HUP and wait
    until both workers are replaced; returns the server."""
    write_app(tmp_path / "mod.py", "old")
    server = server_factory("mod:app", "--workers", "2", *flags, "--graceful-timeout", "5")
    assert server.wait_serving().startswith(b"old ")
    old = wait_for(lambda: server.workers() if len(server.workers()) == 2 else None)
    write_app(tmp_path / "mod.py", "new code")
    server.proc.send_signal(signal.SIGHUP)
    wait_for(rolled(server, old), what="the workers to be replaced")
    return server


def test_hup_serves_new_code(tmp_path: Path, server_factory) -> None:
    server = edit_and_hup(tmp_path, server_factory)
    for _ in range(10):
        assert server.get().startswith(b"new code "), server.output()
    assert server.stop() == 0, server.output()


def test_preload_keeps_the_arbiters_import(tmp_path: Path, server_factory) -> None:
    server = edit_and_hup(tmp_path, server_factory, "--preload")
    for _ in range(5):
        assert server.get().startswith(b"old "), server.output()
    assert server.stop() == 0, server.output()


def test_hup_with_broken_code_keeps_the_running_workers(tmp_path: Path, server_factory) -> None:
    write_app(tmp_path / "mod.py", "old")
    server = server_factory("mod:app", "--workers", "2", "--graceful-timeout", "5")
    assert server.wait_serving().startswith(b"old ")
    old = wait_for(lambda: server.workers() if len(server.workers()) == 2 else None)
    (tmp_path / "mod.py").write_text("def app(environ, start_response)\n")  # SyntaxError
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "the new code does not import" in server.output(), what="the error")
    assert "SyntaxError" in server.output()
    assert server.workers() == old
    assert server.get().startswith(b"old ")
    write_app(tmp_path / "mod.py", "fixed")
    server.proc.send_signal(signal.SIGHUP)
    wait_for(rolled(server, old), what="the workers to be replaced")
    assert server.get().startswith(b"fixed ")
    assert server.stop() == 0, server.output()


def test_wrong_module_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for spec, needle in [
        ("nosuchmodule:app", "No module named 'nosuchmodule'"),
        ("mod:nosuchapp", "has no attribute 'nosuchapp'"),
    ]:
        write_app(tmp_path / "mod.py", "v")
        result = subprocess.run(
            [sys.executable, "-m", "pulsar.apps.wsgi", spec],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: application: cannot load {spec!r}")
        assert needle in lines[0]


def test_module_raising_at_import_shows_the_users_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def helper():\n    return 1 / 0\n\n\nhelper()\n")
    result = subprocess.run(
        [sys.executable, "-m", "pulsar.apps.wsgi", "broken:app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert 'broken.py", line 2, in helper' in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "importlib" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: application: cannot load 'broken:app'")
    )


class Load:
    """Clients hammering the server: ``fresh`` ones open a new connection per request, the
    ``keep_alive`` ones reuse theirs (``http.client``, reconnecting only after a response that
    says ``Connection: close``). Every request that gets no complete 200 is a failure."""

    def __init__(self, port: int, fresh: int = 3, keep_alive: int = 2) -> None:
        import threading

        self.port = port
        self.stop_event = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.threads = [threading.Thread(target=self._fresh) for _ in range(fresh)] + [
            threading.Thread(target=self._keep_alive) for _ in range(keep_alive)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(30)

    def _fresh(self) -> None:
        while not self.stop_event.is_set():
            try:
                status, body = get(self.port)
                if status == 200 and body:
                    self.ok += 1
                else:
                    self.failed.append(f"fresh: {status} {body[:80]!r}")
            except (OSError, AssertionError) as exc:
                self.failed.append(f"fresh: {exc!r}")

    def _keep_alive(self) -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            while not self.stop_event.is_set():
                try:
                    conn.request("GET", "/")
                    response = conn.getresponse()
                    body = response.read()
                    if response.status == 200 and body:
                        self.ok += 1
                    else:
                        self.failed.append(f"keep-alive: {response.status}")
                except (OSError, http.client.HTTPException) as exc:
                    self.failed.append(f"keep-alive: {exc!r}")
                    conn.close()
        finally:
            conn.close()


@pytest.mark.parametrize("io", ["asyncio", "auto"])
def test_roll_loses_nothing_across_hup_and_ttou(tmp_path: Path, server_factory, io: str) -> None:
    write_app(tmp_path / "mod.py", "v1")
    server = server_factory(
        "mod:app", "--workers", "3", "--graceful-timeout", "10", "--thread-workers", "2", "--io", io
    )
    server.wait_serving()
    first = wait_for(lambda: server.workers() if len(server.workers()) == 3 else None)
    with Load(server.port) as load:
        wait_for(lambda: load.ok > 200, what="traffic")
        server.proc.send_signal(signal.SIGHUP)
        wait_for(rolled(server, first, 3), what="the first roll")
        served = load.ok
        wait_for(lambda: load.ok > served + 200, what="traffic after the first roll")
        second = server.workers()
        server.proc.send_signal(signal.SIGHUP)
        wait_for(rolled(server, second, 3), what="the second roll")
        served = load.ok
        wait_for(lambda: load.ok > served + 200, what="traffic after the second roll")
        server.proc.send_signal(signal.SIGTTOU)
        wait_for(lambda: len(server.workers()) == 2, what="one worker less")
        served = load.ok
        wait_for(lambda: load.ok > served + 200, what="traffic after TTOU")
    assert load.failed == [], (len(load.failed), load.ok, load.failed[:10], server.output()[-3000:])
    assert server.stop() == 0, server.output()


def test_reload_survives_a_syntax_error(tmp_path: Path, server_factory) -> None:
    write_app(tmp_path / "mod.py", "old")
    server = server_factory("mod:app", "--workers", "1", "--reload")
    assert server.wait_serving().startswith(b"old ")
    (tmp_path / "mod.py").write_text("def app(environ, start_response)\n    return []\n")
    wait_for(lambda: "does not load" in server.output(), what="the reload error")
    output = server.output()
    assert output.count("does not load") == 1
    block = output[output.index("does not load") :]
    assert 'mod.py", line 1' in block and "SyntaxError" in block
    assert "Traceback" not in block  # the error as Python prints it, nothing else
    for _ in range(3):
        assert server.get().startswith(b"old ")  # the last good workers keep serving
    assert server.proc.poll() is None
    write_app(tmp_path / "mod.py", "new code")
    wait_for(lambda: server.wait_serving().startswith(b"new code "), what="the fix to be served")
    assert server.stop() == 0, server.output()


def test_reload_survives_a_module_raising_at_import(tmp_path: Path, server_factory) -> None:
    write_app(tmp_path / "mod.py", "old")
    server = server_factory("mod:app", "--workers", "1", "--reload")
    assert server.wait_serving().startswith(b"old ")
    (tmp_path / "mod.py").write_text("import nosuchdependency\n")
    wait_for(lambda: "does not load" in server.output(), what="the reload error")
    assert "No module named 'nosuchdependency'" in server.output()
    assert server.get().startswith(b"old ")
    write_app(tmp_path / "mod.py", "new code")
    wait_for(lambda: server.wait_serving().startswith(b"new code "), what="the fix to be served")
    assert server.stop() == 0, server.output()


def test_failed_start_logs_the_exit_code_it_exits_with(tmp_path: Path) -> None:
    write_app(tmp_path / "mod.py", "v")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pulsar.apps.wsgi", "mod:app", "--bind", f"127.0.0.1:{port}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 4, result.stderr
    assert "Address already in use" in result.stderr
    assert "arbiter stopped (exit code 4)" in result.stderr


def test_ctrl_c_while_importing_is_one_line_and_130(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time\nprint('IMPORTING', flush=True)\ntime.sleep(60)\napp = None\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsar.apps.wsgi", "slow:app"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "IMPORTING"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1, err
    assert "interrupted" in err


def _caught_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigCgt")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_sigusr2_is_not_trapped(tmp_path: Path, server_factory) -> None:
    write_app(tmp_path / "mod.py", "v")
    server = server_factory("mod:app", "--workers", "1")
    server.wait_serving()
    caught = _caught_signals(server.proc.pid)
    assert caught & (1 << (signal.SIGHUP - 1))  # what the arbiter handles is trapped
    assert caught & (1 << (signal.SIGTTOU - 1))
    assert not caught & (1 << (signal.SIGUSR2 - 1))
    assert server.stop() == 0, server.output()


def test_banner_and_worker_lines(tmp_path: Path, server_factory) -> None:
    import pulsar

    write_app(tmp_path / "mod.py", "v")
    server = server_factory("mod:app", "--workers", "2", "--thread-workers", "3")
    server.wait_serving()
    pids = wait_for(lambda: server.workers() if len(server.workers()) == 2 else None)
    wait_for(lambda: server.output().count("started (pid") == 2, what="the worker lines")
    output = server.output()
    assert (
        f"pulsar {pulsar.__version__}: wsgi running on http://127.0.0.1:{server.port} "
        f"(2 workers x process, 3 threads each; arbiter pid {server.proc.pid})"
    ) in output
    assert "Press Ctrl-C to quit" not in output  # not a terminal
    for pid in pids:
        assert f"started (pid {pid})" in output
    assert server.stop() == 0
    output = server.output()
    for pid in pids:
        assert f"pid {pid}) exited: normal" in output
    assert "arbiter stopped (exit code 0)" in output


def test_banner_on_a_terminal_and_ctrl_c(tmp_path: Path) -> None:
    import pexpect

    write_app(tmp_path / "mod.py", "v")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "pulsar.apps.wsgi", "mod:app", "--bind", f"unix:{tmp_path}/s.sock", "-w", "1"],
        cwd=str(tmp_path),
        timeout=30,
        encoding="utf-8",
    )
    try:
        child.expect(f"wsgi running on unix:{tmp_path}/s.sock")
        child.expect("Press Ctrl-C to quit")
        child.expect("started \\(pid")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130, (child.exitstatus, child.signalstatus)


def test_log_files_and_logrotate(tmp_path: Path) -> None:
    """``--error-logfile``/``--access-logfile`` and the logrotate convention: after the files
    are moved, SIGUSR1 makes every process (the workers write the access lines) reopen them."""
    write_app(tmp_path / "mod.py", "v")
    port = free_port()
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pulsar.apps.wsgi",
            "mod:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--error-logfile",
            str(error_log),
            "--access-logfile",
            str(access_log),
            "--access-log-format",
            "%(p)s %(r)s %(s)s",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def answered() -> bool:
            assert proc.poll() is None
            try:
                return get(port)[0] == 200
            except OSError:
                return False

        wait_for(answered, what="the server")
        wait_for(lambda: error_log.read_text().count("started (pid") == 2, what="workers")
        worker_pids = {c.pid for c in psutil.Process(proc.pid).children()}

        def access_pids(path: Path) -> set[int]:
            if not path.exists():
                return set()
            return {int(line.split()[0].strip("<>")) for line in path.read_text().splitlines()}

        # until both workers wrote to the access log (new connections go to either)
        wait_for(lambda: get(port) and access_pids(access_log) == worker_pids, what="both")
        assert "GET / HTTP/1.1 200" in access_log.read_text()
        assert "running on http://127.0.0.1" in error_log.read_text()
        assert "GET / HTTP" not in error_log.read_text()
        # logrotate: move the files, then SIGUSR1
        error_log.rename(tmp_path / "error.log.1")
        access_log.rename(tmp_path / "access.log.1")
        proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: error_log.exists() and "reopened" in error_log.read_text(), what="usr1")
        wait_for(lambda: get(port) and access_pids(access_log) == worker_pids, what="reopen")
        moved = (tmp_path / "access.log.1").read_text()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert out == "" and err == ""  # everything went to the files
    assert (tmp_path / "access.log.1").read_text() == moved  # nothing written to the old one
    assert "arbiter stopped (exit code 0)" in error_log.read_text()


def test_access_logfile_dash_is_stdout(tmp_path: Path) -> None:
    write_app(tmp_path / "mod.py", "v")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pulsar.apps.wsgi",
            "mod:app",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "-",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:

        def answered() -> bool:
            assert proc.poll() is None
            try:
                return get(port, "/logged")[0] == 200
            except OSError:
                return False

        wait_for(answered, what="the server")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "GET /logged HTTP/1.1" in out
    assert "GET /logged" not in err
    assert "running on http://" in err


def test_module_raising_in_a_worker_shows_the_users_traceback(tmp_path: Path) -> None:
    """The arbiter's check imports fine, the worker's import raises: the worker's log has the
    user's traceback, the crash loop ends the server with the exit code it logs (3)."""
    (tmp_path / "picky.py").write_text(
        "import multiprocessing\n"
        "\n"
        "\n"
        "def check():\n"
        "    if multiprocessing.parent_process() is not None:\n"
        "        raise RuntimeError('no worker may import me')\n"
        "\n"
        "\n"
        "check()\n"
        "\n"
        "\n"
        "def app(environ, start_response):\n"
        "    return []\n"
    )
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pulsar.apps.wsgi", "picky:app", "--bind", "127.0.0.1:0"),
            *("--max-restarts", "1", "--restart-window", "60"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert 'picky.py", line 6, in check' in result.stderr
    assert "RuntimeError: no worker may import me" in result.stderr
    assert "arbiter stopped (exit code 3)" in result.stderr


def test_idle_keep_alive_connection_closed_between_requests_on_a_roll(
    tmp_path: Path, server_factory
) -> None:
    """A retiring worker does not wait ``graceful_timeout`` for an idle keep-alive connection:
    it closes it between requests (after a short linger for a request on its way)."""
    write_app(tmp_path / "mod.py", "v")
    server = server_factory("mod:app", "--workers", "1", "--graceful-timeout", "60")
    server.wait_serving()
    old = wait_for(lambda: server.workers() if len(server.workers()) == 1 else None)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b" " + str(next(iter(old))).encode()):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert b"Connection: close" not in data  # a keep-alive response: the connection stays
        started = time.monotonic()
        server.proc.send_signal(signal.SIGHUP)
        assert sock.recv(65536) == b""  # closed by the retiring worker, nothing else sent
        assert time.monotonic() - started < 20  # far less than graceful_timeout
    wait_for(rolled(server, old, 1), timeout=20, what="the old worker to exit")
    assert server.stop() == 0, server.output()
