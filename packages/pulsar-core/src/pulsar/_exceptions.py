"""Pulsar's exceptions.

Every error pulsar raises derives from :class:`PulsarError`. Errors travel between actors through
the mailbox, so each one pickles (extra state goes through ``__reduce__``). Exceptions that user
code must not swallow by accident (:class:`HaltServer`) derive from ``BaseException``.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "PulsarError",
    "ConfigError",
    "MailboxError",
    "ProtocolError",
    "AuthenticationError",
    "CommandError",
    "CommandNotFound",
    "ActorNotFound",
    "ActorStopped",
    "SpawnError",
    "SerializationError",
    "RemoteError",
    "HaltServer",
    "ExitCode",
]


class PulsarError(Exception):
    """Base class of every error raised by pulsar."""


class ConfigError(PulsarError, ValueError):
    """A setting has a bad value, or an unknown setting was given.

    ``setting`` names the setting (or ``None``); the message is one line that names it.
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.setting))


class MailboxError(PulsarError):
    """The mailbox connection failed or was closed."""


class ProtocolError(MailboxError):
    """The peer sent bytes that break the mailbox protocol (bad frame, oversized frame...)."""


class AuthenticationError(MailboxError):
    """The mailbox handshake failed: wrong secret or not a pulsar peer."""


class CommandError(PulsarError):
    """An actor command could not be run."""


class CommandNotFound(CommandError):
    """No command with this name is registered."""


class ActorNotFound(PulsarError):
    """The target actor is unknown to the arbiter (never existed or already gone)."""


class ActorStopped(PulsarError):
    """The actor stopped before it could answer."""


class SpawnError(PulsarError):
    """A new actor could not be started (or never completed its handshake)."""


class SerializationError(PulsarError):
    """A message, argument or result could not be pickled or unpickled."""


class RemoteError(PulsarError):
    """An exception raised in another actor that could not be sent as itself.

    Carries the remote exception's type name, message and formatted traceback.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = traceback

    def __reduce__(self) -> Any:
        return (type(self), (self.type_name, self.message, self.remote_traceback))


class HaltServer(BaseException):
    """Raised to stop an actor (or the whole arbiter) with an exit code."""

    def __init__(self, reason: str = "", exit_code: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code

    def __reduce__(self) -> Any:
        return (type(self), (self.reason, self.exit_code))


class ExitCode(enum.IntEnum):
    """Exit codes of pulsar processes (the arbiter's ``start()`` returns one)."""

    OK = 0  #: clean stop
    ERROR = 1  #: unexpected error
    CONFIG = 2  #: bad configuration or command line (nothing was started)
    APP_FAILED = 3  #: a monitor gave up: its workers kept crashing (max_restarts)
    BOOT_ERROR = 4  #: the arbiter could not start (cannot bind, live pidfile, ...)
    ARBITER_GONE = 5  #: (workers) the connection to the arbiter was lost
    INTERRUPTED = 130  #: stopped by SIGINT/SIGQUIT (fast stop)
