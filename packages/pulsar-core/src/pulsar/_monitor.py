"""Monitors: supervisors of a pool of worker actors.

How it works
------------
A :class:`Monitor` lives in the arbiter's process and shares its loop and mailbox (it has its own
aid, so workers reach it with ``send('monitor', ...)``). It keeps ``workers`` actors alive:

* a worker that exits without being asked to (a crash, SIGKILL, an OOM kill) is a *failure*; the
  monitor respawns it after an exponential back-off (0.1 s, 0.2 s, 0.4 s ... capped at 10 s);
* more than ``max_restarts`` failures within ``restart_window`` seconds means a crash loop: the
  monitor stops respawning, moves to FAILED, logs why and tells the arbiter (which stops with
  :attr:`~pulsar.ExitCode.APP_FAILED`) instead of spinning;
* a worker silent (no ``notify``) for longer than ``timeout`` is dumped and killed by the arbiter's
  supervision loop, then counts as a failure like any other unrequested exit;
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
from typing import TYPE_CHECKING, Any

from . import _mailbox as mb
from ._actor import ActorBase, ActorProxy, ActorState, ExitInfo
from .options import MonitorOptions

if TYPE_CHECKING:  # pragma: no cover
    from ._concurrency import ActorHandle

__all__ = ["Monitor", "MonitorState"]

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


class Monitor(ActorBase):
    """Supervises a pool of worker actors for one application."""

    kind = "monitor"

    def __init__(
        self,
        arbiter: Any,
        name: str,
        cfg: Any,
        *,
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
            arbiter_aid=arbiter.aid,
            params=params,
        )
        self.arbiter = arbiter
        self.app = app or name
        self.worker_start = worker_start
        #: the Application this monitor runs (its ``monitor_start``/``monitor_stopping`` hooks)
        self.application = application
        self.monitor_state = MonitorState.INITIAL
        self.workers: dict[str, ActorHandle] = {}
        self.failures: collections.deque[float] = collections.deque()
        self.restarts = 0
        self.failed_reason: str | None = None
        self._respawn: asyncio.TimerHandle | None = None
        #: the task starting a monitor added to an already running arbiter (None otherwise)
        self.started: asyncio.Future[None] | None = None
        self._target = cfg.view(MonitorOptions).workers

    # -- messaging goes through the arbiter ------------------------------------------------------
    def _post(self, envelope: mb.Envelope) -> None:
        self.arbiter.route(envelope)

    @property
    def num_workers(self) -> int:
        """The number of workers this monitor keeps alive."""
        return self._target

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        self._target = max(0, int(value))
        self.manage()

    def live_workers(self) -> list[ActorHandle]:
        return [h for h in self.workers.values() if h.alive and not h.stop_requested]

    # -- life cycle ------------------------------------------------------------------------------
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
        self.manage()

    def _hooks(self, name: str) -> list[Callable[..., Any]]:
        hooks = []
        if self.application is not None:
            hooks.append(getattr(self.application, name))
        if self.cfg.get(name) is not None:
            hooks.append(self.cfg.get(name))
        return hooks

    def manage(self) -> None:
        """Bring the pool to its target size (spawning or retiring workers)."""
        if self.monitor_state is not MonitorState.RUNNING or self._respawn is not None:
            return
        live = self.live_workers()
        missing = self._target - len(live)
        for _ in range(missing):
            self.spawn_worker()
        if missing < 0:
            for handle in sorted(live, key=lambda h: h.spawned_at)[:-missing]:
                self.arbiter.stop_actor(handle, graceful=True)

    def spawn_worker(self, **params: Any) -> ActorHandle:
        """Spawn one worker (the arbiter starts it; this monitor supervises it)."""
        handle: ActorHandle = self.arbiter.spawn_handle(
            name=f"{self.name}-worker",
            kind="worker",
            monitor=self,
            start=self.worker_start,
            cfg=self.cfg,
            app=self.app,
            **{**self.params, **params},
            **({"application": self.application} if self.application is not None else {}),
        )
        self.workers[handle.aid] = handle

        def spawned(fut: asyncio.Future[Any]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                logger.error("%s: worker failed to start: %s", self.name, fut.exception())

        handle.spawned.add_done_callback(spawned)
        return handle

    def on_worker_exit(self, handle: ActorHandle, info: ExitInfo) -> None:
        """Called by the arbiter when one of this monitor's workers exited."""
        self.workers.pop(handle.aid, None)
        if (
            self.monitor_state is not MonitorState.RUNNING
            or self.arbiter.state >= ActorState.STOPPING
        ):
            return  # shutting down (a TERM sent to the whole process group reaches workers too)
        if handle.stop_requested:
            self.manage()
            return
        now = time.monotonic()
        window = float(self.cfg.view(MonitorOptions).restart_window)
        self.failures.append(now)
        while self.failures and now - self.failures[0] > window:
            self.failures.popleft()
        max_restarts = self.cfg.view(MonitorOptions).max_restarts
        logger.warning(
            "%s: worker %s (pid %s) exited: %s", self.name, handle.aid, handle.pid, info.reason
        )
        if len(self.failures) > max_restarts:
            self.fail(
                f"{len(self.failures)} worker failures within {window:g}s "
                f"(max_restarts={max_restarts}); last: {info.reason}"
            )
            return
        delay = min(BACKOFF_BASE * 2 ** (len(self.failures) - 1), BACKOFF_MAX)
        if self._respawn is None:
            self._respawn = self.loop.call_later(delay, self._respawn_now)

    def _respawn_now(self) -> None:
        self._respawn = None
        before = len(self.live_workers())
        self.manage()
        self.restarts += max(0, len(self.live_workers()) - before)

    def recycle(self, aid: str) -> bool:
        """Replace worker ``aid``: start a new worker first, stop the old one once the new one
        runs, so serving capacity never drops (``max_requests`` recycling, rolling restarts)."""
        old = self.workers.get(aid)
        if old is None or not old.alive or old.stop_requested:
            return False
        if self.monitor_state is not MonitorState.RUNNING:
            return False
        old.stop_requested = True  # from now on it does not count in the pool
        new = self.spawn_worker()

        def replaced(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled() or fut.exception() is not None:
                old.stop_requested = False  # keep serving with the old one
                return
            self.arbiter.stop_actor(old, graceful=True)

        new.spawned.add_done_callback(replaced)
        return True

    async def roll(self) -> None:
        """Replace every worker one by one, each new worker running before its old one stops."""
        for handle in list(self.workers.values()):
            if not handle.alive or handle.stop_requested:
                continue
            if self.monitor_state is not MonitorState.RUNNING:
                return
            if self.recycle(handle.aid):
                await asyncio.wait([asyncio.shield(handle.exited)], timeout=None)

    def fail(self, reason: str) -> None:
        """Give up supervising (crash loop): stop respawning and tell the arbiter."""
        if self.monitor_state is not MonitorState.RUNNING:
            return
        self.monitor_state = MonitorState.FAILED
        self.failed_reason = reason
        if self._respawn is not None:
            self._respawn.cancel()
            self._respawn = None
        logger.error("%s: giving up, the application failed: %s", self.name, reason)
        self.arbiter.on_monitor_failed(self)

    def stop(self, exit_code: int = 0) -> None:
        """Stop this monitor and its workers (the ``stop`` command sent to a monitor)."""
        task = asyncio.ensure_future(self.close(graceful=True))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def close(self, graceful: bool = True) -> None:
        """Stop every worker (gracefully within ``graceful_timeout``, else at once)."""
        if self.monitor_state in (MonitorState.STOPPING, MonitorState.STOPPED):
            return
        self.monitor_state = MonitorState.STOPPING
        self.state = ActorState.STOPPING
        if self._respawn is not None:
            self._respawn.cancel()
            self._respawn = None
        for hook in self._hooks("monitor_stopping"):
            try:
                result = hook(self)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("%s: monitor_stopping hook failed", self.name)
        handles = [h for h in self.workers.values() if h.alive]
        await self.arbiter.stop_actors(handles, graceful=graceful)
        self.monitor_state = MonitorState.STOPPED
        self.state = ActorState.CLOSED

    # -- info ------------------------------------------------------------------------------------
    def on_notify(self, caller: str, info: dict[str, Any]) -> None:
        self.arbiter.on_notify(caller, info)

    def proxies(self) -> list[ActorProxy]:
        return [ActorProxy(h.aid, h.name) for h in self.live_workers() if h.running]

    async def get_info(self) -> dict[str, Any]:
        info = self.info_dict()
        info["monitor_state"] = self.monitor_state.value
        info["workers_target"] = self._target
        info["restarts"] = self.restarts
        info["recent_failures"] = len(self.failures)
        if self.failed_reason:
            info["failed_reason"] = self.failed_reason
        info["workers"] = await self.arbiter.handles_info(list(self.workers.values()))
        return info
