"""The Redis backend (redis-py's asyncio client): for workers on several machines.

How it works
------------
Keys, under a prefix (``pulsar-tasks``, or ``?prefix=name`` in the URL):

* ``{p}:t:<id>``: the task record, a hash of the :class:`Task` fields;
* ``{p}:q:<queue>``: sorted set of pending task ids scored by their due time (eta);
* ``{p}:qp:<priority>:<queue>``: the same for the tasks of a priority above 0, and
  ``{p}:prios:<queue>`` the set of those priorities in use (see :mod:`._schedule`);
* ``{p}:rate:<job>``: the times of the last N starts of a rate-limited job (see
  :mod:`._schedule`);
* ``{p}:leases``: sorted set of STARTED task ids scored by their lease expiry;
* ``{p}:all``: sorted set of every task id scored by the time it was queued (listing);
* ``{p}:ov:<key>``: the task holding an ``overlap=False`` key;
* ``{p}:wake:<queue>``: a short list pushed on enqueue, BLPOP-ed by idle workers;
* ``{p}:w:<worker>``: a worker's heartbeat record (JSON, expiring), ``{p}:workers``: sorted set
  of worker ids scored by the expiry of their record (listing without a SCAN);
* ``{p}:jobs``: hash of job descriptions; channel ``{p}:done:<id>``: the final record (JSON),
  published when the task ends;
* ``{p}:events``: the stream of task events (``XADD ... MAXLEN ~ 10000`` in the scripts of a
  backend recording events: each script has an ``+ev`` variant; see :mod:`._events`);
* channel ``{p}:reply:<client>``: ``"<id> <final record>"`` for every task that client queued
  (the record's ``reply_to``). A client subscribes once, at its first wait, and stays
  subscribed: waiting for a task it queued after that costs no subscribe and no read, the reply
  is already on its way (or arrived). Other waiters subscribe to ``{p}:done:<id>`` and then read
  the record.

Every state change is one Lua script, so it is atomic. Finished records get a PEXPIRE of the
result TTL (and its time in ``purge_at``); a revoke by a client uses the ``result_ttl`` the
TaskQueue published with its jobs, so the TTL of a record is the workers' on every path. Calls
retry with back-off through connection errors (see ``guarded``), so workers and producers
carry on after a Redis restart (a task whose lease expired meanwhile is
delivered again: at-least-once).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ._backend import Backend, Claim, decode_workers, guarded
from ._batch import Batcher
from ._errors import BackendError, DuplicateTask, JobOverlap
from ._events import EventReader, TaskEvent, strip_events
from ._redis_conn import Lane, pack
from ._redis_scripts import SCRIPTS, SHAS
from ._state import FINAL, REQUEUEABLE, Task, TaskState

__all__ = ["RedisBackend"]

_COUNT_CHUNK = 5000
#: tasks a purge script handles per call (Redis is not blocked for long)
_PURGE_CHUNK = 1000
#: replies kept for tasks this client queued and nobody waits for yet (older ones: read back)
_REPLY_CACHE = 4096
#: tasks queued here whose reply is awaited on the reply channel (older ones: subscribe + read)
_EXPECTED = 65536

logger = logging.getLogger("pulsar.tasks")


def _final(record: str, now: float) -> tuple[Task | None, bool]:
    """A reply or done message decoded once: ``(task, expired)``, the task when the message is a
    readable final record (else None), expired when its result TTL passed (the record is
    gone: TaskNotFound)."""
    try:
        row = json.loads(record)
        purge_at = row.get("purge_at")
        if purge_at and float(purge_at) <= now:
            return None, True
        task = Task.from_row(row)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, False
    return (task if task.done else None), False


#: connections a backend object opens at most by default (``?max_connections=N``)
DEFAULT_MAX_CONNECTIONS = 50


def _split_url(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    prefix = query.pop("prefix", ["pulsar-tasks"])[0]
    strip_events(query)
    try:
        most = int(query.pop("max_connections", [DEFAULT_MAX_CONNECTIONS])[0])
    except ValueError:
        raise BackendError(f"{url!r}: max_connections must be an integer") from None
    if most < 2:
        raise BackendError(f"{url!r}: max_connections must be at least 2")
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
    return urlunsplit(parts._replace(query=rest)), prefix, most


class _Replies:
    """A client's reply channel: one subscription and one reader task for the tasks the client
    queued (see the module docstring).

    The channel is named at the first enqueue but subscribed only at the first wait, so a
    client that never waits receives nothing (a PUBLISH to nobody costs Redis next to nothing).
    A task queued while the subscription was live (same ``generation``: no reconnection since)
    needs no read: its reply cannot be missed. Any other is read once after subscribing.
    Waiters still re-read every second, and at once after a reconnection (replies published
    meanwhile are lost), so a lost message delays a waiter, never blocks it.
    """

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.channel = backend._key("reply", uuid.uuid4().hex)
        self.ready: asyncio.Future[None] | None = None
        self.pubsub: Any = None
        self.reader: asyncio.Task[None] | None = None
        #: +1 at every confirmed (re)subscription; 0: never subscribed
        self.generation = 0
        self.live = False
        #: task queued here -> the generation it was queued in (0: not live then)
        self.expected: OrderedDict[str, int] = OrderedDict()
        self.arrived: OrderedDict[str, str] = OrderedDict()
        self.waiters: dict[str, list[asyncio.Future[str | None]]] = {}

    def expect(self, task_id: str) -> None:
        self.expected[task_id] = self.generation if self.live else 0
        if len(self.expected) > _EXPECTED:
            self.expected.popitem(last=False)

    def covers(self, task_id: str) -> bool:
        """True when the reply of ``task_id`` comes (or came) on this channel for sure."""
        gen = self.expected.get(task_id)
        return self.live and gen is not None and gen == self.generation

    async def subscribe(self) -> None:
        """Subscribe (once) and wait for Redis to confirm."""
        if self.ready is None:
            loop = asyncio.get_running_loop()
            ready = self.ready = loop.create_future()
            try:
                self.pubsub = self.backend.client.pubsub()
                await self.pubsub.subscribe(self.channel)
            except BaseException:
                self.ready = None
                pubsub, self.pubsub = self.pubsub, None
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                ready.cancel()
                raise
            self.reader = loop.create_task(self._read(), name="pulsar-tasks-replies")
            # a client never closed (one per loop of an RPC handler, say) leaves this reader
            # pending when its loop dies with the process: nothing is lost, nothing to report
            self.reader._log_destroy_pending = False  # type: ignore[attr-defined]
        if not self.ready.done():
            await asyncio.shield(self.ready)

    def listen(self, task_id: str) -> asyncio.Future[str | None]:
        """A future for the reply of ``task_id``: its final record, or None (re-read now)."""
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        record = self.arrived.get(task_id)
        if record is not None:
            fut.set_result(record)
        else:
            self.waiters.setdefault(task_id, []).append(fut)
        return fut

    def forget(self, task_id: str, fut: asyncio.Future[str | None]) -> None:
        futs = self.waiters.get(task_id)
        if futs is not None:
            with contextlib.suppress(ValueError):
                futs.remove(fut)
            if not futs:
                del self.waiters[task_id]

    def _recheck(self) -> None:
        waiters, self.waiters = self.waiters, {}
        for futs in waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)

    async def _read(self) -> None:
        assert self.ready is not None
        failures = 0
        while True:
            try:
                msg = await self.pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: redis-py reconnects and resubscribes
                failures += 1
                self.live = False
                logger.debug("task reply channel: %s", exc)
                self._recheck()
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            failures = 0
            if msg is None:
                continue
            kind = msg["type"]
            if kind == "message":
                task_id, _, record = msg["data"].partition(" ")
                if self.expected.pop(task_id, None) is not None:  # kept for its first wait
                    self.arrived[task_id] = record
                    if len(self.arrived) > _REPLY_CACHE:
                        self.arrived.popitem(last=False)
                for fut in self.waiters.pop(task_id, ()):
                    if not fut.done():
                        fut.set_result(record)
            elif kind == "subscribe":
                self.generation += 1
                self.live = True
                if not self.ready.done():
                    self.ready.set_result(None)
                else:  # subscribed again after a reconnection: replies may have been lost
                    self._recheck()

    async def close(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        self.ready = None
        self.live = False
        self._recheck()


class _Watch:
    """One subscription connection shared by every waiter of tasks this client did not queue:
    each waited task's ``{p}:done:<id>`` channel is subscribed on it while someone waits (so
    thousands of concurrent waits cost one connection, not one each).

    :meth:`listen` returns once Redis confirmed the subscription (the caller then reads the
    task: no completion can slip in between). A reconnection (redis-py subscribes again)
    resolves every waiter with None: re-read now.
    """

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.pubsub: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.waiters: dict[str, list[asyncio.Future[str | None]]] = {}
        self.confirmed: dict[str, asyncio.Future[None]] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        # one SUBSCRIBE at a time (the first opens the connection: concurrent ones would each
        # take a connection from the pool), those made meanwhile share the next one
        self._subscriber = Batcher(self._subscribe_many)

    async def _subscribe_many(self, channels: Sequence[str]) -> list[None]:
        if self.pubsub is None:
            self.pubsub = self.backend.client.pubsub()
        await self.pubsub.subscribe(*channels)
        return [None] * len(channels)

    async def listen(self, task_id: str, timeout: float | None) -> asyncio.Future[str | None]:
        """A future for the done message of ``task_id`` (its final record, or None: re-read),
        returned once the subscription is confirmed; TimeoutError after ``timeout``."""
        loop = asyncio.get_running_loop()
        channel = self.backend._key("done", task_id)
        fut: asyncio.Future[str | None] = loop.create_future()
        futs = self.waiters.setdefault(channel, [])
        futs.append(fut)
        try:
            confirmed = self.confirmed.get(channel)
            if confirmed is None:
                confirmed = self.confirmed[channel] = loop.create_future()
                try:
                    await self._subscriber(channel)
                except BaseException as exc:  # every waiter of this channel gets the error
                    if self.confirmed.get(channel) is confirmed:
                        del self.confirmed[channel]
                    if not confirmed.done():
                        if isinstance(exc, Exception):
                            confirmed.set_exception(exc)
                            confirmed.exception()  # retrieved: this waiter raises it below
                        else:
                            confirmed.cancel()
                    raise
                if self.reader is None or self.reader.done():
                    self.reader = loop.create_task(self._read(), name="pulsar-tasks-watch")
                    self.reader._log_destroy_pending = False  # type: ignore[attr-defined]
            await asyncio.wait_for(asyncio.shield(confirmed), timeout)
        except BaseException:
            self.forget(task_id, fut)
            raise
        return fut

    def again(self, task_id: str, old: asyncio.Future[str | None]) -> asyncio.Future[str | None]:
        """A fresh future for a waiter whose future resolved without a final record."""
        channel = self.backend._key("done", task_id)
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        futs = self.waiters.setdefault(channel, [])
        with contextlib.suppress(ValueError):
            futs.remove(old)
        futs.append(fut)
        return fut

    def forget(self, task_id: str, fut: asyncio.Future[str | None]) -> None:
        channel = self.backend._key("done", task_id)
        futs = self.waiters.get(channel)
        if futs is None:
            return
        with contextlib.suppress(ValueError):
            futs.remove(fut)
        if not futs:  # the last waiter of this task: unsubscribe
            del self.waiters[channel]
            self.confirmed.pop(channel, None)
            if self.pubsub is not None:
                task = asyncio.ensure_future(self._unsubscribe(channel))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def _unsubscribe(self, channel: str) -> None:
        with contextlib.suppress(Exception):
            await self.pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        failures = 0
        while self.waiters or self.confirmed:
            try:
                msg = await self.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: redis-py reconnects and resubscribes
                failures += 1
                logger.debug("task watch channel: %s", exc)
                self._recheck()
                await asyncio.sleep(min(1.0, 0.05 * 2**failures))
                continue
            failures = 0
            if msg is None:
                continue
            kind, channel = msg["type"], msg["channel"]
            if kind == "message":
                for fut in self.waiters.get(channel, ()):
                    if not fut.done():
                        fut.set_result(msg["data"])
            elif kind == "subscribe":
                confirmed = self.confirmed.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                else:  # subscribed again after a reconnection: messages may have been lost
                    for fut in self.waiters.get(channel, ()):
                        if not fut.done():
                            fut.set_result(None)

    def _recheck(self) -> None:
        for futs in self.waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_result(None)

    async def close(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        for task in list(self._pending):
            with contextlib.suppress(BaseException):
                await task
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        self._recheck()
        self.confirmed.clear()


class RedisBackend(Backend):
    """Tasks in Redis (``redis://host:port/db``; ``?prefix=name`` namespaces the keys)."""

    scheme = "redis"

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            raise BackendError(
                "the redis backend needs redis-py: pip install 'pulsar-tasks[redis]'"
            ) from None
        self.redis_url, self.prefix, self.max_connections = _split_url(url)
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        # a script's name -> the variant this object runs (with XADD of task events or not)
        self._names = {n: f"{n}+ev" if self.events else n for n in SCRIPTS if "+" not in n}
        # concurrent calls share round trips: those made while a batch is in flight go
        # together in the next one
        self._completer = Batcher(self._complete_many)
        self._enqueuer = Batcher(self._enqueue_many)
        self._getter = Batcher(self._get_many)
        self._replies: _Replies | None = None
        self._watch: _Watch | None = None
        # the hot-path calls (enqueue, get, claim, complete) on connections of their own, each
        # from a caller with one call in flight (see _redis_conn)
        self._lanes: dict[str, Lane] = {}
        from redis import exceptions

        self.transient = (
            exceptions.ConnectionError,
            exceptions.TimeoutError,
            exceptions.BusyLoadingError,
            OSError,
        )
        self.failures = (exceptions.RedisError,)

    @property
    def client(self) -> Any:
        """The ``redis.asyncio.Redis`` client (created on first use, on the running loop)."""
        if self._client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import ConnectionError, TimeoutError

            # calls beyond max_connections wait for a pooled connection (within the retry
            # time) instead of failing with MaxConnectionsError; redis-py retries a broken
            # connection twice, longer outages are the guard's (see guarded())
            pool = BlockingConnectionPool.from_url(
                self.redis_url,
                max_connections=self.max_connections,
                timeout=self.retry_timeout,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                retry_on_error=[ConnectionError, TimeoutError, OSError],
                health_check_interval=10,
                socket_connect_timeout=2.0,
                decode_responses=True,
            )
            self._client = Redis(connection_pool=pool)
            for name, source in SCRIPTS.items():
                self._scripts[name] = self._client.register_script(source)
        return self._client

    def _script(self, name: str, *args: Any) -> Any:
        client = self.client
        return self._scripts[self._names[name]](args=[self.prefix, *args], client=client)

    def _lane(self, name: str) -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = Lane(self.client.connection_pool)
        return lane

    async def _eval(self, lane: str, name: str, *args: str | int | float) -> Any:
        """The script ``name`` run with ``args`` (after the prefix) on the lane ``lane``; the
        script is loaded again when Redis lost it (a restart)."""
        from redis.exceptions import NoScriptError

        name = self._names[name]
        packed = pack("EVALSHA", SHAS[name], 0, self.prefix, *args)
        try:
            return (await self._lane(lane).call(packed))[0]
        except NoScriptError:
            await self.client.script_load(SCRIPTS[name])
            return (await self._lane(lane).call(packed))[0]

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def close(self) -> None:
        if self._replies is not None:
            replies, self._replies = self._replies, None
            await replies.close()
        if self._watch is not None:
            watch, self._watch = self._watch, None
            await watch.close()
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            await lane.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- producers -----------------------------------------------------------------------------
    @guarded
    async def enqueue(self, task: Task, *, unique: bool = False, reply: bool = False) -> bool:
        row = {k: str(v) for k, v in task.to_row().items() if v is not None}
        if row.get("priority") == "0":
            del row["priority"]  # the default: a record as before priorities (see _schedule)
        replies = None
        if reply:
            if self._replies is None:
                self._replies = _Replies(self)
            replies = self._replies
            row["reply_to"] = replies.channel
            replies.expect(task.id)
        item = (
            task.id,
            "1" if unique else "0",
            task.queue,
            repr(task.eta),
            repr(task.time_queued),
            task.overlap_key or "",
            row,
        )
        result: Any = None
        try:
            result = await self._enqueuer(item)
        finally:
            if replies is not None and result != 1:  # not stored: no reply will come
                replies.expected.pop(task.id, None)
        if result == -1:
            # the same record: an earlier try of this very call was stored before its reply
            # was lost (the guard retried it); anything else is another task's id
            stored = await self.client.hmget(self._key("t", task.id), "time_queued", "payload")
            if stored != [row.get("time_queued"), row.get("payload")]:
                raise DuplicateTask(f"a task with id {task.id!r} exists already")
            return True
        if isinstance(result, str):
            raise JobOverlap(
                f"job {task.name!r} already has task {result} with the same arguments queued or "
                f"running (overlap=False)"
            )
        return bool(result)

    async def _enqueue_many(self, items: Sequence[Sequence[Any]]) -> Sequence[Any]:
        return list(await self._eval("enqueue", "enqueue", json.dumps(items)))

    @guarded
    async def enqueue_flow(self, tasks: Sequence[Task], *, reply: bool = False) -> None:
        replies = None
        if reply:
            if self._replies is None:
                self._replies = _Replies(self)
            replies = self._replies
        items = []
        for task in tasks:
            row = {k: str(v) for k, v in task.to_row().items() if v is not None}
            if replies is not None and task is tasks[-1]:  # the record (see Backend)
                row["reply_to"] = replies.channel
                replies.expect(task.id)
            items.append(
                (task.id, task.queue, repr(task.eta), repr(task.time_queued), row, task.depends_on)
            )
        ok = False
        try:
            result = await self._script(
                "enqueue_flow", self.now(), self.result_ttl, json.dumps(items)
            )
            ok = result[0] == "ok"
        finally:
            if replies is not None and not ok:
                replies.expected.pop(tasks[-1].id, None)
        if result[0] == "duplicate":
            mine = tasks[0]
            if result[1] == mine.id:
                # the same record: an earlier try of this very call was stored before its
                # reply was lost (the guard retried it); anything else is another task
                key = self._key("t", mine.id)
                stored = await self.client.hmget(key, "time_queued", "payload")
                if stored == [str(mine.time_queued), mine.payload]:
                    return
            raise DuplicateTask(f"a task with id {result[1]!r} exists already")
        if result[0] == "unknown":
            raise ValueError(
                f"depends_on: no task {result[1]!r} (unknown, or its record expired): queue "
                f"the dependency first and pass its id"
            )

    @guarded
    async def get(self, task_id: str) -> Task | None:
        row = await self._getter(task_id)
        return Task.from_row(row) if row else None

    async def _get_many(self, ids: Sequence[str]) -> Sequence[Any]:
        # one JSON string per record: decoded in C, not as 40 RESP items in Python
        return [json.loads(text) for text in await self._eval("get", "get", *ids)]

    @guarded
    async def list(
        self,
        status: TaskState | str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
    ) -> list[Task]:
        wanted = None if status is None else TaskState(status)
        out: list[Task] = []
        start = 0
        batch = max(100, int(limit))
        while len(out) < limit:
            ids = await self.client.zrevrange(self._key("all"), start, start + batch - 1)
            if not ids:
                break
            start += batch
            pipe = self.client.pipeline(transaction=False)
            for task_id in ids:
                pipe.hgetall(self._key("t", task_id))
            rows = await pipe.execute()
            gone = []
            for task_id, row in zip(ids, rows, strict=True):
                if not row:
                    gone.append(task_id)
                    continue
                try:
                    task = Task.from_row(row)
                except (ValueError, KeyError):
                    continue
                if since is not None and (task.time_finished is None or task.time_finished < since):
                    continue
                if wanted is None or task.status == wanted:
                    out.append(task)
                    if len(out) >= limit:
                        break
            if gone:  # expired results: drop them from the index
                await self.client.zrem(self._key("all"), *gone)
        return out

    @guarded
    async def revoke(self, task_id: str) -> TaskState | None:
        result = await self._script("revoke", task_id, self.now(), self.result_ttl)
        return TaskState(result) if result else None

    # -- operators ------------------------------------------------------------------------------
    @guarded
    async def purge(self, queue: str) -> int:
        total = 0
        now = repr(self.now())
        while True:
            purged, seen = await self._script("purge", queue, now, self.result_ttl, _PURGE_CHUNK)
            total += int(purged)
            if int(seen) < _PURGE_CHUNK:
                return total

    @guarded
    async def requeue(self, task_id: str) -> TaskState | None:
        result = await self._script("requeue", task_id, repr(self.now()))
        if not result:
            return None
        if result.startswith("overlap:"):
            task = await self.get(task_id)
            raise JobOverlap(
                f"job {task.name if task else '?'!r} already has task {result[8:]} with the "
                f"same arguments queued or running (overlap=False)"
            )
        state = TaskState(result)
        if state in REQUEUEABLE and self._replies is not None:
            self._replies.arrived.pop(task_id, None)  # its old final record is not the answer
        return state

    @guarded
    async def heartbeat(self, worker: str, info: dict[str, Any], ttl: float) -> None:
        now = self.now()
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key("w", worker), json.dumps(info), px=max(1, int(ttl * 1000)))
        pipe.zadd(self._key("workers"), {worker: now + ttl})
        pipe.zremrangebyscore(self._key("workers"), "-inf", now)
        await pipe.execute()

    @guarded
    async def forget_worker(self, worker: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._key("w", worker))
        pipe.zrem(self._key("workers"), worker)
        await pipe.execute()

    @guarded
    async def workers(self) -> builtins.list[dict[str, Any]]:
        ids = sorted(await self.client.zrangebyscore(self._key("workers"), self.now(), "+inf"))
        if not ids:
            return []
        return decode_workers(await self.client.mget([self._key("w", i) for i in ids]))

    @guarded
    async def wait(self, task_id: str, timeout: float | None) -> Task | None:
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        replies = self._replies
        if replies is not None and (task_id in replies.expected or task_id in replies.arrived):
            # queued by this client: the reply comes on its channel
            task = await self._wait_reply(replies, task_id, end, timeout)
            # served: a later wait reads the record (an operator may requeue the task: the
            # outcome of its next run is not this reply), and a late reply is not kept
            replies.expected.pop(task_id, None)
            replies.arrived.pop(task_id, None)
            return task
        if self._watch is None:
            self._watch = _Watch(self)
        watch = self._watch
        # the subscription is confirmed before the task is read: nothing can slip in between
        fut = await watch.listen(task_id, None if end is None else max(0.0, end - loop.time()))
        try:
            while True:
                task = await self.get(task_id)
                if task is None or task.done:
                    return task
                remaining = 1.0 if end is None else min(1.0, end - loop.time())
                if remaining <= 0:
                    raise TimeoutError(f"task {task_id} not done after {timeout}s")
                # a message, or a re-check every second (a message lost to a reconnection)
                await asyncio.wait((fut,), timeout=remaining)
                if fut.done():
                    record = fut.result()
                    final, expired = (None, False) if record is None else _final(record, self.now())
                    if expired:
                        return None
                    if final is not None:
                        return final
                    fut = watch.again(task_id, fut)
        finally:
            watch.forget(task_id, fut)

    async def _wait_reply(
        self, replies: _Replies, task_id: str, end: float | None, timeout: float | None
    ) -> Task | None:
        loop = asyncio.get_running_loop()
        covered = replies.covers(task_id)
        await replies.subscribe()
        fut = replies.listen(task_id)
        try:
            if not covered and not fut.done():  # queued before the channel was live
                task = await self.get(task_id)
                if task is None or task.done:  # ended before the subscription: no reply
                    replies.expected.pop(task_id, None)
                    return task
            while True:
                remaining = 1.0 if end is None else min(1.0, end - loop.time())
                if remaining <= 0:
                    raise TimeoutError(f"task {task_id} not done after {timeout}s")
                if not fut.done():  # (a reply that came first is read at once)
                    await asyncio.wait((fut,), timeout=remaining)
                record = fut.result() if fut.done() else None
                if record is not None:
                    task, expired = _final(record, self.now())
                    if expired:
                        replies.arrived.pop(task_id, None)
                        return None  # kept past its TTL in the reply cache: gone
                    if task is not None:
                        return task
                    replies.arrived.pop(task_id, None)  # unreadable: not to be served again
                # no reply within a second, a reconnection, or an unreadable reply: re-read
                task = await self.get(task_id)
                if task is None or task.done:
                    replies.expected.pop(task_id, None)
                    return task
                if fut.done():
                    replies.forget(task_id, fut)
                    await replies.subscribe()
                    fut = replies.listen(task_id)
        finally:
            replies.forget(task_id, fut)

    @guarded
    async def counts(self) -> dict[str, int]:
        # tallied inside Redis, a chunk of ids per call: no record crosses the network
        counts: dict[str, int] = {}
        start = 0
        while True:
            out = await self._script("counts", start, start + _COUNT_CHUNK - 1)
            for status, n in zip(out[2::2], out[3::2], strict=True):
                counts[status] = counts.get(status, 0) + int(n)
            if not out[0]:
                break
            start += int(out[0]) - int(out[1])  # the gone ones left the index
        return counts

    @guarded
    async def queue_counts(self) -> dict[str, dict[str, int]]:
        # the same walk as counts(), reading each record's queue too: no per-queue tally is
        # kept by the scripts that change a status, so this costs what counts() costs
        counts: dict[str, dict[str, int]] = {}
        start = 0
        while True:
            out = await self._script("counts", start, start + _COUNT_CHUNK - 1, "1")
            for queue, status, n in zip(out[2::3], out[3::3], out[4::3], strict=True):
                states = counts.setdefault(queue, {})
                states[status] = states.get(status, 0) + int(n)
            if not out[0]:
                break
            start += int(out[0]) - int(out[1])  # the gone ones left the index
        return counts

    @guarded
    async def pending(self, queues: Sequence[str]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.zcard(self._key("q", queue))
            pipe.smembers(self._key("prios", queue))
        out = await pipe.execute()
        total = sum(int(n) for n in out[::2])
        keys = [
            self._key("qp", str(pr), queue)
            for queue, prios in zip(queues, out[1::2], strict=True)
            for pr in prios
        ]
        if keys:  # the pending sets of priorities above 0 (see _schedule)
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.zcard(key)
            total += sum(int(n) for n in await pipe.execute())
        return total

    # -- workers -------------------------------------------------------------------------------
    @guarded
    async def claim(self, queues: Sequence[str], worker: str, lease: float, limit: int) -> Claim:
        rows, nxt = await self._eval(
            "claim", "claim", *self._claim_args(self.now(), queues, worker, lease, limit)
        )
        return self._claimed(rows, nxt)

    def _claim_args(
        self, now: float | str, queues: Sequence[str], worker: str, lease: float, limit: int
    ) -> tuple[str | int | float, ...]:
        """The claim script's arguments after the prefix (``now=''``: the server's clock)."""
        return (now, lease, limit, worker, os.urandom(8).hex(), self.result_ttl, *queues)

    def _blpop_args(self, queues: Sequence[str], timeout: float) -> tuple[tuple[str, ...], float]:
        """BLPOP's keys and timeout for an idle wait on ``queues``."""
        return tuple(self._key("wake", q) for q in queues), max(0.01, round(timeout, 2))

    @staticmethod
    def _claimed(rows: Sequence[str], nxt: str) -> Claim:
        tasks = []
        for task_id, text in zip(rows[::2], rows[1::2], strict=True):
            try:
                row = json.loads(text)
            except ValueError:  # not JSON: the worker fails the task as an invalid record
                row = {"id": task_id, "token": ""}
            tasks.append(row)
        return Claim(tasks, float(nxt) if nxt else None)

    @guarded
    async def release_worker(self, worker: str) -> int:
        return int(await self._script("release_worker", self.now(), self.result_ttl, worker))

    @guarded
    async def renew(self, leases: dict[str, str], lease: float) -> dict[str, str]:
        if not leases:
            return {}
        flat: list[str] = []
        for task_id, token in leases.items():
            flat += [task_id, token]
        out = await self._script("renew", self.now(), lease, *flat)
        return dict(zip(out[::2], out[1::2], strict=True))

    @guarded
    async def complete(
        self,
        task_id: str,
        token: str,
        status: TaskState,
        *,
        result: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
    ) -> bool:
        if status not in FINAL:
            raise ValueError(f"complete() needs a final state, not {status}")
        return bool(
            await self._completer(
                (task_id, token, str(status), result or "", error or "", traceback or "")
            )
        )

    async def _complete_many(self, items: Sequence[tuple[str, ...]]) -> Sequence[Any]:
        return list(
            await self._eval("complete", "complete", self.now(), self.result_ttl, json.dumps(items))
        )

    @guarded
    async def retry(
        self, task_id: str, token: str, eta: float, *, error: str, traceback: str | None
    ) -> bool:
        return bool(await self._script("retry", task_id, token, eta, error, traceback or ""))

    @guarded
    async def release(self, task_id: str, token: str) -> bool:
        return bool(await self._script("release", task_id, token, self.now()))

    # -- scheduling (see _schedule) ----------------------------------------------------------
    @guarded
    async def postpone(self, task_id: str, token: str, eta: float) -> bool:
        return bool(await self._script("release", task_id, token, repr(float(eta))))

    @guarded
    async def acquire_rate(self, key: str, limit: int, period: float) -> float:
        return float(await self._script("acquire_rate", key, int(limit), repr(float(period))))

    @guarded
    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        keys, seconds = self._blpop_args(queues, timeout)
        await self.client.blpop(keys, timeout=seconds)

    @guarded
    async def wait_and_claim(
        self, queues: Sequence[str], worker: str, lease: float, limit: int, timeout: float
    ) -> Claim:
        # one round trip: Redis runs the claim as soon as BLPOP returns (commands of a
        # connection run in order), with its own clock since ``now`` would be stale by then
        from redis.exceptions import NoScriptError

        keys, seconds = self._blpop_args(queues, timeout)
        args = self._claim_args("", queues, worker, lease, limit)
        packed = pack("BLPOP", *keys, seconds) + pack(
            "EVALSHA", SHAS[self._names["claim"]], 0, self.prefix, *args
        )
        try:
            _, (rows, nxt) = await self._lane("claim").call(packed, 2)
        except NoScriptError:  # Redis restarted and lost its scripts: the plain call loads it
            return await self.claim(queues, worker, lease, limit)
        return self._claimed(rows, nxt)

    # -- jobs and maintenance ------------------------------------------------------------------
    @guarded
    async def register_jobs(self, metas: dict[str, dict[str, Any]]) -> None:
        if metas:
            await self.client.hset(
                self._key("jobs"), mapping={k: json.dumps(v) for k, v in metas.items()}
            )

    @guarded
    async def jobs(self) -> dict[str, dict[str, Any]]:
        raw = await self.client.hgetall(self._key("jobs"))
        return {k: json.loads(v) for k, v in raw.items()}

    @guarded
    async def put_raw(self, row: dict[str, Any]) -> None:
        task_id = str(row["id"])
        key = self._key("t", task_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={k: "" if v is None else v for k, v in row.items()})
        pipe.zadd(self._key("q", str(row.get("queue") or "default")), {task_id: 0})
        pipe.zadd(self._key("all"), {task_id: self.now()})
        await pipe.execute()

    @guarded
    async def flush(self) -> None:
        keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await self.client.delete(*keys[i : i + 500])

    # -- progress and events -------------------------------------------------------------------
    @guarded
    async def set_progress(
        self, updates: Sequence[tuple[str, str, float | None, str | None]]
    ) -> builtins.list[bool]:
        items = [
            (task_id, token, "" if progress is None else repr(float(progress)), meta or "")
            for task_id, token, progress, meta in updates
        ]
        out = await self._script("progress", self.now(), json.dumps(items))
        return [bool(n) for n in out]

    def event_reader(self, after: str | None = None) -> EventReader:
        return _RedisEvents(self, after)


class _RedisEvents(EventReader):
    """``XREAD BLOCK`` on the stream ``{p}:events`` after an entry id (on a pooled
    connection while it blocks)."""

    def __init__(self, backend: RedisBackend, after: str | None) -> None:
        self.backend = backend
        self.key = backend._key("events")
        self.cursor: str | None = None if after is None else (after if after != "0" else "0-0")

    @guarded
    async def start(self) -> str:
        """Fix "now" (the last entry of the stream) as the start, if not given; returns it."""
        if self.cursor is None:
            last = await self.backend.client.xrevrange(self.key, "+", "-", count=1)
            self.cursor = last[0][0] if last else "0-0"
        return self.cursor

    @guarded
    async def read(self, timeout: float) -> list[TaskEvent]:
        cursor = await self.start()
        found = await self.backend.client.xread(
            {self.key: cursor}, count=500, block=max(1, int(timeout * 1000))
        )
        out = []
        for _, entries in found or ():
            for entry_id, fields in entries:
                self.cursor = entry_id
                out.append(TaskEvent.from_row({**fields, "id": entry_id}))
        return out

    # the guard needs these of a backend
    @property
    def transient(self) -> tuple[type[BaseException], ...]:
        return self.backend.transient

    @property
    def failures(self) -> tuple[type[BaseException], ...]:
        return self.backend.failures

    @property
    def retry_timeout(self) -> float:
        return self.backend.retry_timeout

    def describe(self) -> str:
        return self.backend.describe()
