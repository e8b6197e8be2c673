"""WSGIServer end to end: the seed's hello world run as a real process (arbiter + workers on
pulsar's SocketServer), the ``pulsar-wsgi`` launcher, and the access log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HELLO = """
from pulsar.apps import wsgi


def hello(environ, start_response):
    data = b"Hello World!\\n"
    start_response("200 OK", [("Content-type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


if __name__ == "__main__":
    wsgi.WSGIServer(callable=hello).start()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "server did not answer"
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.decode(errors="replace")


@pytest.fixture
def hello_module(tmp_path: Path) -> Path:
    path = tmp_path / "hello.py"
    path.write_text(HELLO)
    return path


def run(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


@pytest.mark.parametrize("thread_workers", ["0", "4"])
def test_hello_world_script(hello_module: Path, thread_workers: str) -> None:
    port = free_port()
    proc = run(
        [
            sys.executable,
            str(hello_module),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--thread-workers",
            thread_workers,
            "--graceful-timeout",
            "3",
        ],
        hello_module.parent,
    )
    try:
        response = wait_http(f"http://127.0.0.1:{port}/", proc)
        assert response.status_code == 200 and response.text == "Hello World!\n"
        with httpx.Client() as client:
            for _ in range(20):
                assert client.get(f"http://127.0.0.1:{port}/x").status_code == 200
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    assert '"GET /x HTTP/1.1" 200 13' in output  # the access log


def test_module_launcher(hello_module: Path) -> None:
    port = free_port()
    proc = run(
        [
            sys.executable,
            "-m",
            "pulsar.apps.wsgi",
            "hello:hello",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--no-access-log",
        ],
        hello_module.parent,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/", proc).text == "Hello World!\n"
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    assert "pulsar.wsgi.access" not in output


def test_launcher_bad_callable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pulsar.apps.wsgi", "nosuchmodule:app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot load 'nosuchmodule:app'" in result.stderr


def test_help_lists_wsgi_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pulsar.apps.wsgi", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    for flag in ("--thread-workers", "--max-body-size", "--header-timeout", "MODULE:CALLABLE"):
        assert flag in result.stdout


def test_console_script() -> None:
    import shutil

    script = shutil.which("pulsar-wsgi")
    if script is None:
        pytest.skip("the pulsar-wsgi script is not installed in this environment")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "MODULE:CALLABLE" in result.stdout


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 made with the openssl CLI."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not available")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("thread_workers", ["0", "8"])
def test_tls(hello_module: Path, thread_workers: str) -> None:
    """``--cert-file``/``--key-file``: HTTPS served by the worker processes; a plain-text client
    gets no HTTP answer and the server keeps serving."""
    import ssl

    cert, key = make_cert(hello_module.parent)
    port = free_port()
    proc = run(
        [
            sys.executable,
            str(hello_module),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--thread-workers",
            thread_workers,
            "--cert-file",
            str(cert),
            "--key-file",
            str(key),
            "--graceful-timeout",
            "3",
        ],
        hello_module.parent,
    )
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 20
        with httpx.Client(verify=context, timeout=5) as client:
            while True:
                assert proc.poll() is None
                try:
                    response = client.get(f"https://127.0.0.1:{port}/")
                    break
                except httpx.ConnectError as exc:
                    assert time.monotonic() < deadline, f"no TLS answer: {exc}"
                    time.sleep(0.1)
            assert response.status_code == 200 and response.text == "Hello World!\n"
            for _ in range(20):  # keep-alive over TLS
                assert client.post(f"https://127.0.0.1:{port}/", content=b"x" * 70_000).text == (
                    "Hello World!\n"
                )
            with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
                plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    answer = plain.recv(1024)
                except OSError:
                    answer = b""
                assert not answer.startswith(b"HTTP/1.1 200")
            assert client.get(f"https://localhost:{port}/").status_code == 200
        with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused
            httpx.get(f"https://127.0.0.1:{port}/", timeout=5)
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output


@pytest.mark.parametrize("thread_workers", ["0", "8"])
def test_unix_socket(hello_module: Path, thread_workers: str) -> None:
    """``--bind unix:/path``: served over a unix domain socket; the file is removed on stop."""
    path = hello_module.parent / "hello.sock"
    proc = run(
        [
            sys.executable,
            str(hello_module),
            "--bind",
            f"unix:{path}",
            "--workers",
            "2",
            "--thread-workers",
            thread_workers,
            "--graceful-timeout",
            "3",
        ],
        hello_module.parent,
    )
    transport = httpx.HTTPTransport(uds=str(path))
    try:
        deadline = time.monotonic() + 20
        with httpx.Client(transport=transport, timeout=5) as client:
            while True:
                assert proc.poll() is None
                try:
                    response = client.get("http://localhost/unix")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "no answer on the unix socket"
                    time.sleep(0.1)
            assert response.status_code == 200 and response.text == "Hello World!\n"
            for _ in range(20):
                assert client.get("http://localhost/").text == "Hello World!\n"
            assert client.post("http://localhost/", content=b"y" * 100_000).status_code == 200
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    assert not path.exists()
    assert '"GET /unix HTTP/1.1" 200 13' in output


SLOW = """
import time

from pulsar.apps import wsgi


def slow(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ["QUERY_STRING"]))
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


if __name__ == "__main__":
    wsgi.WSGIServer(callable=slow).start()
"""


def test_slow_response_outlives_keep_alive(tmp_path: Path) -> None:
    """``keep_alive`` is the idle time *between* requests: a response that takes longer (the
    client sends nothing meanwhile) is not cut by the socket layer's idle timer, which
    WSGIServer turns off (``WorkerServer(keep_alive=0)``), the HTTP adapter keeping the deadline."""
    path = tmp_path / "slow.py"
    path.write_text(SLOW)
    port = free_port()
    proc = run(
        [sys.executable, str(path), "--bind", f"127.0.0.1:{port}", "--keep-alive", "0.5"],
        tmp_path,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/", proc).status_code == 200
        with httpx.Client() as client:
            response = client.get(f"http://127.0.0.1:{port}/slow?1.5", timeout=10)
            assert response.status_code == 200 and response.text == "ok"
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output


ACTOR_APP = """
import threading

import pulsar


def app(environ, start_response):
    actor = pulsar.get_actor()
    body = f"{actor.name if actor else None} {threading.current_thread().name}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def test_thread_pool_runs_the_app_in_threads_bound_to_its_worker(tmp_path: Path) -> None:
    """The callable runs on the server's own pool (pulsar-wsgi-N threads, not the actor's
    ThreadPoolExecutor), and pulsar.get_actor() is the worker there."""
    (tmp_path / "actorapp.py").write_text(ACTOR_APP)
    port = free_port()
    proc = run(
        [sys.executable, "-m", "pulsar.apps.wsgi", "actorapp:app", "--bind",
         f"127.0.0.1:{port}", "--workers", "1", "--thread-workers", "3"],
        tmp_path,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc)
        with httpx.Client() as client:
            seen = {client.get(f"http://127.0.0.1:{port}/").text for _ in range(30)}
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
    names = {line.split()[0] for line in seen}
    threads = {line.split()[1] for line in seen}
    assert names == {"wsgi-worker"}, seen
    assert all(t.startswith("pulsar-wsgi-") for t in threads), seen


ROUTES = """
from pulsar.apps import wsgi


def app(environ, start_response):
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("failed on purpose")
    start_response("200 OK", [("Content-Length", "3")])
    return [b"ok\\n"]


if __name__ == "__main__":
    wsgi.WSGIServer(callable=app).start()
"""


def arbiter_info(pidfile: Path) -> dict:  # type: ignore[type-arg]
    """The arbiter's ``info`` (every worker's gathered), asked as an authenticated guest."""
    import asyncio

    import pulsar

    mailbox = Path(f"{pidfile}.mailbox").read_text().strip().splitlines()[0]

    async def ask() -> dict:  # type: ignore[type-arg]
        async with await pulsar.connect(mailbox, name="test-guest", timeout=10) as client:
            return await client.send("arbiter", "info")  # type: ignore[no-any-return]

    return asyncio.run(asyncio.wait_for(ask(), 15))


@pytest.mark.parametrize(
    ("thread_workers", "concurrency"), [("0", "process"), ("4", "process"), ("4", "thread")]
)
def test_worker_info_has_statuses_and_latency(
    tmp_path: Path, thread_workers: str, concurrency: str
) -> None:
    """Each worker's ``info`` carries its responses by status and its latency histogram; the
    sums over the workers are the traffic sent (thread workers share the application object,
    not their counters)."""
    (tmp_path / "routes.py").write_text(ROUTES)
    port = free_port()
    pidfile = tmp_path / "app.pid"
    args = ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--pidfile", str(pidfile)]
    args += ["--thread-workers", thread_workers, "--graceful-timeout", "3", "--no-access-log"]
    args += ["--concurrency", concurrency]
    proc = run([sys.executable, "routes.py", *args], tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc)  # one 200
        for _ in range(30):  # new connections: both workers get some
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(4):
                assert client.get("/missing").status_code == 404
            for _ in range(3):
                assert client.get("/fail").status_code == 500
        deadline = time.monotonic() + 10
        while True:
            info = arbiter_info(pidfile)
            workers = info["monitors"]["wsgi"]["workers"]
            stats = [w["wsgi"] for w in workers if "wsgi" in w]
            statuses: dict[int, int] = {}
            for s in stats:
                for code, n in s["statuses"].items():
                    statuses[code] = statuses.get(code, 0) + n
            if statuses == {200: 31, 404: 4, 500: 3} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert statuses == {200: 31, 404: 4, 500: 3}
        assert len(stats) == 2
        for s in stats:
            assert s["mode"] == ("threads" if thread_workers != "0" else "inline")
            latency = s["latency"]
            assert latency["count"] == sum(s["statuses"].values())
            assert s["total_connections"] <= 40
            assert latency["buckets"][-1] <= latency["count"] and latency["sum"] >= 0
            assert len(latency["buckets"]) == len(latency["le"])
        assert sum(s["latency"]["count"] for s in stats) == 38
        # each worker's own: the socket layer's request counts agree worker by worker
        for w in workers:
            assert w["server"]["requests"] == sum(w["wsgi"]["statuses"].values())
    finally:
        output = stop(proc)
    assert proc.returncode == 0, output
