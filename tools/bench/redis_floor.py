"""Latency floor of a Redis task round trip on this machine (no pulsar-tasks Python in the path).

``hatch run bench redis_floor [--url redis://127.0.0.1:6379/14] [-n 3000]`` measures, each as
the p50 of ``n`` sequential round trips from a plain asyncio client (as the tasks benchmark's
driver), with a raw protocol (asyncio Protocol + hiredis, no redis-py) wherever it can:

* ``ping``: a PING (raw; and through redis-py's asyncio client, for comparison);
* ``bare``: the four hops of a task without Lua: the client RPUSHes, a worker process blocked in
  BLPOP PUBLISHes to the client's channel, the client reads the message;
* ``lua``: the same hops with pulsar-tasks' own scripts: the client runs ``enqueue`` (a record
  with a reply channel), the worker its pipelined BLPOP + ``claim`` then ``complete``, whose
  reply message the client reads.

The worker is a child process on uvloop when installed (as a TaskQueue worker). Keys go under
the prefix ``floor`` of the given database, deleted at the end. The gap between ``lua`` and a
``hatch run bench tasks`` p50 is what pulsar-tasks' Python (client and worker) costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "floor"


def pack(*args: Any) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Proto(asyncio.Protocol):
    def __init__(self) -> None:
        import hiredis

        self.reader = hiredis.Reader(encoding="utf-8")
        self.replies: asyncio.Queue[Any] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.replies.put_nowait(reply)


class _Conn:
    def __init__(self, proto: _Proto) -> None:
        self.proto = proto

    @classmethod
    async def open(cls, url: str) -> _Conn:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            _Proto, parts.hostname or "127.0.0.1", parts.port or 6379
        )
        conn = cls(proto)
        await conn.call("SELECT", (parts.path or "/0").strip("/") or "0")
        return conn

    def send(self, data: bytes) -> None:
        self.proto.transport.write(data)

    async def reply(self) -> Any:
        return await self.proto.replies.get()

    async def call(self, *args: Any) -> Any:
        self.send(pack(*args))
        return await self.reply()


def _scripts() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "packages" / "pulsar-tasks" / "src"))
    sys.path.insert(0, str(ROOT / "packages" / "pulsar-core" / "src"))
    from pulsar.apps.tasks._redis_scripts import SCRIPTS

    return SCRIPTS


async def _worker(url: str, mode: str) -> None:
    conn, out = await _Conn.open(url), await _Conn.open(url)
    sha = {name: await conn.call("SCRIPT", "LOAD", src) for name, src in _scripts().items()}
    print("ready", flush=True)
    while True:
        if mode == "bare":
            _, item = await conn.call("BLPOP", f"{PREFIX}:bare", 0)
            task_id, channel = item.split(" ")
            await out.call("PUBLISH", channel, f"{task_id} done")
            continue
        claim = ("EVALSHA", sha["claim"], 0, PREFIX, "", 30, 10, "w1", "tok", 86400, "default")
        conn.send(pack("BLPOP", f"{PREFIX}:wake:default", 1) + pack(*claim))
        await conn.reply()
        rows, _ = await conn.reply()
        for text in rows[1::2]:
            row = json.loads(text)
            item = [row["id"], row["token"], "SUCCESS", "null", "", ""]
            args = (sha["complete"], 0, PREFIX, repr(time.time()), 86400, json.dumps([item]))
            await out.call("EVALSHA", *args)


def _p50_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


async def _client(url: str, mode: str, n: int) -> float:
    conn, sub = await _Conn.open(url), await _Conn.open(url)
    sha = {name: await conn.call("SCRIPT", "LOAD", src) for name, src in _scripts().items()}
    channel = f"{PREFIX}:reply:{uuid.uuid4().hex}"
    await sub.call("SUBSCRIBE", channel)
    samples = []
    for i in range(n + 200):
        task_id = uuid.uuid4().hex
        t0 = time.perf_counter_ns()
        if mode == "bare":
            await conn.call("RPUSH", f"{PREFIX}:bare", f"{task_id} {channel}")
        else:
            now = repr(time.time())
            row = {
                "id": task_id,
                "name": "noop",
                "queue": "default",
                "status": "QUEUED",
                "payload": '{"args": [], "kwargs": {}}',
                "attempts": "0",
                "max_retries": "0",
                "time_queued": now,
                "eta": now,
                "revoke": "0",
                "reply_to": channel,
            }
            batch = json.dumps([[task_id, "0", "default", now, now, "", row]])
            await conn.call("EVALSHA", sha["enqueue"], 0, PREFIX, batch)
        message = await sub.reply()
        if not message[2].startswith(task_id):
            raise RuntimeError(f"unexpected message {message!r}")
        if i >= 200:  # after a warm-up
            samples.append(time.perf_counter_ns() - t0)
    return _p50_us(samples)


async def _pings(url: str, n: int) -> tuple[float, float]:
    import redis.asyncio as aredis

    conn = await _Conn.open(url)
    raw = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await conn.call("PING")
        raw.append(time.perf_counter_ns() - t0)
    client = aredis.Redis.from_url(url)
    await client.ping()
    through = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await client.ping()
        through.append(time.perf_counter_ns() - t0)
    await client.aclose()
    return _p50_us(raw), _p50_us(through)


async def _cleanup(url: str) -> None:
    conn = await _Conn.open(url)
    cursor = "0"
    while True:
        cursor, keys = await conn.call("SCAN", cursor, "MATCH", f"{PREFIX}:*", "COUNT", 1000)
        if keys:
            await conn.call("DEL", *keys)
        if cursor == "0":
            return


def _run_worker(url: str, mode: str) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the environment
        asyncio.run(_worker(url, mode))
    else:
        uvloop.run(_worker(url, mode))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the p50 of each round trip (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="bench redis_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("-n", type=int, default=3000, help="round trips per measurement")
    parser.add_argument("--worker", choices=("bare", "lua"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _run_worker(args.url, args.worker)
        return 0
    raw, through = asyncio.run(_pings(args.url, args.n))
    print(f"ping (raw asyncio + hiredis)   p50 {raw:6.0f} us")
    print(f"ping (redis-py asyncio)        p50 {through:6.0f} us")
    for mode in ("bare", "lua"):
        cmd = [sys.executable, __file__, "--url", args.url, "--worker", mode]
        worker = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert worker.stdout is not None
            worker.stdout.readline()  # "ready"
            p50 = asyncio.run(_client(args.url, mode, args.n))
        finally:
            worker.terminate()
            worker.wait(10)
        label = "RPUSH/BLPOP/PUBLISH, no Lua" if mode == "bare" else "pulsar-tasks' Lua scripts"
        print(f"task round trip, {label:<28} p50 {p50:6.0f} us")
    asyncio.run(_cleanup(args.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
