#!/usr/bin/env python3
"""Actor messaging: pulsar round trips and throughput vs raw Pipe and asyncio socket baselines.

How it works
------------
For each event loop kind (``--io``, default ``auto`` then ``asyncio``) a fresh process runs an
arbiter on that loop with two process actors A and B (one arbiter per process, as in
production), and measures side by side:

* baselines, with no pulsar code on the path, forked before the arbiter starts: a
  ``multiprocessing.Pipe`` echo process (blocking ``send``/``recv``); bare asyncio unix-socket
  echo servers on the same loop kind, with 4-byte length-prefixed frames, one echoing raw bytes
  and one unpickling each request and pickling a reply (tuples shaped like pulsar's envelope) -
  that one is the fair baseline, called ``raw`` below; and a bare asyncio relay in front of
  another pickle echo server (client -> relay -> server: pulsar's star topology without pulsar,
  the relay unpickling each envelope to route it as the arbiter does). Their clients run in the
  arbiter's process, the asyncio ones on the arbiter's loop;
* pulsar: ``ping`` round trips from A to the arbiter, from the arbiter to A and from A to B
  (through the arbiter), acked ``ping`` requests from A to B pipelined with ``--window``
  requests in flight, and fire-and-forget casts from A to B followed by one acked request
  (messages on one connection keep their order, so when it returns all casts arrived; B's count
  is checked).

The machine may be noisy, so the measurements are interleaved: latency in ``--chunks`` slices
(each slice times every path in turn), throughput in ``--rounds`` rounds (each round runs every
path once; the best round of each path is kept). Latency is the p50/p99 of ``--pings``
sequential round trips timed one by one after a warm-up, with every process pinned to one CPU
(``--pin``): on a virtual machine a wake-up on another, idle CPU costs tens of microseconds at
random and would drown the software cost being compared (``--no-pin`` to see it). Throughput
uses every CPU; its ``CPU/msg`` column is the CPU time all processes of a path spent per message
(from ``/proc/<pid>/schedstat`` and ``time.process_time``), which noise barely moves.

Actors A and B talk on a direct link (:mod:`pulsar._links`, opened after their first
messages); A and a third actor C are kept on the arbiter route (the star) for comparison.

Targets (issue 15): acked A-to-B throughput at least 0.8x the raw pipelined echo; the actor to
actor round trip p50 within 2x the raw one, actor to arbiter within 1.6x; fire-and-forget A to B
not slower than before the links (through the arbiter, measured in the same run: >= 0.95x).
The exit code is 1 when a target is missed. ``--profile DIR`` then runs each pulsar path once
more under cProfile (arbiter, A and B) and prints where the time goes.

Only unix sockets are used (the baselines' and the arbiter's private mailbox). Every process
started is ended before the run returns (the actors and baseline servers also exit on their own
when their parent dies) and a watchdog (``--budget`` seconds) ends a run that hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    Latency,
    Target,
    Throughput,
    fmt_cpu,
    fmt_rate,
    machine_info,
    pipelined,
    process_cpu,
    profile_summary,
    ratio,
    reap_mp_children,
    render_table,
    stop_mp_process,
)

import pulsar

__all__ = ["main"]

_LINUX = sys.platform.startswith("linux")
_CTX: Any = multiprocessing.get_context("fork" if _LINUX else "spawn")
_HEADER = struct.Struct("!I")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_SENDER = "a1b2c3d4e5f6"  # a 12-character aid, as pulsar's
_EMPTY_ARGS = pickle.dumps(((), {}), _PROTOCOL)
_PONG = pickle.dumps("pong", _PROTOCOL)
_RAW_PAYLOAD = pickle.dumps((1, 0, _SENDER, "arbiter", "ping", True, _EMPTY_ARGS), _PROTOCOL)
_WARMUP = 300

#: (key, label) of the latency rows, then of the throughput rows, in table order
LATENCY_ROWS = [
    ("pipe", "multiprocessing.Pipe echo"),
    ("echo_bytes", "asyncio unix echo, bytes"),
    ("echo_pickle", "asyncio unix echo, pickle (raw)"),
    ("relay", "asyncio unix relay, pickle (star)"),
    ("actor_arbiter", "pulsar ping actor -> arbiter"),
    ("arbiter_actor", "pulsar ping arbiter -> actor"),
    ("actor_actor", "pulsar ping actor -> actor (direct link)"),
    ("actor_actor_star", "pulsar ping actor -> actor (via arbiter)"),
]
THROUGHPUT_ROWS = [
    ("pipe", "multiprocessing.Pipe echo"),
    ("echo_bytes", "asyncio unix echo, bytes"),
    ("echo_pickle", "asyncio unix echo, pickle (raw)"),
    ("relay", "asyncio unix relay, pickle (star)"),
    ("acked", "pulsar acked A -> B (direct link)"),
    ("acked_star", "pulsar acked A -> C (via arbiter)"),
    ("cast", "pulsar fire-and-forget A -> B (link)"),
    ("cast_star", "pulsar fire-and-forget A -> C (arbiter)"),
]


def _request(i: int) -> tuple[Any, ...]:
    """A request tuple shaped like pulsar's envelope ``(kind, id, sender, target, command,
    flag, body)``."""
    return (1, i, _SENDER, "arbiter", "ping", True, _EMPTY_ARGS)


def _reply(env: tuple[Any, ...]) -> tuple[Any, ...]:
    return (2, env[1], env[3], env[2], env[4], True, _PONG)


# ================================================================================================
# baseline: multiprocessing.Pipe
# ================================================================================================


def _pipe_echo(conn: Connection) -> None:
    """Child: answer every request tuple until ``None`` or EOF (the parent died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            env = conn.recv()
        except (EOFError, OSError):
            break
        if env is None:
            break
        conn.send(_reply(env))


class PipeEcho:
    """A ``multiprocessing.Pipe`` to an echo process (blocking calls)."""

    def __init__(self) -> None:
        self.conn, child = _CTX.Pipe()
        self.proc = _CTX.Process(target=_pipe_echo, args=(child,), name="bench-pipe", daemon=True)
        self.proc.start()
        child.close()

    def samples(self, n: int) -> list[int]:
        """``n`` sequential round trips, in nanoseconds."""
        conn, clock, out = self.conn, time.perf_counter_ns, []
        for i in range(n):
            start = clock()
            conn.send(_request(i))
            conn.recv()
            out.append(clock() - start)
        return out

    def seconds(self, total: int, window: int) -> float:
        """``total`` round trips with ``window`` in flight; elapsed seconds."""
        conn = self.conn
        start = time.perf_counter()
        sent = 0
        for _ in range(min(window, total)):
            conn.send(_request(sent))
            sent += 1
        for _ in range(total):
            conn.recv()
            if sent < total:
                conn.send(_request(sent))
                sent += 1
        return time.perf_counter() - start

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.conn.close()
        stop_mp_process(self.proc)


# ================================================================================================
# baseline: bare asyncio unix-socket echo
# ================================================================================================


class _Framed(asyncio.Protocol):
    """Length-prefixed frames over a stream; ``on_payload(bytes)`` for each complete frame."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = _HEADER.unpack_from(buffer)
            end = 4 + size
            if len(buffer) < end:
                return
            payload = bytes(buffer[4:end])
            del buffer[:end]
            self.on_payload(payload)

    def write(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_HEADER.pack(len(payload)) + payload)

    def on_payload(self, payload: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class _EchoServer(_Framed):
    """Echo each frame (``pickled``: unpickle the request, pickle a reply)."""

    def __init__(self, pickled: bool, closed: asyncio.Future[None]) -> None:
        super().__init__()
        self.pickled = pickled
        self.closed = closed

    def on_payload(self, payload: bytes) -> None:
        if self.pickled:
            payload = pickle.dumps(_reply(pickle.loads(payload)), _PROTOCOL)
        self.write(payload)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class EchoClient(_Framed):
    """Requests answered in order: each :meth:`request` returns a future of its reply."""

    def __init__(self, pickled: bool) -> None:
        super().__init__()
        self.pickled = pickled
        self.loop = asyncio.get_running_loop()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.ids = iter(range(1 << 62))

    @classmethod
    async def connect(cls, path: str, pickled: bool) -> EchoClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_unix_connection(lambda: cls(pickled), path)
        return client

    def request(self) -> asyncio.Future[Any]:
        payload = (
            pickle.dumps(_request(next(self.ids)), _PROTOCOL) if self.pickled else _RAW_PAYLOAD
        )
        fut = self.loop.create_future()
        self.waiters.append(fut)
        self.write(payload)
        return fut

    async def samples(self, n: int) -> list[int]:
        """``n`` sequential round trips, in nanoseconds."""
        clock, out = time.perf_counter_ns, []
        for _ in range(n):
            start = clock()
            await self.request()
            out.append(clock() - start)
        return out

    def on_payload(self, payload: bytes) -> None:
        self.waiters.popleft().set_result(pickle.loads(payload) if self.pickled else payload)

    def connection_lost(self, exc: BaseException | None) -> None:
        while self.waiters:
            self.waiters.popleft().set_exception(ConnectionError("echo server went away"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _RelayFront(_Framed):
    """Relay, client side: read each envelope (as pulsar's arbiter does to route it) and
    forward the frame's payload unchanged to the backend."""

    def __init__(self, back: _RelayBack, closed: asyncio.Future[None]) -> None:
        super().__init__()
        self.back = back
        self.closed = closed
        back.front = self

    def on_payload(self, payload: bytes) -> None:
        pickle.loads(payload)
        self.back.write(payload)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _RelayBack(_Framed):
    """Relay, backend side: read each reply's envelope and forward it to the client."""

    front: _RelayFront | None = None

    def on_payload(self, payload: bytes) -> None:
        pickle.loads(payload)
        assert self.front is not None
        self.front.write(payload)


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _server_main(path: str, io: str, mode: str, backend: str | None, ready: Connection) -> None:
    """Child: serve one connection on the unix socket ``path``, then exit (also when the
    parent process dies).

    ``mode``: ``bytes`` (echo frames), ``pickle`` (unpickle each request, pickle a reply) or
    ``relay`` (forward frames to the server at ``backend`` and back, like a star's center).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = pulsar.new_event_loop(io)

    async def serve() -> None:
        closed: asyncio.Future[None] = loop.create_future()
        back: _RelayBack | None = None
        if mode == "relay":
            assert backend is not None
            _, back = await loop.create_unix_connection(_RelayBack, backend)
            server = await loop.create_unix_server(lambda: _RelayFront(back, closed), path)
        else:
            server = await loop.create_unix_server(
                lambda: _EchoServer(mode == "pickle", closed), path
            )
        parent = multiprocessing.parent_process()
        if parent is not None:  # exit when the parent dies, even before a client connected
            loop.add_reader(parent.sentinel, _set_done, closed)
        ready.send(True)
        ready.close()
        await closed
        server.close()
        if back is not None and back.transport is not None:
            back.transport.close()

    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()


class ServerProcess:
    """An asyncio echo or relay server (see :func:`_server_main`) in its own process, on a unix
    socket in a private temporary directory."""

    def __init__(self, io: str, mode: str, backend: str | None = None) -> None:
        self.pickled = mode != "bytes"
        self.tmp = tempfile.mkdtemp(prefix="pulsar-bench-")
        self.path = os.path.join(self.tmp, f"{mode}.sock")
        ready_r, ready_w = _CTX.Pipe(duplex=False)
        self.proc = _CTX.Process(
            target=_server_main,
            args=(self.path, io, mode, backend, ready_w),
            name=f"bench-{mode}",
            daemon=True,
        )
        self.proc.start()
        ready_w.close()
        try:
            if not ready_r.poll(10) or not ready_r.recv():
                raise BenchError(f"the {mode} server did not start")
        except BaseException:
            self.close()
            raise
        finally:
            ready_r.close()

    @property
    def pid(self) -> int:
        return self.proc.pid or 0

    def close(self) -> None:
        stop_mp_process(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ================================================================================================
# pulsar
# ================================================================================================


@pulsar.command(ack=False)
def bench_cast(request: pulsar.Request) -> None:
    """Fire-and-forget: count one message."""
    extra = request.actor.extra
    extra["bench_casts"] = extra.get("bench_casts", 0) + 1


@pulsar.command()
def bench_casts(request: pulsar.Request) -> int:
    """How many ``bench_cast`` arrived since the last call (and reset the count)."""
    return int(request.actor.extra.pop("bench_casts", 0))


async def ping_samples(actor: Any, target: str, n: int) -> list[int]:
    """Run in an actor: ``n`` sequential ``ping`` round trips to ``target``, in nanoseconds."""
    clock, send, out = time.perf_counter_ns, pulsar.send, []
    for _ in range(n):
        start = clock()
        await send(target, "ping")
        out.append(clock() - start)
    return out


def _forbid_link(actor: Any, target: str) -> bool:
    """Run in an actor: keep its messages to ``target`` on the arbiter route (the star)."""
    if actor.links is not None:
        actor.links.forbid(target)
    return True


async def acked_seconds(actor: Any, target: str, total: int, window: int) -> float:
    """Run in an actor: ``total`` acked pings to ``target``, ``window`` in flight; seconds."""
    return await pipelined(lambda: pulsar.send(target, "ping"), total, window)


async def cast_seconds(actor: Any, target: str, total: int, window: int) -> float:
    """Run in an actor: ``total`` fire-and-forget casts to ``target`` (yielding to the loop every
    ``window`` casts), then one acked request; seconds until that request returned."""
    start = time.perf_counter()
    send = pulsar.send
    for i in range(1, total + 1):
        send(target, "bench_cast")
        if not i % window:
            await asyncio.sleep(0)
    got = await send(target, "bench_casts")
    elapsed = time.perf_counter() - start
    if got != total:
        raise BenchError(f"{got} of {total} casts arrived")
    return elapsed


def _profile_start(actor: Any) -> None:
    prof = cProfile.Profile()
    actor.extra["bench_profile"] = prof
    prof.enable()


def _profile_stop(actor: Any, path: str) -> None:
    prof = actor.extra.pop("bench_profile")
    prof.disable()
    prof.dump_stats(path)


@contextlib.asynccontextmanager
async def _profiled(directory: Path, tag: str, actors: Sequence[Any]) -> AsyncIterator[None]:
    """cProfile the arbiter and ``actors`` inside the block into ``directory/tag-<who>.prof``."""
    for actor in actors:
        await pulsar.send(actor, "run", _profile_start)
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        prof.dump_stats(directory / f"{tag}-arbiter.prof")
        for actor in actors:
            path = str(directory / f"{tag}-{actor.name}.prof")
            await pulsar.send(actor, "run", _profile_stop, path)


class Baselines:
    """The baseline servers of one run, forked before the arbiter starts: the Pipe echo, the
    asyncio echo servers (bytes, pickle) and a relay in front of a third (pickle) echo server."""

    def __init__(self, io: str) -> None:
        self.pipe: PipeEcho | None = None
        self.servers: dict[str, ServerProcess] = {}
        try:
            self.pipe = PipeEcho()
            self.servers["echo_bytes"] = ServerProcess(io, "bytes")
            self.servers["echo_pickle"] = ServerProcess(io, "pickle")
            self.servers["relay_backend"] = ServerProcess(io, "pickle")
            backend = self.servers["relay_backend"].path
            self.servers["relay"] = ServerProcess(io, "relay", backend)
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        pids = [s.pid for s in self.servers.values()]
        return pids + ([self.pipe.proc.pid] if self.pipe and self.pipe.proc.pid else [])

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        for server in reversed(self.servers.values()):
            server.close()


async def _call(fn: Any, *args: Any) -> Any:
    """Run a blocking baseline call (the Pipe) where the others are awaited."""
    return fn(*args)


def _process_time(actor: Any) -> float:
    """Run in an actor: the CPU seconds its process used so far."""
    return time.process_time()


def _set_affinity(actor: Any, cpus: set[int]) -> None:
    """Run in an actor (or call in the arbiter): move this thread to ``cpus``."""
    os.sched_setaffinity(0, cpus)


async def _pin(cpus: set[int], actors: Sequence[Any], pids: Sequence[int]) -> None:
    """Move the arbiter's thread, the actors' loop threads and the baseline processes to
    ``cpus``."""
    for actor in actors:
        await pulsar.send(actor, "run", _set_affinity, cpus)
    for pid in pids:
        os.sched_setaffinity(pid, cpus)
    os.sched_setaffinity(0, cpus)


async def _suite(
    arbiter: Any, opts: argparse.Namespace, io: str, base: Baselines
) -> dict[str, Any]:
    """Every measurement of one loop kind, interleaved (see the module docstring)."""

    def step(aw: Any) -> Any:
        return asyncio.wait_for(aw, opts.step_timeout)

    a = await step(pulsar.spawn(name="bench-a"))
    b = await step(pulsar.spawn(name="bench-b"))
    c = await step(pulsar.spawn(name="bench-c"))  # A -> C stays on the arbiter route
    await step(pulsar.send(a, "run", _forbid_link, c.aid))  # both ways: C's replies too
    await step(pulsar.send(c, "run", _forbid_link, a.aid))
    # every actor a latency row goes through is pinned with the arbiter: C left on the other CPU
    # made each A -> C round trip pay cross-CPU wake-ups (~110-130 us p50 instead of ~35 us)
    pinned = [a, b, c]
    assert base.pipe is not None
    pipe = base.pipe
    clients = {
        key: await EchoClient.connect(server.path, server.pickled)
        for key, server in base.servers.items()
        if key != "relay_backend"
    }
    all_cpus = os.sched_getaffinity(0) if opts.pin is not None else set()
    try:
        total, window = opts.messages, opts.window

        latency = {
            "pipe": lambda n: _call(pipe.samples, n),
            "echo_bytes": clients["echo_bytes"].samples,
            "echo_pickle": clients["echo_pickle"].samples,
            "relay": clients["relay"].samples,
            "actor_arbiter": lambda n: pulsar.send(a, "run", ping_samples, "arbiter", n),
            "arbiter_actor": lambda n: ping_samples(arbiter, a.aid, n),
            "actor_actor": lambda n: pulsar.send(a, "run", ping_samples, b.aid, n),
            "actor_actor_star": lambda n: pulsar.send(a, "run", ping_samples, c.aid, n),
        }
        throughput = {
            "pipe": lambda: _call(pipe.seconds, total, window),
            "echo_bytes": lambda: pipelined(clients["echo_bytes"].request, total, window),
            "echo_pickle": lambda: pipelined(clients["echo_pickle"].request, total, window),
            "relay": lambda: pipelined(clients["relay"].request, total, window),
            "acked": lambda: pulsar.send(a, "run", acked_seconds, b.aid, total, window),
            "acked_star": lambda: pulsar.send(a, "run", acked_seconds, c.aid, total, window),
            "cast": lambda: pulsar.send(a, "run", cast_seconds, b.aid, total, window),
            "cast_star": lambda: pulsar.send(a, "run", cast_seconds, c.aid, total, window),
        }
        if opts.pin is not None:
            await _pin({opts.pin}, pinned, base.pids)
        for measure in latency.values():  # warm up every path
            await step(measure(_WARMUP))
        samples: dict[str, list[int]] = {k: [] for k in latency}
        per_chunk = max(1, -(-opts.pings // opts.chunks))
        for _ in range(opts.chunks):
            for key, measure in latency.items():
                samples[key] += await step(measure(per_chunk))
        if opts.pin is not None:
            await _pin(all_cpus, pinned, base.pids)

        # the CPU clocks of every process on each path (this process is the baselines' client)
        def clocks(key: str) -> list[Any]:
            if key in ("acked", "cast", "acked_star", "cast_star"):
                other = c if key.endswith("_star") else b
                return [
                    _call(time.process_time),
                    pulsar.send(a, "run", _process_time),
                    pulsar.send(other, "run", _process_time),
                ]
            pids = {
                "pipe": [pipe.proc.pid or 0],
                "relay": [base.servers["relay"].pid, base.servers["relay_backend"].pid],
            }.get(key) or [base.servers[key].pid]
            return [_call(time.process_time), *(_call(process_cpu, pid) for pid in pids)]

        best: dict[str, Throughput] = {}
        for _ in range(opts.rounds):
            for key, run in throughput.items():
                before = [await step(c) for c in clocks(key)]
                elapsed = await step(run())
                after = [await step(c) for c in clocks(key)]
                cpu = sum(y - x for x, y in zip(before, after, strict=True))
                if key not in best or elapsed < best[key].seconds:
                    best[key] = Throughput(total, elapsed, cpu)

        out: dict[str, Any] = {k: Latency.from_ns(v) for k, v in samples.items()}
        out.update({f"{k}_thr": v for k, v in best.items()})

        if opts.profile is not None:
            if opts.pin is not None:
                await _pin({opts.pin}, pinned, base.pids)
            for tag, key, actors in (
                ("ping-actor-arbiter", "actor_arbiter", [a]),
                ("ping-arbiter-actor", "arbiter_actor", [a]),
            ):
                async with _profiled(opts.profile, f"{io}-{tag}", actors):
                    await step(latency[key](opts.pings))
            if opts.pin is not None:
                await _pin(all_cpus, pinned, base.pids)
            for key in ("acked", "cast"):
                async with _profiled(opts.profile, f"{io}-{key}", [a, b]):
                    await step(throughput[key]())
        return out
    finally:
        for client in clients.values():
            client.close()


def _run_arbiter(io: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Fork the baselines, start an arbiter on the ``io`` loop, run :func:`_suite`, stop all."""
    result: dict[str, Any] = {}
    base = Baselines(io)
    try:

        async def start(arbiter: Any) -> None:
            async def go() -> None:
                try:
                    result.update(await _suite(arbiter, opts, io, base))
                except BaseException as exc:
                    result["error"] = exc
                finally:
                    arbiter.stop()

            arbiter.extra["bench"] = asyncio.ensure_future(go())

        code = pulsar.arbiter(
            start=start,
            io=io,
            log_level="warning",
            process_name="pulsar-bench",
            start_method="fork" if _LINUX else "auto",
        ).start()
    finally:
        base.close()
    if "error" in result:
        error = result["error"]
        if isinstance(error, TimeoutError):
            raise BenchError(f"a step took longer than {opts.step_timeout:g}s")
        raise error
    if "cast_thr" not in result:
        raise BenchError(f"the arbiter stopped before the benchmark ended (exit code {code})")
    return result


def _arbiter_process(io: str, opts: argparse.Namespace, conn: Connection) -> None:
    """Child: run :func:`_run_arbiter` and send back ``("ok", results)`` or ``("error", text)``."""
    _set_watchdog(0)
    try:
        conn.send(("ok", _run_arbiter(io, opts)))
    except BaseException as exc:
        conn.send(("error", "".join(traceback.format_exception(exc)).rstrip()))
    finally:
        conn.close()


def bench_io(io: str, opts: argparse.Namespace, budget: float) -> dict[str, Any]:
    """Run every measurement of loop kind ``io`` in a fresh process holding the arbiter.

    One arbiter per process, as in production: the benchmark's own process never starts one,
    so every loop kind gets a clean arbiter. Past ``budget`` seconds the process gets SIGTERM (a
    graceful stop of the arbiter and its actors), then SIGKILL; actors and echo servers exit on
    their own when their parent dies.
    """
    recv, send = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=_arbiter_process, args=(io, opts, send), name="bench-arbiter")
    proc.start()
    send.close()
    try:
        if not recv.poll(max(budget, 0.1)):
            raise BenchError(f"[{io}] the run did not finish within the time budget")
        status, value = recv.recv()
    except EOFError:
        proc.join(2)
        raise BenchError(f"[{io}] the arbiter process died (exit code {proc.exitcode})")
    finally:
        recv.close()
        stop_mp_process(proc, grace=10)
    if status != "ok":
        raise BenchError(f"[{io}] run failed:\n{value}")
    return value  # type: ignore[no-any-return]


class _Timeout(BaseException):
    """Raised by the watchdog's SIGALRM: unwinds (running every ``finally``) and ends the run."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout("the time budget (--budget) is spent")


def _set_watchdog(seconds: float) -> None:
    """Raise :class:`_Timeout` in the main thread after ``seconds`` (0 cancels).

    The benchmark's own process only waits on pipes and children, which this interrupts; code on
    an event loop is bounded by ``--step-timeout`` instead.
    """
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 0))


# ================================================================================================
# report
# ================================================================================================


def report(
    results: dict[str, dict[str, Any]], opts: argparse.Namespace, *, markdown: bool = False
) -> tuple[str, list[Target]]:
    """The results table (one value and one ratio-to-raw column per loop) and the targets."""
    ios = list(results)
    headers = ["round trip: p50 / p99"]
    for io in ios:
        headers += [io, "vs raw", "CPU/msg"]
    rows: list[Any] = []
    for key, label in LATENCY_ROWS:
        row = [label]
        for io in ios:
            lat, base = results[io][key], results[io]["echo_pickle"]
            row += [str(lat), f"{ratio(lat.p50, base.p50)} / {ratio(lat.p99, base.p99)}", ""]
        rows.append(row)
    rows.append(f"throughput, msg/s (window {opts.window}, best of {opts.rounds})")
    for key, label in THROUGHPUT_ROWS:
        row = [label]
        for io in ios:
            thr, base = results[io][f"{key}_thr"], results[io]["echo_pickle_thr"]
            row += [fmt_rate(thr.rate), ratio(thr.rate, base.rate), fmt_cpu(thr.cpu_per_msg_us)]
        rows.append(row)
    targets: list[Target] = []
    for io in ios:
        r = results[io]
        base, base_thr = r["echo_pickle"], r["echo_pickle_thr"]
        for key, what, limit in (
            ("actor_arbiter", "actor -> arbiter", 1.6),
            ("actor_actor", "actor -> actor", 2.0),
        ):
            value = r[key].p50 / base.p50
            targets.append(Target(f"[{io}] round trip p50 {what} vs raw", value, limit, True))
        thr = r["acked_thr"]
        relay = r["relay_thr"].rate / base_thr.rate
        detail = (
            f"CPU/msg {fmt_cpu(thr.cpu_per_msg_us)} vs raw {fmt_cpu(base_thr.cpu_per_msg_us)}; "
            f"via the arbiter {r['acked_star_thr'].rate / base_thr.rate:.2f}x; "
            f"bare relay, same star topology: {relay:.2f}x"
        )
        value = thr.rate / base_thr.rate
        targets.append(Target(f"[{io}] throughput acked A -> B vs raw", value, 0.8, False, detail))
        # "not slower than today": today every cast went through the arbiter (A -> C here)
        cast, star = r["cast_thr"], r["cast_star_thr"]
        detail = (
            f"{cast.rate / base_thr.rate:.2f}x raw; "
            f"via the arbiter {star.rate / base_thr.rate:.2f}x"
        )
        targets.append(
            Target(
                f"[{io}] throughput fire-and-forget A -> B vs via the arbiter",
                cast.rate / star.rate,
                0.95,
                False,
                detail,
            )
        )
    return render_table(headers, rows, markdown=markdown), targets


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hatch run bench actors",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--io",
        action="append",
        choices=("auto", "asyncio", "uvloop"),
        help="event loop kind, repeatable (default: auto, then asyncio)",
        default=argparse.SUPPRESS,
    )
    p.add_argument("-n", "--pings", type=int, default=5000, help="round trips timed per path")
    p.add_argument("-m", "--messages", type=int, default=20000, help="messages per throughput run")
    p.add_argument("-w", "--window", type=int, default=64, help="requests in flight")
    p.add_argument("-r", "--rounds", type=int, default=3, help="throughput rounds, best kept")
    p.add_argument("--chunks", type=int, default=5, help="latency slices, interleaved")
    p.add_argument(
        "--pin",
        type=int,
        default=-1,
        metavar="CPU",
        help="run the latency phase with every process on this CPU (-1: the last one)",
    )
    p.add_argument("--no-pin", action="store_true", help="leave the scheduler free for latency")
    p.add_argument("--step-timeout", type=float, default=20.0, help="seconds per step")
    p.add_argument("--budget", type=float, default=60.0, help="watchdog: give up after SECONDS")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.add_argument("--profile", type=Path, metavar="DIR", help="cProfile pulsar's paths into DIR")
    return p


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met, 1 when one is missed, 2 on error."""
    opts = _parser().parse_args(argv)
    if min(opts.pings, opts.messages, opts.window, opts.rounds, opts.chunks) < 1:
        print("actors: error: counts must be positive", file=sys.stderr)
        return 2
    ios: list[str] = []
    for io in getattr(opts, "io", None) or ["auto", "asyncio"]:
        concrete = ("uvloop" if _has_uvloop() else "asyncio") if io == "auto" else io
        if concrete not in ios:
            ios.append(concrete)
    if opts.no_pin or not hasattr(os, "sched_setaffinity"):
        opts.pin = None
    elif opts.pin < 0:
        opts.pin = max(os.sched_getaffinity(0))
    elif opts.pin not in os.sched_getaffinity(0):
        print(f"actors: error: CPU {opts.pin} is not available", file=sys.stderr)
        return 2
    if opts.profile is not None:
        opts.profile = opts.profile.resolve()
        opts.profile.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _set_watchdog(opts.budget)
    results: dict[str, dict[str, Any]] = {}
    try:
        for io in ios:
            print(
                f"[{io}] arbiter + 2 process actors, Pipe and asyncio echo servers...", flush=True
            )
            results[io] = bench_io(io, opts, opts.budget - (time.perf_counter() - started))
    except (BenchError, _Timeout) as exc:
        print(f"actors: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actors: interrupted", file=sys.stderr)
        return 130
    finally:
        _set_watchdog(0)
        orphans = reap_mp_children()
        if orphans:
            print(f"actors: warning: killed leftover children {orphans}", file=sys.stderr)
    elapsed = time.perf_counter() - started

    info = machine_info()
    print(
        f"\npulsar {pulsar.__version__} actors benchmark, {info['date']}, {info['nproc']} cores, "
        f"{info['python']}, {info['cpu']}"
    )
    pinned = f"all processes on CPU {opts.pin}" if opts.pin is not None else "not pinned"
    print(
        f"latency: {opts.pings} round trips per path in {opts.chunks} interleaved slices, "
        f"{pinned}; throughput: {opts.messages} messages per run, all CPUs\n"
    )
    table, targets = report(results, opts)
    print(table)
    print()
    for target in targets:
        print(target)
    print(f"\nwhole run: {elapsed:.1f}s")
    if opts.markdown:
        print()
        print(report(results, opts, markdown=True)[0])
    if opts.profile is not None:
        for path in sorted(opts.profile.glob("*.prof")):
            print(f"\n== {path.name}")
            print(profile_summary(path, 15))
    return 0 if all(t.ok for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
