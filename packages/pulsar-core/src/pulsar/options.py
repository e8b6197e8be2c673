"""Frozen, typed views of a :class:`~pulsar.Config`, one per layer.

Each layer builds its view once when it starts (``cfg.view(ServerOptions)``) and reads typed
attributes from then on: a default lives only in its :class:`~pulsar.Setting` (code never
restates it with ``cfg.get(name) or 30``), and a view naming a setting the config does not
declare raises :class:`~pulsar.ConfigError` at once. Applications declare their own views the
same way (a frozen dataclass whose fields are setting names), e.g. the WSGI server's
``HttpOptions``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ActorOptions", "MonitorOptions", "ServerOptions"]


@dataclass(frozen=True, slots=True)
class ActorOptions:
    """What every actor reads (workers, monitors, the arbiter)."""

    concurrency: str
    start_method: str
    thread_workers: int
    timeout: float
    heartbeat: float
    graceful_timeout: float
    spawn_timeout: float
    io: str
    max_frame_size: int


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    """The pool policy of a monitor."""

    workers: int
    preload: bool
    max_restarts: int
    restart_window: float
    graceful_timeout: float


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """A socket server (the ``socket`` settings app, plus what it shares with the actors)."""

    bind: tuple[str, ...]
    backlog: int
    reuse_port: bool
    keep_alive: float
    cert_file: str | None
    key_file: str | None
    ca_certs: str | None
    max_requests: int
    max_requests_jitter: int
    access_log: bool
    graceful_timeout: float
    workers: int
    thread_workers: int
    concurrency: str
