"""Pulsar: an event-driven concurrent framework built on asyncio actors.

The public API lives here; implementation modules are private (``pulsar._name``).
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"

from . import _settings  # noqa: F401  (core settings register before any app's)
from ._actor import (
    Actor,
    ActorBase,
    ActorProxy,
    ActorState,
    ExitInfo,
    get_actor,
    link,
    send,
    send_threadsafe,
    spawn,
)
from ._application import Application, ImportSpec, MultiApp
from ._arbiter import Arbiter, ExitCode, arbiter, get_arbiter
from ._client import Client, ConnectError, connect
from ._commands import CommandRole, Request, command
from ._config import Config, Setting, parse_address
from ._deferred import (
    AlreadyCalledError,
    Deferred,
    async_while,
    chain_future,
    maybe_async,
    multi_async,
)
from ._exceptions import (
    ActorNotFound,
    ActorStopped,
    AuthenticationError,
    CommandError,
    CommandNotFound,
    ConfigError,
    HaltServer,
    MailboxError,
    ProtocolError,
    PulsarError,
    RemoteError,
    SerializationError,
    SpawnError,
)
from ._loop import new_event_loop
from ._monitor import Monitor, MonitorState

__all__ = [
    "__version__",
    # actors
    "Actor",
    "Application",
    "ImportSpec",
    "MultiApp",
    "ActorBase",
    "ActorProxy",
    "ActorState",
    "Arbiter",
    "ExitCode",
    "ExitInfo",
    "Monitor",
    "MonitorState",
    "Request",
    "arbiter",
    "command",
    "CommandRole",
    "get_actor",
    "get_arbiter",
    "link",
    "send",
    "send_threadsafe",
    "spawn",
    "connect",
    "Client",
    # config
    "Config",
    "Setting",
    "parse_address",
    # async helpers
    "AlreadyCalledError",
    "Deferred",
    "async_while",
    "chain_future",
    "maybe_async",
    "multi_async",
    "new_event_loop",
    # errors
    "ActorNotFound",
    "ActorStopped",
    "AuthenticationError",
    "CommandError",
    "CommandNotFound",
    "ConfigError",
    "ConnectError",
    "HaltServer",
    "MailboxError",
    "ProtocolError",
    "PulsarError",
    "RemoteError",
    "SerializationError",
    "SpawnError",
]
