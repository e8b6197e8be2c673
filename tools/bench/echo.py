#!/usr/bin/env python3
"""TCP echo: pulsar SocketServer (1 worker) round trips per second vs bare asyncio and uvloop.

How it works
------------
Four servers run side by side on 127.0.0.1, each in its own process (group) and with the same
:class:`EchoProtocol`: a bare ``loop.create_server`` echo server on the stock asyncio loop, the
same on uvloop, and ``pulsar.apps.socket.SocketServer`` with one worker on each loop
(``--io asyncio|uvloop``; the arbiter binds, the worker accepts on the shared socket). One client,
in this process on uvloop (stock asyncio without it), opens ``--connections`` connections to a
server and plays ping-pong on each (``--size`` bytes, the next message once the echo is back) for
``--seconds``; the rate is round trips per second over all connections.

The machine may be noisy, so the servers are measured in interleaved ``--rounds`` (each round
measures every server once) and the best round of each is kept. Target: pulsar at least 0.8x the
bare server on the same loop; the exit code is 1 when a target is missed. Every server process
group is ended before the run returns, and ``--budget`` bounds the whole run.

    hatch run bench echo [--seconds 2] [--rounds 3] [--connections 32] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    BenchError,
    Deadline,
    Target,
    fmt_rate,
    free_port,
    machine_info,
    managed_process,
    ratio,
    render_table,
    wait_for_port,
)

__all__ = ["EchoProtocol", "main"]

SERVERS = {
    "asyncio": ("bare asyncio", "asyncio"),
    "uvloop": ("bare uvloop", "uvloop"),
    "pulsar-asyncio": ("pulsar SocketServer", "asyncio"),
    "pulsar-uvloop": ("pulsar SocketServer", "uvloop"),
}


class EchoProtocol(asyncio.Protocol):
    """Write back whatever arrives (the protocol of every server)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


# ------------------------------------------------------------------------------------- servers


def serve(kind: str, port: int) -> int:
    """Run server ``kind`` on 127.0.0.1:``port`` until SIGTERM (in a child process)."""
    if kind.startswith("pulsar-"):
        from pulsar.apps.socket import SocketServer

        app = SocketServer(
            callable=EchoProtocol,
            name="echobench",
            bind=f"127.0.0.1:{port}",
            workers=1,
            io=kind.split("-", 1)[1],
            log_level="warning",
        )
        return int(app.start([], exit=False))

    async def bare() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(EchoProtocol, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    if kind == "uvloop":
        import uvloop

        uvloop.run(bare())
    else:
        asyncio.run(bare())
    return 0


# -------------------------------------------------------------------------------------- client


class _PingPong(asyncio.Protocol):
    def __init__(self, payload: bytes, counter: list[int]) -> None:
        self.payload = payload
        self.size = len(payload)
        self.counter = counter
        self.pending = 0
        self.transport: Any = None
        self.running = True

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def start(self) -> None:
        self.pending = self.size
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.pending -= len(data)
        if self.pending <= 0:
            self.counter[0] += 1
            if self.running:
                self.start()


async def measure(port: int, *, connections: int, size: int, seconds: float) -> float:
    """Round trips per second over ``connections`` ping-pong connections for ``seconds``."""
    loop = asyncio.get_running_loop()
    counter = [0]
    payload = b"x" * size
    protos: list[_PingPong] = []
    try:
        for _ in range(connections):
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _PingPong(payload, counter), "127.0.0.1", port),
                10,
            )
            protos.append(proto)
        for proto in protos:  # warm up: every connection served once
            proto.start()
        warm_until = time.monotonic() + min(0.5, seconds / 2)
        while time.monotonic() < warm_until or counter[0] < connections:
            await asyncio.sleep(0.05)
            if time.monotonic() > warm_until + 10:
                raise BenchError(f"port {port}: the echo server does not answer")
        start_count, start = counter[0], time.perf_counter()
        await asyncio.sleep(seconds)
        count, elapsed = counter[0] - start_count, time.perf_counter() - start
        return count / elapsed
    finally:
        for proto in protos:
            proto.running = False
            if proto.transport is not None:
                proto.transport.close()


def _client_loop() -> Any:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


# ---------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    deadline = Deadline(args.budget)
    kinds = [k for k in SERVERS if k in args.servers]
    ports = {kind: free_port() for kind in kinds}
    best: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        for kind in kinds:
            stack.enter_context(
                managed_process(
                    [sys.executable, os.path.abspath(__file__), "--serve", kind, str(ports[kind])],
                    grace=5.0,
                )
            )
        for kind in kinds:
            wait_for_port(ports[kind], timeout=min(20.0, deadline.remaining()))
        loop = _client_loop()
        try:
            for rnd in range(args.rounds):
                for kind in kinds:
                    deadline.check(f"round {rnd + 1}, {kind}")
                    rate = loop.run_until_complete(
                        asyncio.wait_for(
                            measure(
                                ports[kind],
                                connections=args.connections,
                                size=args.size,
                                seconds=args.seconds,
                            ),
                            args.seconds + 30,
                        )
                    )
                    best[kind] = max(best.get(kind, 0.0), rate)
                    if args.verbose:
                        print(f"  round {rnd + 1} {kind:<15} {fmt_rate(rate)}", flush=True)
        finally:
            loop.close()
    info = machine_info()
    print(
        f"TCP echo, {args.connections} connections ping-pong, {args.size}-byte messages, "
        f"best of {args.rounds} rounds x {args.seconds:g}s; client on "
        f"{'uvloop' if 'uvloop' in sys.modules else 'asyncio'}"
    )
    print(f"{info['date']} | {info['cpu']} | {info['nproc']} CPUs | {info['python']}\n")
    rows = []
    for kind in kinds:
        label, loop_name = SERVERS[kind]
        bare = best.get(loop_name, 0.0)
        rows.append(
            [label, loop_name, fmt_rate(best[kind]), ratio(best[kind], bare) if bare else "-"]
        )
    print(
        render_table(
            ["server", "loop", "round trips/s", "vs bare, same loop"], rows, markdown=args.markdown
        )
    )
    targets = [
        Target(
            f"pulsar SocketServer / bare {loop_name} echo",
            best[f"pulsar-{loop_name}"] / best[loop_name],
            0.8,
            False,
        )
        for loop_name in ("asyncio", "uvloop")
        if loop_name in best and f"pulsar-{loop_name}" in best
    ]
    print()
    for target in targets:
        print(target)
    return 0 if all(t.ok for t in targets) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``hatch run bench echo [args]``)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--budget", type=float, default=180.0, help="seconds for the whole run")
    parser.add_argument(
        "--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS), metavar="SERVER"
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every round")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve[0], int(args.serve[1]))
    try:
        return run(args)
    except BenchError as exc:
        print(f"echo bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
