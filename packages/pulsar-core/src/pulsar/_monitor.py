"""Monitors: the pool policy of one application's worker actors.

How it works
------------
A :class:`Monitor` lives in the arbiter's process and shares its loop and mailbox (it has its own
aid, so workers reach it with ``send('monitor', ...)``). It is the *policy* of one pool: given
its records (the :class:`~pulsar._supervision.ActorHandle` of each worker) and its settings, it
returns decisions — :class:`SpawnWorkers`, :class:`StopWorker`, :class:`RecycleWorker`,
:class:`RespawnAfter`, :class:`GiveUp` — and its host (the arbiter, typed as :class:`PoolHost`)
executes them: it never spawns, signals or stops a process itself. The arbiter asks for
decisions on its supervision tick (:meth:`Monitor.decide`), when a worker is reaped
(:meth:`Monitor.worker_exited`, the one place a monitor learns a worker is gone) and on
commands (``recycle``) and signals (TTIN/TTOU/HUP). It keeps ``workers`` actors alive:

* a worker that exits *before it is ready* (its ``start`` did not return: it cannot start, a
  crash at import, a bad configuration) is a *start failure*; the monitor respawns it after an
  exponential back-off (0.1 s, 0.2 s, 0.4 s ... capped at 10 s);
* more than ``max_restarts`` start failures within ``restart_window`` seconds is a crash loop
  (the crash-loop brake): the monitor stops respawning, moves to FAILED, logs why and tells the
  arbiter (which stops with :attr:`~pulsar.ExitCode.APP_FAILED`) instead of spinning;
* a worker that dies *after it was ready* (up and serving: a SIGKILL, an OOM kill, a poison
  request or task, a heartbeat timeout) is a *crash*: it is replaced after ``BACKOFF_BASE`` and
  never counts towards ``max_restarts`` (gunicorn replaces such workers forever; Erlang's restart
  intensity is meant for children that cannot start). The brake is for applications that cannot
  run at all, not for one bad request that kills a worker now and then;
* a worker silent (no ``notify``) for longer than ``timeout`` is dumped and killed by the arbiter's
  supervision loop, then counts like any other unrequested exit (a crash when it was ready);
* workers it stops itself (scale down, recycling, shutdown) are not failures.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import _mailbox as mb
from ._actor import ActorBase, ActorProxy, ActorState, ExitInfo
from ._commands import CommandRole
from .options import MonitorOptions

if TYPE_CHECKING:  # pragma: no cover
    from ._supervision import ActorHandle

__all__ = [
    "GiveUp",
    "Monitor",
    "MonitorState",
    "PoolDecision",
    "PoolHost",
    "RecycleWorker",
    "RespawnAfter",
    "SpawnWorkers",
    "StopWorker",
]

logger = logging.getLogger("pulsar.monitor")

BACKOFF_BASE = 0.1
BACKOFF_MAX = 10.0


class MonitorState(enum.Enum):
    """RUNNING → STOPPING → STOPPED, or RUNNING → FAILED (crash loop) → STOPPING → STOPPED."""

    INITIAL = "initial"
    RUNNING = "running"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


# -- decisions (what the policy asks its host to do) ---------------------------------------------
@dataclass(frozen=True, slots=True)
class SpawnWorkers:
    """Start ``n`` new workers for the pool."""

    n: int


@dataclass(frozen=True, slots=True)
class StopWorker:
    """Stop worker ``aid`` (scale down, shutdown)."""

    aid: str
    graceful: bool = True


@dataclass(frozen=True, slots=True)
class RecycleWorker:
    """Replace worker ``aid``: start a new one first, stop ``aid`` once the new one runs."""

    aid: str


@dataclass(frozen=True, slots=True)
class RespawnAfter:
    """Ask again (:meth:`Monitor.respawn_due`) after ``delay`` seconds (back-off)."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The pool cannot run (crash loop): stop the application with ``APP_FAILED``."""

    reason: str


PoolDecision = SpawnWorkers | StopWorker | RecycleWorker | RespawnAfter | GiveUp


class PoolHost(Protocol):
    """What a monitor needs from its host (the arbiter): a route for its messages, someone to
    execute its decisions, and its workers' info."""

    def route(self, env: mb.Envelope, payload: bytes | None = None) -> None: ...

    def execute_pool(self, monitor: Monitor, decisions: list[PoolDecision]) -> None: ...

    async def handles_info(self, handles: list[ActorHandle], timeout: float = 2.0) -> list[Any]: ...


class Monitor(ActorBase):
    """The policy of a pool of worker actors for one application."""

    kind = "monitor"
    roles = frozenset({CommandRole.ANY, CommandRole.MONITOR})

    def __init__(
        self,
        host: PoolHost,
        name: str,
        cfg: Any,
        *,
        arbiter_aid: str = "arbiter",
        worker_start: Callable[..., Any] | None = None,
        app: str | None = None,
        params: dict[str, Any] | None = None,
        application: Any = None,
    ) -> None:
        super().__init__(
            aid=f"monitor-{name}",
            name=name,
            cfg=cfg,
            concurrency="monitor",
            arbiter_aid=arbiter_aid,
            params=params,
        )
        self.host = host
        self.app = app or name
        self.worker_start = worker_start
        #: the Application this monitor runs (its ``monitor_start``/``monitor_stopping`` hooks)
        self.application = application
        self.monitor_state = MonitorState.INITIAL
        self.workers: dict[str, ActorHandle] = {}
        #: times of recent start failures (workers that died before they were ready)
        self.failures: collections.deque[float] = collections.deque()
        self.restarts = 0
        #: deaths of workers that were up and serving (never a crash loop)
        self.crashes = 0
        self.failed_reason: str | None = None
        self._respawn_pending = False
        #: the task starting a monitor added to an already running arbiter (None otherwise)
        self.started: asyncio.Future[None] | None = None
        self._target = cfg.view(MonitorOptions).workers

    # -- messaging goes through the host -----------------------------------------------------------
    def _post(self, envelope: mb.Envelope) -> None:
        self.host.route(envelope)

    @property
    def num_workers(self) -> int:
        """The number of workers this monitor keeps alive (setting it resizes the pool)."""
        return self._target

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        self._target = max(0, int(value))
        self.host.execute_pool(self, self.decide())

    def live_workers(self) -> list[ActorHandle]:
        """Workers that count in the pool (alive, not on their way out)."""
        return [h for h in self.workers.values() if h.alive and not h.stop_requested]

    def worker_params(self) -> dict[str, Any]:
        """The spawn parameters of a new worker of this pool."""
        params: dict[str, Any] = {
            "name": f"{self.name}-worker",
            "kind": "worker",
            "start": self.worker_start,
            "cfg": self.cfg,
            "app": self.app,
            **self.params,
        }
        if self.application is not None:
            params["application"] = self.application
        return params

    def adopt(self, handle: ActorHandle) -> None:
        """A worker the host spawned for this pool."""
        self.workers[handle.aid] = handle

        def spawned(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                logger.error("%s: worker failed to start: %s", self.name, fut.exception())

        handle.spawned.add_done_callback(spawned)

    # -- life cycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start supervising: run the ``monitor_start`` hook, then spawn the workers."""
        self.loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        self.state = ActorState.RUNNING
        self.monitor_state = MonitorState.RUNNING
        for hook in self._hooks("monitor_start"):
            result = hook(self)
            if inspect.isawaitable(result):
                await result
        self.host.execute_pool(self, self.decide())

    def _hooks(self, name: str) -> list[Callable[..., Any]]:
        hooks = []
        if self.application is not None:
            hooks.append(getattr(self.application, name))
        if self.cfg.get(name) is not None:
            hooks.append(self.cfg.get(name))
        return hooks

    # -- the policy --------------------------------------------------------------------------------
    def decide(self) -> list[PoolDecision]:
        """Bring the pool to its target size: spawn the missing workers or retire the oldest."""
        if self.monitor_state is not MonitorState.RUNNING or self._respawn_pending:
            return []
        live = self.live_workers()
        missing = self._target - len(live)
        if missing > 0:
            return [SpawnWorkers(missing)]
        if missing < 0:
            oldest = sorted(live, key=lambda h: h.spawned_at)[:-missing]
            return [StopWorker(h.aid) for h in oldest]
        return []

    def respawn_due(self) -> list[PoolDecision]:
        """The back-off delay passed: respawn what is missing."""
        self._respawn_pending = False
        decisions = self.decide()
        self.restarts += sum(d.n for d in decisions if isinstance(d, SpawnWorkers))
        return decisions

    def forget(self, handle: ActorHandle) -> None:
        """A worker was reaped while the whole application stops: no policy, just bookkeeping."""
        self.workers.pop(handle.aid, None)

    def worker_exited(
        self, handle: ActorHandle, info: ExitInfo, *, now: float | None = None
    ) -> list[PoolDecision]:
        """One of this pool's workers was reaped: what to do about it."""
        self.workers.pop(handle.aid, None)
        if self.monitor_state is not MonitorState.RUNNING:
            return []
        if handle.stop_requested:
            return self.decide()
        if handle.ready:
            # it was up and serving: replace it; not a crash loop (see the module docstring)
            self.crashes += 1
            logger.warning(
                "%s: worker %s (pid %s) died while serving: %s; replacing it",
                self.name,
                handle.aid,
                handle.pid,
                info.reason,
            )
            return self._respawn_after(BACKOFF_BASE)
        now = time.monotonic() if now is None else now
        window = float(self.cfg.view(MonitorOptions).restart_window)
        self.failures.append(now)
        while self.failures and now - self.failures[0] > window:
            self.failures.popleft()
        max_restarts = self.cfg.view(MonitorOptions).max_restarts
        logger.warning(
            "%s: worker %s (pid %s) exited before it was ready: %s",
            self.name,
            handle.aid,
            handle.pid,
            info.reason,
        )
        if len(self.failures) > max_restarts:
            return self.fail(
                f"{len(self.failures)} workers failed to start within {window:g}s "
                f"(max_restarts={max_restarts}); last: {info.reason}"
            )
        return self._respawn_after(min(BACKOFF_BASE * 2 ** (len(self.failures) - 1), BACKOFF_MAX))

    def worker_exit_hook(self, aid: str, exit_code: int | None) -> None:
        """Run the application's ``worker_exit`` hook for a reaped worker (an awaitable result
        runs as a task); its errors are logged, never raised into the host."""
        hook = getattr(self.application, "worker_exit", None)
        if hook is None:
            return
        try:
            result = hook(self, aid, exit_code)
        except Exception:
            logger.exception("%s: worker_exit hook failed", self.name)
            return
        if inspect.isawaitable(result):

            async def run() -> None:
                try:
                    await result
                except Exception:
                    logger.exception("%s: worker_exit hook failed", self.name)

            task = asyncio.ensure_future(run())
            self._command_tasks.add(task)
            task.add_done_callback(self._command_tasks.discard)

    def _respawn_after(self, delay: float) -> list[PoolDecision]:
        if self._respawn_pending:
            return []
        self._respawn_pending = True
        return [RespawnAfter(delay)]

    def recycle(self, aid: str) -> bool:
        """Replace worker ``aid`` (``max_requests`` recycling, rolling restarts): the host starts
        a new worker first and stops the old one once the new one runs, so serving capacity
        never drops. False when ``aid`` is not a live worker of this running pool."""
        old = self.workers.get(aid)
        if old is None or not old.alive or old.stop_requested:
            return False
        if self.monitor_state is not MonitorState.RUNNING:
            return False
        self.host.execute_pool(self, [RecycleWorker(aid)])
        return old.stop_requested  # the host retired it

    async def roll(self) -> None:
        """Replace every worker one by one, each new worker running before its old one stops."""
        for handle in list(self.workers.values()):
            if not handle.alive or handle.stop_requested:
                continue
            if self.monitor_state is not MonitorState.RUNNING:
                return
            if self.recycle(handle.aid):
                await asyncio.wait([asyncio.shield(handle.exited)], timeout=None)

    def fail(self, reason: str) -> list[PoolDecision]:
        """Give up supervising (crash loop): stop respawning; the host stops the application."""
        if self.monitor_state is not MonitorState.RUNNING:
            return []
        self.monitor_state = MonitorState.FAILED
        self.failed_reason = reason
        self._respawn_pending = False
        logger.error("%s: giving up, the application failed: %s", self.name, reason)
        return [GiveUp(reason)]

    def stop(self, exit_code: int = 0) -> None:
        """Stop this monitor and its workers (the ``stop`` command sent to a monitor)."""
        task = asyncio.ensure_future(self.close(graceful=True))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def close(self, graceful: bool = True) -> None:
        """Stop every worker (gracefully within ``graceful_timeout``, else at once) and wait
        until they are all reaped."""
        if self.monitor_state in (MonitorState.STOPPING, MonitorState.STOPPED):
            return
        self.monitor_state = MonitorState.STOPPING
        self.state = ActorState.STOPPING
        self._respawn_pending = False
        for hook in self._hooks("monitor_stopping"):
            try:
                result = hook(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("%s: monitor_stopping hook failed", self.name)
        handles = [h for h in self.workers.values() if h.alive]
        self.host.execute_pool(self, [StopWorker(h.aid, graceful) for h in handles])
        if handles:
            await asyncio.gather(*(asyncio.shield(h.exited) for h in handles))
        self.monitor_state = MonitorState.STOPPED
        self.state = ActorState.CLOSED

    # -- info --------------------------------------------------------------------------------------
    def proxies(self) -> list[ActorProxy]:
        return [ActorProxy(h.aid, h.name) for h in self.live_workers() if h.running]

    async def get_info(self) -> dict[str, Any]:
        info = self.info_dict()
        info["monitor_state"] = self.monitor_state.value
        info["workers_target"] = self._target
        info["restarts"] = self.restarts
        info["recent_failures"] = len(self.failures)
        info["crashes"] = self.crashes
        if self.failed_reason:
            info["failed_reason"] = self.failed_reason
        info["workers"] = await self.host.handles_info(list(self.workers.values()))
        return info
