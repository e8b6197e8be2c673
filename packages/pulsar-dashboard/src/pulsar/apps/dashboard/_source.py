"""Where the dashboard's numbers come from: one guest connection to a running arbiter.

How it works
------------
A :class:`Source` owns a private event loop in a daemon thread. Every ``interval`` seconds it
sends one ``info`` request to the attached arbiter (:func:`pulsar.connect`; the arbiter's
``info`` already gathers its monitors' and workers' info) and, when pulsar-tasks is installed
and a task backend is known, reads the backend (counts by queue and state, pending tasks per
queue, the workers' heartbeats); the task workers' run-time histograms are added up by
:class:`~._runtimes.RunTimes`. It turns that into a plain, JSON-ready *snapshot*
(:meth:`Source.snapshot`) that the pages, ``/api/state`` and ``/metrics`` all read, so every
view shows the same numbers.

CPU % and memory are read here with psutil, by pid (the attached application runs on this
machine: its mailbox is a unix socket), and fall back to the ``system`` key of an actor's info.
Counters of workers that were replaced are kept (per application) so that request and task
totals never go backwards when a worker dies: the dashboard's totals are those of every worker
it has seen. The last ``history`` samples of those totals make the rate charts. HTTP responses
by status and latency histograms are summed the same way (:class:`~._http.HttpTotals`).

Actions (stop or recycle an actor, retry or revoke a task) are coroutines run on the same loop
(:meth:`Source.call`), from the WSGI threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import pulsar

from ._http import HttpTotals
from ._runtimes import RunTimes

__all__ = ["AttachError", "Source", "find_mailbox", "recycle_me", "tasks_installed"]


class AttachError(pulsar.PulsarError):
    """The dashboard cannot attach to the application (no mailbox, no secret, refused...)."""


def tasks_installed() -> bool:
    """True when pulsar-tasks can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("pulsar.apps.tasks") is not None
    except (ImportError, ValueError):
        return False


def find_mailbox(target: str) -> str:
    """The mailbox socket path of ``target``: a pid file (``<pidfile>.mailbox``) or a socket.

    Raises:
        AttachError: nothing usable at ``target``.
    """
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        raise AttachError(
            f"cannot attach to {target}: {exc.strerror or exc} (give the application's "
            "--pidfile or its mailbox socket)"
        ) from None
    if stat.S_ISSOCK(mode):
        return target
    mailbox = f"{target}.mailbox"
    try:
        with open(mailbox, encoding="utf-8") as f:
            path = (f.read(4096).strip().splitlines() or [""])[0].strip()
    except FileNotFoundError:
        raise AttachError(
            f"cannot attach to {target}: no {os.path.basename(mailbox)} next to it (start the "
            "application with --pidfile, or give its mailbox socket)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttachError(f"cannot read {mailbox}: {exc}") from None
    try:
        if path and stat.S_ISSOCK(os.stat(path).st_mode):
            return path
    except OSError:
        pass
    raise AttachError(f"{mailbox} names {path or 'no socket'}: the application has exited?")


async def recycle_me(actor: Any) -> Any:
    """Run in a worker (the ``run`` command): ask its monitor to replace it, new one first."""
    return await actor.send("monitor", "recycle")


def _cpu_seconds(system: dict[str, Any]) -> float | None:
    user, sys_ = system.get("cpu_times_user"), system.get("cpu_times_system")
    if user is None or sys_ is None:
        return None
    return float(user) + float(sys_)


class _Proc:
    """CPU % and memory of one pid, psutil first, then the actor's own ``system`` numbers."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.proc: Any = None
        self.last: tuple[float, float] | None = None  # (wall, cpu seconds) from info
        try:
            import psutil

            self.proc = psutil.Process(pid)
            self.proc.cpu_percent(None)
        except Exception:
            self.proc = None

    def sample(self, system: dict[str, Any] | None) -> tuple[float | None, int | None]:
        if self.proc is not None:
            try:
                with self.proc.oneshot():
                    return self.proc.cpu_percent(None), int(self.proc.memory_info().rss)
            except Exception:
                self.proc = None
        if not system:
            return None, None
        memory = system.get("memory_rss")
        cpu = _cpu_seconds(system)
        now = time.monotonic()
        percent = None
        if cpu is not None:
            if self.last is not None and now > self.last[0]:
                percent = max(0.0, 100.0 * (cpu - self.last[1]) / (now - self.last[0]))
            self.last = (now, cpu)
        return percent, int(memory) if memory is not None else None


class _LocalLink:
    """The mailbox of the worker serving the dashboard, when it runs inside the application it
    shows (a :class:`DashboardServer` in the application's ``MultiApp``): requests hop to the
    worker's loop and go to its own arbiter, no guest connection needed."""

    kind = "local"

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.aid = actor.aid
        self.state = pulsar.ActorState.RUNNING

    async def send(self, target: Any, action: str, *args: Any, **kwargs: Any) -> Any:
        async def ask() -> Any:
            return await self.actor.send(target, action, *args, **kwargs)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(ask(), self.actor.loop))

    async def aclose(self) -> None:
        """Nothing to close: the worker's mailbox is the worker's."""


class Source:
    """The attached application, read every ``interval`` seconds on a private loop.

    Args:
        attach: the application's pid file or mailbox socket (None: the application of
            ``actor``, the worker serving the dashboard).
        task_backend: the task backend URL (None: asked to the attached task queue, if any).
        interval: seconds between two reads.
        history: how many samples the rate charts keep.
    """

    def __init__(
        self,
        attach: str | None,
        *,
        actor: Any = None,
        task_backend: str | None = None,
        interval: float = 1.0,
        history: int = 300,
    ) -> None:
        if attach is None and actor is None:
            raise AttachError("a Source needs an application to attach to, or a local actor")
        self.attach = attach
        self.actor = actor
        self.task_backend = task_backend
        self.interval = float(interval)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: Any = None
        self.tasks_client: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stopping = False
        self._snapshot: dict[str, Any] = {"connected": False, "error": "not read yet"}
        self._raw: dict[str, Any] = {}
        self._procs: dict[int, _Proc] = {}
        # aid -> (app, requests, tasks processed) of the workers seen in the last read
        self._seen: dict[str, tuple[str, int, int]] = {}
        self._retired: dict[str, list[int]] = {}  # app -> [requests, tasks] of gone workers
        self._history: dict[str, deque[tuple[float, int, int]]] = {}
        self._history_len = history
        self._task_history: deque[tuple[float, int, int]] = deque(maxlen=history)
        # HTTP responses by status and latency histograms (replaced workers' kept), per app
        self._http = HttpTotals(history)
        self._run_times = RunTimes(history)  # the task run-time histograms (see _runtimes)
        self.reads = 0

    # -- life -------------------------------------------------------------------------------------
    def start(self) -> Source:
        """Start the reading thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="pulsar-dashboard-source", daemon=True
            )
            self._thread.start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait for the first read (or the first failure to read); True when it came."""
        return self._ready.wait(timeout)

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._stopping = True
        loop = self.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(lambda: None)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        try:
            while not self._stopping:
                started = time.monotonic()
                try:
                    await self.refresh()
                except Exception as exc:  # shown on every page until the next good read
                    await self._drop_client()
                    with self._lock:
                        self._snapshot = {
                            **self._snapshot,
                            "connected": False,
                            "error": str(exc) or type(exc).__name__,
                            "time": time.time(),
                        }
                self._ready.set()
                delay = self.interval - (time.monotonic() - started)
                await asyncio.sleep(max(0.05, delay))
        finally:
            await self._drop_client()
            if self.tasks_client is not None:
                try:
                    await self.tasks_client.close()
                except Exception:
                    pass

    async def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.aclose(), 2)
            except Exception:
                pass

    async def _connect(self) -> Any:
        if self.attach is None:
            if self.client is None:
                self.client = _LocalLink(self.actor)
        elif self.client is None or self.client.state == pulsar.ActorState.CLOSED:
            address = find_mailbox(self.attach)
            try:
                self.client = await pulsar.connect(address, name="pulsar-dashboard", timeout=5)
            except pulsar.ConnectError as exc:
                raise AttachError(str(exc)) from None
        return self.client

    def call(
        self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, timeout: float = 15
    ) -> Any:
        """Run ``await fn(*args)`` on the source's loop from another thread; its result."""
        if self.loop is None:
            raise AttachError("the dashboard is not attached yet")
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            fn(*args), self.loop
        )
        return future.result(timeout)

    # -- reading ----------------------------------------------------------------------------------
    async def refresh(self) -> dict[str, Any]:
        """Read the application now; the new snapshot."""
        client = await self._connect()
        info = await asyncio.wait_for(client.send("arbiter", "info"), 10)
        snapshot = self._build(info)
        snapshot["tasks"] = await self._read_tasks(client, snapshot)
        snapshot["guest"] = client.aid
        with self._lock:
            self._raw = info
            self._snapshot = snapshot
        self.reads += 1
        return snapshot

    def snapshot(self) -> dict[str, Any]:
        """The last snapshot (a shallow copy; do not mutate nested values)."""
        with self._lock:
            return dict(self._snapshot)

    def actor_info(self, aid: str) -> dict[str, Any] | None:
        """The full ``info`` of actor ``aid`` from the last read (None when unknown)."""
        with self._lock:
            info = self._raw
        if not info:
            return None
        if info.get("aid") == aid:
            return {k: v for k, v in info.items() if k not in ("monitors", "actors")}
        for monitor in (info.get("monitors") or {}).values():
            if monitor.get("aid") == aid:
                return {k: v for k, v in monitor.items() if k != "workers"}
            for worker in monitor.get("workers") or ():
                if worker.get("aid") == aid:
                    return dict(worker)
        for actor in info.get("actors") or ():
            if actor.get("aid") == aid:
                return dict(actor)
        return None

    def _sample(self, info: dict[str, Any]) -> tuple[float | None, int | None]:
        pid = info.get("pid")
        if not isinstance(pid, int):
            return None, None
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = _Proc(pid)
        return proc.sample(info.get("system"))

    def _actor(self, info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        cpu, memory = self._sample(info)
        server = info.get("server") or {}
        tasks = info.get("tasks") or {}
        return {
            "aid": info.get("aid"),
            "name": info.get("name"),
            "kind": info.get("kind"),
            "pid": info.get("pid"),
            "state": str(info.get("state") or "UNKNOWN"),
            "uptime": info.get("uptime"),
            "cpu_percent": None if cpu is None else round(cpu, 1),
            "memory_rss": memory,
            "concurrency": info.get("concurrency"),
            "requests": server.get("requests") if server else None,
            "connections": server.get("connections") if server else None,
            "accepted": server.get("accepted") if server else None,
            "aborted": server.get("aborted") if server else None,
            "idle_closed": server.get("idle_closed") if server else None,
            "server_state": server.get("state") if server else None,
            "tasks_processed": tasks.get("processed") if tasks else None,
            "tasks_running": tasks.get("running") if tasks else None,
            "messages": (info.get("counters") or {}).get("received"),
            **extra,
        }

    def _build(self, info: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        arbiter = self._actor(info)
        apps: list[dict[str, Any]] = []
        seen: dict[str, tuple[str, int, int]] = {}
        for app_name, monitor in sorted((info.get("monitors") or {}).items()):
            workers = [self._actor(w) for w in monitor.get("workers") or ()]
            for w in workers:
                seen[str(w["aid"])] = (
                    app_name,
                    int(w["requests"] or 0),
                    int(w["tasks_processed"] or 0),
                )
            apps.append(
                self._actor(
                    monitor,
                    app=app_name,
                    restarts=int(monitor.get("restarts") or 0),
                    crashes=int(monitor.get("crashes") or 0),
                    workers_target=monitor.get("workers_target"),
                    monitor_state=monitor.get("monitor_state"),
                    is_server=any(w["requests"] is not None for w in workers),
                    is_tasks=any(w["tasks_processed"] is not None for w in workers),
                    addresses=sorted(
                        {
                            a
                            for w in monitor.get("workers") or ()
                            for a in ((w.get("server") or {}).get("addresses") or ())
                        }
                    ),
                    workers=workers,
                )
            )
        # workers gone since the last read: keep their counts in their application's totals
        for aid, (app_name, requests, processed) in self._seen.items():
            if aid not in seen:
                retired = self._retired.setdefault(app_name, [0, 0])
                retired[0] += requests
                retired[1] += processed
        self._seen = seen
        for app in apps:
            retired = self._retired.get(app["app"], [0, 0])
            app["requests_total"] = retired[0] + sum(
                int(w["requests"] or 0) for w in app["workers"]
            )
            app["tasks_total"] = retired[1] + sum(
                int(w["tasks_processed"] or 0) for w in app["workers"]
            )
            app["connections_open"] = sum(int(w["connections"] or 0) for w in app["workers"])
            history = self._history.setdefault(app["app"], deque(maxlen=self._history_len))
            history.append((now, app["requests_total"], app["tasks_total"]))
            app["history"] = list(history)
            app["request_rate"] = _rate(history, 1)
            app["task_rate"] = _rate(history, 2)
        http = self._http.update(
            now,
            (
                (app_name, ((str(w.get("aid")), w.get("wsgi")) for w in m.get("workers") or ()))
                for app_name, m in sorted((info.get("monitors") or {}).items())
            ),
        )
        run_times = self._run_times.update(now, info.get("monitors") or {})
        for app in apps:
            app["http"] = http.get(app["app"])
            app["run_time"] = run_times.get(app["app"])
        guests = [self._actor(a) for a in info.get("actors") or () if a.get("kind") == "guest"]
        states: dict[str, int] = {}
        for actor in [arbiter, *apps, *(w for a in apps for w in a["workers"])]:
            states[actor["state"]] = states.get(actor["state"], 0) + 1
        live = {p for p in (arbiter["pid"], *(a["pid"] for a in apps)) if p}
        live.update(w["pid"] for a in apps for w in a["workers"] if w["pid"])
        for pid in [p for p in self._procs if p not in live]:
            del self._procs[pid]
        return {
            "connected": True,
            "error": None,
            "time": now,
            "address": info.get("address"),
            "attach": self.attach or "(this application)",
            "arbiter": arbiter,
            "apps": apps,
            "guests": guests,
            "states": states,
            "interval": self.interval,
        }

    async def _read_tasks(self, client: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
        if not tasks_installed():
            return {"installed": False, "available": False}
        if self.tasks_client is None:
            url = self.task_backend
            if url is None:
                url = await self._discover_backend(client, snapshot)
            if url is None:
                return {"installed": True, "available": False, "error": None}
            from pulsar.apps import tasks

            self.task_backend = url
            self.tasks_client = tasks.connect(url)
        tc = self.tasks_client
        try:
            # one grouped read: the counts by state are its sums
            by_queue = await tc.queue_counts()
            counts: dict[str, int] = {}
            for states in by_queue.values():
                for state, n in states.items():
                    counts[state] = counts.get(state, 0) + int(n)
            workers = await tc.workers()
            jobs = await tc.job_list()
            queues = {"default"}
            for w in workers:
                queues.update(w.get("queues") or ())
            queues.update(by_queue)
            for meta in jobs.values():
                if isinstance(meta, dict) and meta.get("queue"):
                    queues.add(str(meta["queue"]))
            depth = {q: await tc.pending([q]) for q in sorted(queues)}
        except Exception as exc:
            return {
                "installed": True,
                "available": True,
                "backend": _mask(self.task_backend),
                "error": f"{type(exc).__name__}: {exc}",
            }
        total = sum(int(v) for v in counts.values())
        # the workers' own counters (read from the arbiter now; heartbeats are seconds old)
        processed = sum(int(a["tasks_total"]) for a in snapshot["apps"] if a.get("is_tasks"))
        failed = int(counts.get("FAILURE", 0))
        self._task_history.append((time.time(), processed, failed))
        return {
            "installed": True,
            "available": True,
            "backend": _mask(self.task_backend),
            "error": None,
            "counts": {str(k): int(v) for k, v in counts.items()},
            "by_queue": {
                str(q): {str(k): int(v) for k, v in states.items()}
                for q, states in sorted(by_queue.items())
            },
            "latency": self._run_times.latency(),
            "total": total,
            "queues": depth,
            "workers": workers,
            "jobs": sorted(jobs),
            "history": list(self._task_history),
            "rate": _rate(self._task_history, 1),
        }

    async def _discover_backend(self, client: Any, snapshot: dict[str, Any]) -> str | None:
        for app in snapshot["apps"]:
            if not app.get("is_tasks"):
                continue
            try:
                url = await client.send(app["aid"], "config", "get", "backend")
            except Exception:
                continue
            if isinstance(url, str) and url:
                return url
        return None


def _rate(history: deque[tuple[float, int, int]], index: int, window: float = 10.0) -> float:
    """Per second over the last ``window`` seconds of ``history`` (column ``index``)."""
    if len(history) < 2:
        return 0.0
    last = history[-1]
    first = last
    for sample in reversed(history):
        if last[0] - sample[0] > window:
            break
        first = sample
    if last[0] <= first[0]:
        return 0.0
    return max(0.0, (last[index] - first[index]) / (last[0] - first[0]))


def _mask(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***``."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"
