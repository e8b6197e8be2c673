"""Hot-path Redis calls without redis-py's command layer: :func:`pack` and :class:`Lane`.

How it works
------------
A task's round trip is a handful of Redis calls (enqueue, the worker's BLPOP + claim, complete,
the reads of a waiting client). Through ``Redis.execute_command`` each costs ~40-70 µs of
Python before and after the network: a checkout of the blocking pool (an ``asyncio.Condition``
and a timeout), argument encoding per item, retry and observability wrappers, the release. Those
calls come from callers that make one call at a time (each :class:`~._batch.Batcher` has one
batch in flight; a consumer claims from one loop), so each caller gets a :class:`Lane`: a
connection of its own, made with the pool's settings (address, database, password, TLS,
protocol, decoding) and outside its count, to which it writes commands packed by :func:`pack`
and reads the replies. A call that finds its lane busy (two consumers sharing one backend)
takes another connection of the lane: a lane keeps the few it needed.

Any error drops the connection, whose pending replies are then unknown: the next call
connects again, and the caller's :func:`~._backend.guarded` retries connection errors as it
does for every other call. A connection idle longer than the pool's ``health_check_interval``
is checked with a PING before it is used (redis-py's own check).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Lane", "pack"]

#: connections a lane keeps between calls (more only while that many calls overlap)
KEEP = 2


def pack(*args: str | int | float) -> bytes:
    """One command in the Redis protocol. ``args`` are str (UTF-8), int or float (``repr``),
    as redis-py encodes them."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if arg.__class__ is str else repr(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Lane:
    """Connections of one caller (see the module docstring); ``pool`` is the redis-py pool
    whose settings they use."""

    __slots__ = ("_all", "_free", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._free: list[Any] = []
        self._all: set[Any] = set()

    async def call(self, packed: bytes, replies: int = 1) -> list[Any]:
        """Send ``packed`` (one or several commands) and return their ``replies`` replies.

        Raises what redis-py's connection raises (ConnectionError, TimeoutError, a
        ResponseError such as NoScriptError for an error reply); the connection is dropped then.
        """
        conn = self._free.pop() if self._free else self._connection()
        try:
            await conn.send_packed_command(packed)
            out = [await conn.read_response() for _ in range(replies)]
        except BaseException:
            self._all.discard(conn)
            await conn.disconnect(nowait=True)
            raise
        if len(self._free) < KEEP:
            self._free.append(conn)
        else:
            self._all.discard(conn)
            await conn.disconnect()
        return out

    def _connection(self) -> Any:
        conn = self.pool.connection_class(**self.pool.connection_kwargs)
        self._all.add(conn)
        return conn

    async def close(self) -> None:
        """Disconnect every connection of the lane (one in use too: its call fails)."""
        conns, self._all, self._free = self._all, set(), []
        for conn in conns:
            try:
                await conn.disconnect(nowait=True)
            except Exception:  # already broken: nothing to close
                pass
