#!/usr/bin/env python3
"""HTTP req/s and p99: pulsar-wsgi (inline, thread pool) vs gunicorn, waitress, granian, uvicorn.

How it works
------------
The same hello-world application (the seed's, plus a ``POST`` that echoes its body) is served on
127.0.0.1 by each server in turn, each in its own process group (ended by PID/group at the end
of its turn, whatever happens):

* ``pulsar inline``: ``pulsar-wsgi benchapp:app --thread-workers 0`` (the callable on the loop);
* ``pulsar threads``: the same with the default thread pool (``--thread-workers 8``);
* ``gunicorn sync`` / ``gunicorn gthread`` (``--threads 8``);
* ``waitress`` (one process only: it has no worker processes);
* ``granian`` (``--interface wsgi``);
* ``uvicorn`` (``--loop uvloop --http httptools``) with the equivalent ASGI application;
* ``bare uvloop``: the ceiling reference, not a server (see ``BARE``): a minimal
  ``asyncio.Protocol`` on uvloop answering canned bytes, no parsing beyond finding the end of the
  head (a POST reads ``Content-Length`` bytes and echoes them). What no Python server on uvloop
  can beat; its ratio to gunicorn sync is printed per cell (``CEIL`` lines), so a 5x target
  that even it misses is known to be out of reach by construction.

Access logs are off everywhere but in the ``log`` cell. The load comes from
`wrk <https://github.com/wg/wrk>`_ (installed with ``apt-get install -y wrk`` when missing and
allowed), ``--connections`` connections for
``--seconds`` per cell after a one-second warm-up, in five cells:

* ``1 worker, keep-alive`` and ``2 workers, keep-alive``: ``GET /``;
* ``1 worker, Connection: close``: a new connection per request;
* ``1 worker, 64 KiB POST echo``: the body read through ``wsgi.input`` and sent back;
* ``1 worker, keep-alive, access log on`` (``log``): ``GET /`` with the access log of pulsar
  (both modes) and of uvicorn on, written to a file; its target is pulsar's req/s there over
  the same server's ``1 worker, keep-alive`` (access logs off) >= 0.85.

The 1-worker cells run pinned (``taskset``, when there are 2 cores or more): the server's
process group on cpu 0, wrk on cpu 1 (``--no-pin``: not pinned). Each server is checked to
answer the right bytes (GET and POST) before it is measured. With
``--rounds N`` everything is measured N times and the best req/s of each cell is kept (with its
p99) for the table, while each target that compares two measurements takes the median of the
rounds' paired ratios (every round measures both sides; see :meth:`Results.ratio`). The
table gives req/s, p50 and p99 latency, and the ratio to uvicorn; then the targets, per cell:
pulsar inline >= 1.0x uvicorn and >= 5x gunicorn sync, pulsar threads >= 2x gunicorn gthread,
pulsar inline p99 <= uvicorn's. Exit code 1 when a target is missed, 2 when the run
fails. SIGTERM/SIGHUP (``timeout``, a closed terminal) end the run like Ctrl-C does: the server
being measured and its whole process group are stopped first.

The peers live in their own virtual environment (``tools/bench/.venv-peers``, created with uv by
:class:`_common.PeerEnv`); nothing is installed into the workspace environment. Pulsar runs from
the workspace's interpreter.

Note: ``run.py`` imports this module under the name ``http`` (it shadows the standard library's
package of that name while the benchmark runs), so it must not import ``http.*``, ``urllib`` or
anything that does; the HTTP checks below use raw sockets.

    hatch run bench http [--seconds 5] [--rounds 1] [--connections 64] [--only pulsar,uvicorn]
                         [--cells ka1,ka2,close,post,log] [--no-peers] [--no-pin]
                         [--markdown] [--baseline REV]

``--baseline REV`` (issue 13's "no cell slower than today's main") runs pulsar-core and
pulsar-wsgi as they were at git revision ``REV`` as two more servers, ``pulsar inline @<sha>``
and ``pulsar threads @<sha>``, in the same run (their own venv,
``tools/bench/.venv-baseline-<sha>``, see :func:`baseline_python`), and adds one target per
cell and mode: today's req/s over the baseline's >= 1.0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    BenchError,
    PeerEnv,
    Target,
    baseline_python,
    free_port,
    machine_info,
    managed_process,
    render_table,
    wait_for_port,
)

__all__ = ["CELLS", "SERVERS", "main", "parse_wrk"]

#: requirement strings of the peers (installed into the peer venv only)
PEER_REQUIREMENTS = (
    "gunicorn>=22.0",
    "waitress>=3.0",
    "granian>=1.6",
    "uvicorn>=0.30",
    "httptools>=0.6",
    "uvloop>=0.19",
)

HELLO = b"Hello World!\n"
POST_SIZE = 64 * 1024

APP = '''
"""The benchmark application: the seed's hello world (WSGI and ASGI); POST echoes its body."""


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(
            "200 OK",
            [("Content-type", "application/octet-stream"), ("Content-Length", str(len(data)))],
        )
        return [data]
    data = b"Hello World!\\n"
    start_response("200 OK", [("Content-type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


async def asgi_app(scope, receive, send):
    assert scope["type"] == "http"
    if scope["method"] == "POST":
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        data = b"".join(chunks)
        content_type = b"application/octet-stream"
    else:
        data = b"Hello World!\\n"
        content_type = b"text/plain"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(data))],
        }
    )
    await send({"type": "http.response.body", "body": data})
'''

BARE = '''
"""The ceiling reference, not a server: a minimal asyncio.Protocol on uvloop that answers every
request with a canned hello world (no parsing beyond finding the end of the head and the
Content-Length; a POST gets its body back). ``python bare.py PORT WORKERS``: the first process
binds, forks WORKERS - 1 more, and all accept on the shared socket."""

import asyncio
import os
import socket
import sys

import uvloop

HELLO = b"Hello World!\\n"
HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: %s\\r\\nContent-Length: %d\\r\\n%s\\r\\n"
CLOSE = b"Connection: close\\r\\n"
GET_KA = HEAD % (b"text/plain", len(HELLO), b"") + HELLO
GET_CLOSE = HEAD % (b"text/plain", len(HELLO), CLOSE) + HELLO


class Bare(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
        self.need = -1  # body bytes still to come; -1: reading a head
        self.body = []
        self.close = False

    def data_received(self, data):
        if self.buf:
            data, self.buf = self.buf + data, b""
        while data:
            if self.need < 0:
                end = data.find(b"\\r\\n\\r\\n")
                if end < 0:
                    self.buf = data
                    return
                head = data[:end].lower()
                data = data[end + 4 :]
                self.close = b"\\r\\nconnection: close" in head
                at = head.find(b"\\r\\ncontent-length:")
                if at < 0:
                    self.transport.write(GET_CLOSE if self.close else GET_KA)
                    if self.close:
                        self.transport.close()
                        return
                    continue
                stop = head.find(b"\\r\\n", at + 2)
                self.need = int(head[at + 17 : stop if stop >= 0 else None])
                self.body = []
            take = data[: self.need]
            self.body.append(take)
            self.need -= len(take)
            data = data[len(take) :]
            if self.need == 0:
                self.need = -1
                body = b"".join(self.body)
                self.body = []
                extra = CLOSE if self.close else b""
                self.transport.write(
                    HEAD % (b"application/octet-stream", len(body), extra) + body
                )
                if self.close:
                    self.transport.close()
                    return


def serve(sock):
    async def main():
        server = await asyncio.get_running_loop().create_server(Bare, sock=sock, backlog=2048)
        await server.serve_forever()

    uvloop.run(main())


if __name__ == "__main__":
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.setblocking(False)
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    serve(sock)
'''

POST_LUA = f"""
wrk.method = "POST"
wrk.body = string.rep("x", {POST_SIZE})
wrk.headers["Content-Type"] = "application/octet-stream"
"""


# ------------------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """One server under test: ``argv(port, workers)`` is its command line (run in the app dir)."""

    name: str
    argv: Callable[[int, int], list[str]]
    peer: bool = True
    multi_worker: bool = True
    #: the command line with its access log on (None: not measured in the access-log cell)
    log_argv: Callable[[int, int], list[str]] | None = None


def _servers(peers: PeerEnv | None, baseline: tuple[str, str] | None = None) -> list[Server]:
    """The servers; ``baseline`` (label, python): pulsar's two modes again as run by that
    python (an older pulsar, see :func:`baseline_python`)."""
    py = sys.executable

    def pulsar(
        threads: int, access: bool = False, python: str | None = None
    ) -> Callable[[int, int], list[str]]:
        logs = ["--access-log", "--log-level", "info"] if access else [
            "--no-access-log", "--log-level", "warning"
        ]  # fmt: skip

        def argv(port: int, workers: int) -> list[str]:
            return [
                python or py, "-m", "pulsar.apps.wsgi", "benchapp:app",
                "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                "--thread-workers", str(threads), *logs,
            ]  # fmt: skip

        return argv

    def bare(port: int, workers: int) -> list[str]:
        return [py, "bare.py", str(port), str(workers)]

    servers = [
        Server("pulsar inline", pulsar(0), peer=False, log_argv=pulsar(0, True)),
        Server("pulsar threads", pulsar(8), peer=False, log_argv=pulsar(8, True)),
        Server(BARE_NAME, bare, peer=False),
    ]
    if baseline is not None:
        label, python = baseline
        servers[2:2] = [
            Server(f"pulsar inline {label}", pulsar(0, python=python), peer=False,
                   log_argv=pulsar(0, True, python)),
            Server(f"pulsar threads {label}", pulsar(8, python=python), peer=False,
                   log_argv=pulsar(8, True, python)),
        ]  # fmt: skip
    if peers is None:
        return servers

    def gunicorn(*extra: str) -> Callable[[int, int], list[str]]:
        def argv(port: int, workers: int) -> list[str]:
            return peers.command(
                "gunicorn", "benchapp:app", "--bind", f"127.0.0.1:{port}",
                "--workers", str(workers), "--log-level", "warning", *extra,
            )  # fmt: skip

        return argv

    def waitress(port: int, workers: int) -> list[str]:
        return peers.command(
            "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=8", "benchapp:app"
        )

    def granian(port: int, workers: int) -> list[str]:
        return peers.command(
            "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
            "benchapp:app",
        )  # fmt: skip

    def uvicorn(port: int, workers: int, access: bool = False) -> list[str]:
        logs = ["--access-log", "--log-level", "info"] if access else [
            "--no-access-log", "--log-level", "warning"
        ]  # fmt: skip
        return peers.command(
            "uvicorn", "benchapp:asgi_app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
            "--lifespan", "off", *logs,
        )  # fmt: skip

    def uvicorn_log(port: int, workers: int) -> list[str]:
        return uvicorn(port, workers, access=True)

    return [
        *servers,
        Server("gunicorn sync", gunicorn()),
        Server("gunicorn gthread", gunicorn("--worker-class", "gthread", "--threads", "8")),
        Server("waitress", waitress, multi_worker=False),
        Server("granian", granian),
        Server("uvicorn", uvicorn, log_argv=uvicorn_log),
    ]


#: the ceiling reference (see ``BARE``): not a server, an upper bound for any Python server
BARE_NAME = "bare uvloop"

SERVERS = (
    "pulsar inline",
    "pulsar threads",
    BARE_NAME,
    "gunicorn sync",
    "gunicorn gthread",
    "waitress",
    "granian",
    "uvicorn",
)


@dataclass(frozen=True)
class Cell:
    """One measurement setting."""

    key: str
    title: str
    workers: int
    wrk_args: tuple[str, ...] = ()
    post: bool = False
    #: the servers run with their access log on (written to a file), see ``log_argv``
    access_log: bool = False


CELLS = (
    Cell("ka1", "1 worker, keep-alive", 1),
    Cell("ka2", "2 workers, keep-alive", 2),
    Cell("close", "1 worker, Connection: close", 1, ("-H", "Connection: close")),
    Cell("post", "1 worker, 64 KiB POST echo", 1, post=True),
    Cell("log", "1 worker, keep-alive, access log on", 1, access_log=True),
)


# ----------------------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    """The ``wrk`` executable; installed from Debian (``apt-get install -y wrk``) if missing."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or (hasattr(os, "geteuid") and os.geteuid() != 0):
        raise BenchError("wrk is not installed (apt-get install wrk, brew install wrk)")
    print("installing wrk (apt-get install -y wrk) ...", flush=True)
    for step in ([apt, "install", "-y", "wrk"], [apt, "update"], [apt, "install", "-y", "wrk"]):
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        if step[1] == "install" and result.returncode == 0:
            break
    found = shutil.which("wrk")
    if not found:
        raise BenchError("could not install wrk with apt-get")
    return found


@dataclass
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int = 0
    detail: str = ""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Parse ``wrk --latency`` output: req/s, p50/p99 (ms), requests, errors (non-2xx/3xx and
    connect/write/timeout socket errors; read errors are the peer closing, expected with
    ``Connection: close``)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"cannot parse wrk output:\n{output}")
    errors = 0
    detail = []
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sock:
        connect, read, write, timeout = (int(x) for x in sock.groups())
        errors += connect + write + timeout
        if connect + read + write + timeout:
            detail.append(f"sock c{connect}/r{read}/w{write}/t{timeout}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
        detail.append(f"non-2xx {non2xx.group(1)}")
    return WrkResult(
        float(rps.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(total.group(1)),
        errors,
        ", ".join(detail),
    )


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """``argv`` run on ``cpu`` only (``taskset -c``; its children inherit it), or as is."""
    taskset = shutil.which("taskset")
    if cpu is None or taskset is None:
        return argv
    return [taskset, "-c", str(cpu), *argv]


def pin_cpus(workers: int, enabled: bool) -> tuple[int | None, int | None]:
    """(server cpu, wrk cpu) for a cell: with 1 worker on a machine of 2 cores or more, the
    server on cpu 0 and wrk on cpu 1 (each its own core: no migration noise); else none."""
    if not enabled or workers != 1 or (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        return None, None
    return 0, 1


def run_wrk(
    wrk: str,
    port: int,
    cell: Cell,
    *,
    seconds: float,
    connections: int,
    threads: int,
    lua: str,
    cpu: int | None = None,
) -> WrkResult:
    args = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s", "--latency",
        *cell.wrk_args,
    ]  # fmt: skip
    if cell.post:
        args += ["-s", lua]
    args.append(f"http://127.0.0.1:{port}/")
    args = pinned(args, cpu)
    result = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if result.returncode:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


# -------------------------------------------------------------------------------- raw checks


def _http(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a new connection (``Connection: close``): ``(status, body)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def check_server(port: int, timeout: float = 20.0) -> None:
    """Wait until the server answers GET with the hello world and echoes a 64 KiB POST."""
    get = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    body = bytes(range(256)) * (POST_SIZE // 256)
    post = (
        b"POST / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    end = time.monotonic() + timeout
    while True:
        try:
            answers = _http(port, get), _http(port, post)
        except OSError:
            answers = None
        if answers == ((200, HELLO), (200, body)):
            return
        if time.monotonic() > end:
            raise BenchError(f"127.0.0.1:{port} answered wrongly: {str(answers)[:200]}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------- run


@dataclass
class Results:
    """Best result per (cell key, server name), and every round's in order."""

    best: dict[tuple[str, str], WrkResult] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[WrkResult]] = field(default_factory=dict)

    def add(self, cell: str, server: str, result: WrkResult) -> None:
        old = self.best.get((cell, server))
        if old is None or result.rps > old.rps:
            self.best[(cell, server)] = result
        self.runs.setdefault((cell, server), []).append(result)

    def get(self, cell: str, server: str) -> WrkResult | None:
        return self.best.get((cell, server))

    def ratio(self, a: tuple[str, str], b: tuple[str, str]) -> tuple[float, str]:
        """req/s of ``a`` over ``b`` (each a (cell, server)) and how it was had: with two
        rounds or more, the median of the rounds' ratios (each round measures both: a
        neighbour's load that slows one round slows both sides of its ratio less than it
        skews two independent bests); else the bests' ratio."""
        ra, rb = self.runs.get(a, []), self.runs.get(b, [])
        if len(ra) >= 2 and len(ra) == len(rb):
            ratios = sorted(x.rps / y.rps for x, y in zip(ra, rb, strict=True) if y.rps)
            if ratios:
                mid = len(ratios) // 2
                value = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
                spread = ", ".join(f"{r:.2f}" for r in ratios)
                return value, f"median of {len(ratios)} paired rounds: {spread}"
        best_a, best_b = self.best.get(a), self.best.get(b)
        if best_a is None or best_b is None or not best_b.rps:
            return 0.0, ""
        return best_a.rps / best_b.rps, f"{best_a.rps:,.0f} vs {best_b.rps:,.0f} req/s"


@contextlib.contextmanager
def serving(
    server: Server,
    workers: int,
    appdir: Path,
    log: Path,
    *,
    access_log: bool = False,
    cpu: int | None = None,
) -> Iterator[int]:
    """Start ``server`` with ``workers`` on a free port (its whole process group is ended on
    exit) and yield the port once it answers correctly. With ``access_log`` the server runs
    its ``log_argv``; whatever it writes (its access lines too) goes to ``log``."""
    port = free_port()
    argv = server.log_argv if access_log and server.log_argv else server.argv
    with (
        open(log, "ab") as err,
        managed_process(
            pinned(argv(port, workers), cpu), cwd=appdir, stdout=err, stderr=err, grace=5.0
        ) as proc,
    ):
        try:
            wait_for_port(port, timeout=30)
            check_server(port)
        except BenchError as exc:
            if proc.poll() is not None:
                raise BenchError(f"{server.name} exited ({proc.returncode}); see {log}") from exc
            raise
        time.sleep(0.5 if workers > 1 else 0.1)  # every worker up (pre-fork peers)
        yield port


def measure(
    servers: Sequence[Server],
    cells: Sequence[Cell],
    *,
    seconds: float,
    rounds: int,
    connections: int,
    threads: int,
    wrk: str,
    appdir: Path,
    results: Results,
    progress: Callable[[str], None] = print,
    pin: bool = True,
) -> None:
    """Measure every (server, cell) ``rounds`` times into ``results`` (1-worker cells pinned:
    see :func:`pin_cpus`)."""
    lua = str(appdir / "post.lua")
    for rnd in range(rounds):
        for workers, access_log in sorted({(c.workers, c.access_log) for c in cells}):
            group = [c for c in cells if (c.workers, c.access_log) == (workers, access_log)]
            for server in servers:
                if workers > 1 and not server.multi_worker:
                    continue
                if access_log and server.log_argv is None:
                    continue
                log = appdir / f"{server.name.replace(' ', '-')}.log"
                server_cpu, wrk_cpu = pin_cpus(workers, pin)
                with serving(
                    server, workers, appdir, log, access_log=access_log, cpu=server_cpu
                ) as port:
                    for cell in group:
                        run_wrk(wrk, port, cell, seconds=1, connections=connections,
                                threads=threads, lua=lua, cpu=wrk_cpu)  # fmt: skip
                        result = run_wrk(
                            wrk, port, cell, seconds=seconds, connections=connections,
                            threads=threads, lua=lua, cpu=wrk_cpu,
                        )  # fmt: skip
                        results.add(cell.key, server.name, result)
                        progress(
                            f"  round {rnd + 1} {cell.key:<5} {server.name:<16} "
                            f"{result.rps:>10,.0f} req/s  p99 {result.p99_ms:7.2f} ms"
                            + (f"  errors {result.errors} ({result.detail})"
                               if result.errors else "")
                        )  # fmt: skip


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report(
    results: Results,
    servers: Sequence[str],
    cells: Sequence[Cell],
    *,
    markdown: bool,
    baseline: str | None = None,
) -> tuple[str, list[Target]]:
    """The table and the targets (with ``baseline``, the label of the older pulsar: each mode
    >= 1.0x its req/s in every cell)."""
    rows: list[Any] = []
    for cell in cells:
        rows.append(cell.title)
        base = results.get(cell.key, "uvicorn")
        for name in servers:
            r = results.get(cell.key, name)
            if r is None:
                if cell.access_log:
                    continue
                if name == "waitress" and cell.workers > 1:
                    rows.append([name, "(one process only)", "", "", "", ""])
                continue
            rows.append(
                [
                    name,
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.2f} ms",
                    f"{r.p99_ms:.2f} ms",
                    _ratio(r.rps, base.rps) if base else "-",
                    str(r.errors) if r.errors else "",
                ]
            )
    table = render_table(
        ["server", "req/s", "p50", "p99", "vs uvicorn", "errors"], rows, markdown=markdown
    )
    targets: list[Target] = []
    for cell in cells:
        inline = results.get(cell.key, "pulsar inline")
        threads = results.get(cell.key, "pulsar threads")
        uvicorn = results.get(cell.key, "uvicorn")
        sync = results.get(cell.key, "gunicorn sync")
        gthread = results.get(cell.key, "gunicorn gthread")
        tag = f"[{cell.key}]"
        if baseline is not None:  # issue 13: no cell slower than the older main
            for mode in ("pulsar inline", "pulsar threads"):
                new, old = results.get(cell.key, mode), results.get(cell.key, f"{mode} {baseline}")
                if new and old:
                    value, how = results.ratio((cell.key, mode), (cell.key, f"{mode} {baseline}"))
                    targets.append(
                        Target(f"{tag} {mode} / {mode} {baseline} req/s", value, 1.0, False, how)
                    )
        if cell.access_log:  # the access log's cost: on / off (the ka1 cell), >= 0.85
            for name in ("pulsar inline", "pulsar threads", "uvicorn"):
                on, off = results.get(cell.key, name), results.get("ka1", name)
                if on and off:
                    value, how = results.ratio((cell.key, name), ("ka1", name))
                    targets.append(
                        Target(f"{tag} {name} access log on / off req/s", value,
                               0.85 if name.startswith("pulsar") else 0.0, False, how)
                    )  # fmt: skip
            continue
        # issue 13 (keep-alive, 1 worker): inline >= 1.1x uvicorn, thread pool >= 4x gthread
        ka1 = cell.key == "ka1"
        key = cell.key
        if inline and uvicorn:
            value, how = results.ratio((key, "pulsar inline"), (key, "uvicorn"))
            targets.append(
                Target(f"{tag} pulsar inline / uvicorn req/s", value, 1.1 if ka1 else 1.0,
                       False, how)
            )  # fmt: skip
        if inline and sync:
            value, how = results.ratio((key, "pulsar inline"), (key, "gunicorn sync"))
            targets.append(
                Target(f"{tag} pulsar inline / gunicorn sync req/s", value, 5.0, False, how)
            )
        if threads and gthread:
            value, how = results.ratio((key, "pulsar threads"), (key, "gunicorn gthread"))
            targets.append(
                Target(f"{tag} pulsar threads / gunicorn gthread req/s", value,
                       4.0 if ka1 else 2.0, False, how)
            )  # fmt: skip
        if inline and uvicorn:
            targets.append(
                Target(
                    f"{tag} pulsar inline p99 / uvicorn p99",
                    inline.p99_ms / uvicorn.p99_ms,
                    1.0,
                    True,
                    f"{inline.p99_ms:.2f} ms vs {uvicorn.p99_ms:.2f} ms",
                )
            )
    return table, targets


def ceilings(results: Results, cells: Sequence[Cell]) -> list[str]:
    """One line per cell measured with the bare uvloop reference: its req/s over gunicorn
    sync's (the most any Python server on uvloop could reach in the 5x target) and pulsar
    inline's share of it. Informational: not a target."""
    lines = []
    for cell in cells:
        bare = results.get(cell.key, BARE_NAME)
        sync = results.get(cell.key, "gunicorn sync")
        inline = results.get(cell.key, "pulsar inline")
        if bare is None or sync is None:
            continue
        line = f"CEIL  [{cell.key}] {BARE_NAME} / gunicorn sync req/s: {bare.rps / sync.rps:.2f}x"
        if bare.rps / sync.rps < 5.0:
            line += " (< 5x: the 5x target is out of reach by construction in this cell)"
        if inline is not None:
            line += f"; pulsar inline = {inline.rps / bare.rps:.2f}x {BARE_NAME}"
        lines.append(line)
    return lines


def _exit_on_signal(signum: int, frame: Any) -> None:
    # the default action of SIGTERM ends Python without unwinding: the servers (each in a
    # session of its own) would outlive the run; raising runs managed_process's cleanup
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """``hatch run bench http [options]``; returns 0, 1 (a target missed) or 2 (failure)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    parser = argparse.ArgumentParser(prog="bench http", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per cell (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; keep the best per cell")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--only", default="", help="comma-separated server name prefixes")
    parser.add_argument("--cells", default="", help="comma-separated: ka1,ka2,close,post,log")
    parser.add_argument("--no-peers", action="store_true", help="pulsar only")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin 1-worker cells (server cpu 0, wrk 1)"
    )
    parser.add_argument("--markdown", action="store_true", help="a markdown table")
    parser.add_argument(
        "--baseline",
        default="",
        metavar="REV",
        help="also run pulsar-core + pulsar-wsgi of this git revision (e.g. an older main)",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    cells = [c for c in CELLS if not args.cells or c.key in args.cells.split(",")]
    try:
        wrk = ensure_wrk()
        peers: PeerEnv | None = None
        if not args.no_peers:
            print("peers: installing into tools/bench/.venv-peers (uv) ...", flush=True)
            peers = PeerEnv().install(*PEER_REQUIREMENTS)
        baseline: tuple[str, str] | None = None
        if args.baseline:
            print(f"baseline: pulsar at {args.baseline} (uv) ...", flush=True)
            baseline = baseline_python(args.baseline, ("pulsar-core", "pulsar-wsgi"))
        servers = _servers(peers, baseline)
        if args.only:
            wanted = [w.strip() for w in args.only.split(",") if w.strip()]
            servers = [s for s in servers if any(s.name.startswith(w) for w in wanted)]
        info = machine_info()
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        print(
            f"{info['date']}  {info['cpu']}  {info['nproc']} cores  {info['python']}  "
            f"{info['os']}  load {load[0]:.2f}"
        )
        print(
            f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s per cell, "
            f"{args.rounds} round(s), best kept"
            + ("" if args.no_pin else "; 1-worker cells pinned (server cpu 0, wrk cpu 1)")
            + "\n",
            flush=True,
        )
        results = Results()
        with tempfile.TemporaryDirectory(prefix="pulsar-bench-http-") as tmp:
            appdir = Path(tmp)
            (appdir / "benchapp.py").write_text(APP, encoding="utf-8")
            (appdir / "post.lua").write_text(POST_LUA, encoding="utf-8")
            (appdir / "bare.py").write_text(BARE, encoding="utf-8")
            measure(
                servers,
                cells,
                seconds=args.seconds,
                rounds=args.rounds,
                connections=args.connections,
                threads=args.threads,
                wrk=wrk,
                appdir=appdir,
                results=results,
                pin=not args.no_pin,
            )
    except BenchError as exc:
        print(f"bench http: {exc}", file=sys.stderr)
        return 2
    table, targets = report(
        results,
        [s.name for s in servers],
        cells,
        markdown=args.markdown,
        baseline=baseline[0] if baseline else None,
    )
    print()
    print(table)
    print()
    for target in targets:
        print(target)
    for line in ceilings(results, cells):
        print(line)
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
