#!/usr/bin/env python3
"""JSON-RPC calls/s: pulsar-rpc on pulsar's WSGI server vs jsonrpcserver behind gunicorn.

How it works
------------
The same trivial method, ``add(a, b)``, is served side by side on 127.0.0.1, each server in its
own process group with ``--workers`` worker processes:

* ``pulsar``: :class:`pulsar.apps.rpc.RpcServer` running a :class:`~pulsar.apps.rpc.JSONRPC`
  handler with a plain ``rpc_add`` (and ``pulsar async``: the same as ``async def``, on the
  worker's loop);
* ``jsonrpcserver + gunicorn sync`` / ``gthread``: a WSGI function calling jsonrpcserver's
  ``dispatch`` (its ``@method`` ``add``), under gunicorn's default sync workers (one request per
  connection: no keep-alive) and under its threaded workers (keep-alive, ``--threads 4``).

The peers live in a separate virtual environment (``tools/bench/.venv-peers``, created with uv
by :class:`_common.PeerEnv`); nothing is installed into the workspace environment, and the peers
run only as separate processes. ``--no-peers`` measures pulsar alone.

One client process (uvloop when available) keeps ``--connections`` HTTP/1.1 connections busy,
one request in flight on each (a new connection when the server closes it), for ``--seconds``:
first single calls (one request object per POST), then batches of ``--batch`` calls per POST.
The rate is calls per second (a batch counts its calls). Every server is checked to answer the
right result before it is timed; measurements are interleaved over ``--rounds`` and the best
round is kept. Target: pulsar at least 2x the best peer, for single calls and for batches; the
exit code is 1 when a target is missed, 2 when the run fails.

    hatch run bench rpc [--workers 2] [--seconds 2] [--rounds 3] [--connections 32] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    BenchError,
    Deadline,
    PeerEnv,
    Target,
    fmt_rate,
    free_port,
    machine_info,
    managed_process,
    ratio,
    render_table,
    wait_for_port,
)

__all__ = ["main", "measure", "serve"]

#: requirement strings of the peers (installed into the peer venv only)
PEER_REQUIREMENTS = ("jsonrpcserver>=5.0", "gunicorn>=22.0")

PEER_APP = '''
"""jsonrpcserver as a WSGI application (run by gunicorn)."""
from jsonrpcserver import Success, dispatch, method


@method
def add(a, b):
    return Success(a + b)


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode()
    response = dispatch(body)
    if not response:
        start_response("204 No Content", [])
        return []
    data = response.encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
'''


# ------------------------------------------------------------------------------------- servers


def _unshadow() -> None:
    """Take this directory off ``sys.path``: it holds benchmarks named like standard modules
    (``http.py``) that would shadow them for httpx and friends in the server process."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    module = sys.modules.get("http")
    if module is not None and os.path.dirname(os.path.abspath(module.__file__ or "")) == here:
        del sys.modules["http"]


def serve(kind: str, port: int, workers: int) -> int:
    """Run pulsar's server ``kind`` (``pulsar`` / ``pulsar-async``) until SIGTERM (a child)."""
    _unshadow()
    from pulsar.apps import rpc

    class Bench(rpc.JSONRPC):
        def rpc_add(self, request: Any, a: Any, b: Any) -> Any:
            return a + b

    class AsyncBench(rpc.JSONRPC):
        async def rpc_add(self, request: Any, a: Any, b: Any) -> Any:
            return a + b

    handler = AsyncBench() if kind == "pulsar-async" else Bench()
    app = rpc.RpcServer(
        callable=handler,
        name="rpcbench",
        bind=f"127.0.0.1:{port}",
        workers=workers,
        log_level="warning",
    )
    return int(app.start([], exit=False))


# -------------------------------------------------------------------------------------- client


def _request(body: bytes) -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def payload(batch: int) -> bytes:
    """A single call (``batch`` 0) or a batch of ``batch`` calls to ``add``."""
    if batch <= 0:
        return json.dumps({"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}).encode()
    calls = [{"jsonrpc": "2.0", "method": "add", "params": [i, 2], "id": i} for i in range(batch)]
    return json.dumps(calls).encode()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[bytes, bool]:
    """One request/response; returns the body and whether the server closes the connection."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        raise BenchError(f"unexpected response: {head[:80]!r}")
    return await reader.readexactly(length), close


async def check(port: int, batch: int) -> None:
    """One call must return the right results (BenchError otherwise)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body, _ = await _exchange(reader, writer, _request(payload(batch)))
    finally:
        writer.close()
    data = json.loads(body)
    if batch <= 0:
        ok = data.get("result") == 3
    else:
        ok = sorted(r.get("result") for r in data) == [i + 2 for i in range(batch)]
    if not ok:
        raise BenchError(f"port {port}: wrong answer {body[:200]!r}")


async def measure(port: int, *, batch: int, connections: int, seconds: float) -> float:
    """Calls per second over ``connections`` busy connections for ``seconds``."""
    request = _request(payload(batch))
    per_request = max(batch, 1)
    counter = [0]
    running = [True]

    async def connection() -> None:
        while running[0]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while running[0]:
                    _, close = await _exchange(reader, writer, request)
                    counter[0] += 1
                    if close:
                        break
            finally:
                writer.close()

    tasks = [asyncio.ensure_future(connection()) for _ in range(connections)]
    try:
        await asyncio.sleep(min(0.5, seconds / 2))  # warm up
        for task in tasks:
            if task.done():
                task.result()  # raise what stopped it
        start_count, start = counter[0], time.perf_counter()
        await asyncio.sleep(seconds)
        count, elapsed = counter[0] - start_count, time.perf_counter() - start
    finally:
        running[0] = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return count * per_request / elapsed


def _client_loop() -> Any:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


# ---------------------------------------------------------------------------------------- main

LABELS = {
    "pulsar": "pulsar-rpc (plain method)",
    "pulsar-async": "pulsar-rpc (async method)",
    "gunicorn-sync": "jsonrpcserver + gunicorn sync",
    "gunicorn-gthread": "jsonrpcserver + gunicorn gthread",
}


def _start_servers(
    stack: contextlib.ExitStack, args: argparse.Namespace, tmp: Path
) -> dict[str, int]:
    ports: dict[str, int] = {}
    here = os.path.abspath(__file__)
    for kind in ("pulsar", "pulsar-async"):
        ports[kind] = free_port()
        stack.enter_context(
            managed_process(
                [sys.executable, here, "--serve", kind, str(ports[kind]), str(args.workers)],
                grace=5.0,
            )
        )
    if not args.no_peers:
        peers = stack.enter_context(PeerEnv())
        print("installing the peers into the peer venv (once)...", file=sys.stderr, flush=True)
        peers.install(*PEER_REQUIREMENTS)
        (tmp / "peer_app.py").write_text(PEER_APP, encoding="utf-8")
        for kind, extra in (
            ("gunicorn-sync", []),
            ("gunicorn-gthread", ["--worker-class", "gthread", "--threads", "4"]),
        ):
            ports[kind] = free_port()
            stack.enter_context(
                peers.popen(
                    "gunicorn",
                    "--workers",
                    str(args.workers),
                    "--bind",
                    f"127.0.0.1:{ports[kind]}",
                    "--chdir",
                    str(tmp),
                    "--log-level",
                    "warning",
                    "--backlog",
                    "2048",
                    *extra,
                    "peer_app:app",
                    grace=5.0,
                )
            )
    return ports


def run(args: argparse.Namespace) -> int:
    deadline = Deadline(args.budget)
    modes = [("single calls", 0), (f"batches of {args.batch}", args.batch)]
    best: dict[tuple[str, int], float] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pulsar-rpc-bench-")))
        ports = _start_servers(stack, args, tmp)
        for port in ports.values():
            wait_for_port(port, timeout=min(30.0, deadline.remaining()))
        loop = _client_loop()
        try:
            for port in ports.values():
                for _, batch in modes:
                    loop.run_until_complete(asyncio.wait_for(check(port, batch), 10))
            for rnd in range(args.rounds):
                for label, batch in modes:
                    for kind, port in ports.items():
                        deadline.check(f"round {rnd + 1}, {kind}, {label}")
                        rate = loop.run_until_complete(
                            asyncio.wait_for(
                                measure(
                                    port,
                                    batch=batch,
                                    connections=args.connections,
                                    seconds=args.seconds,
                                ),
                                args.seconds + 30,
                            )
                        )
                        best[kind, batch] = max(best.get((kind, batch), 0.0), rate)
                        if args.verbose:
                            print(f"  round {rnd + 1} {label:<16} {kind:<17} {fmt_rate(rate)}")
        finally:
            loop.close()
    kinds = list(ports)
    peers = [k for k in kinds if k.startswith("gunicorn")]
    info = machine_info()
    print(
        f"\nJSON-RPC add(a, b): calls/s, {args.workers} worker processes per server, "
        f"{args.connections} connections, best of {args.rounds} rounds x {args.seconds:g}s"
    )
    print(f"{info['date']} | {info['cpu']} | {info['nproc']} CPUs | {info['python']}\n")
    headers = ["server"]
    for label, _ in modes:
        headers += [label, "vs best peer"]
    rows = []
    for kind in kinds:
        row = [LABELS[kind]]
        for _, batch in modes:
            peer = max((best[p, batch] for p in peers), default=0.0)
            row += [fmt_rate(best[kind, batch]), ratio(best[kind, batch], peer) if peer else "-"]
        rows.append(row)
    print(render_table(headers, rows, markdown=args.markdown))
    targets = []
    for label, batch in modes:
        peer = max((best[p, batch] for p in peers), default=0.0)
        if peer:
            targets.append(
                Target(f"pulsar-rpc / best peer, {label}", best["pulsar", batch] / peer, 2.0, False)
            )
    print()
    for target in targets:
        print(target)
    return 0 if all(t.ok for t in targets) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``hatch run bench rpc [args]``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100, help="calls per batch")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    parser.add_argument("--no-peers", action="store_true", help="measure pulsar-rpc alone")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every round")
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "W"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve[0], int(args.serve[1]), int(args.serve[2]))
    if min(args.workers, args.rounds, args.connections, args.batch) < 1 or args.seconds <= 0:
        print("rpc bench: counts must be positive", file=sys.stderr)
        return 2
    try:
        return run(args)
    except BenchError as exc:
        print(f"rpc bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
