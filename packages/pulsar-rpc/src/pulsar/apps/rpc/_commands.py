"""``PulsarServerCommands``: a handler mixin exposing the server's own commands over JSON-RPC.

Methods talking to the actor system (``server_info``, ``kill_actor``) use the actor serving the
request (:attr:`RpcRequest.actor`); outside a pulsar actor ``server_info`` describes the process
only and ``kill_actor`` answers -32000. ``kill_actor`` stops any actor of the server: mount this
mixin only where the callers are trusted, or remove it in a subclass with
``rpc_kill_actor = None``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from typing import Any

import pulsar

from . import _openrpc
from ._errors import ServerError
from ._handler import JSONRPC, RpcRequest

__all__ = ["PulsarServerCommands"]

_STARTED = time.time()
_BACKGROUND: set[asyncio.Future[Any]] = set()


async def _actor_send(actor: Any, target: str, action: str, *args: Any) -> Any:
    """``actor.send(...)`` awaited from any loop (the reply is bound to the caller's loop)."""
    return await actor.send(target, action, *args)


def _no_actor() -> ServerError:
    return ServerError(-32000, "Server error: not running in a pulsar actor")


class PulsarServerCommands(JSONRPC):
    """A :class:`JSONRPC` handler with the commands of a pulsar server: ``ping``, ``echo``,
    ``server_info``, ``functions_list``, ``documentation`` and ``kill_actor``."""

    def rpc_ping(self, request: RpcRequest) -> str:
        """Checks that the server answers.

        Returns:
            The string "pong".
        """
        return "pong"

    def rpc_echo(self, request: RpcRequest, message: Any = "") -> Any:
        """Returns the value it receives.

        Args:
            message: any JSON value.
        """
        return message

    async def rpc_server_info(self, request: RpcRequest) -> dict[str, Any]:
        """Information about the server.

        Returns:
            ``server`` (versions, pid, python, platform, uptime) and, in a pulsar
            application, ``arbiter``: the arbiter's ``info`` tree (its monitors and workers).
        """
        from . import __version__

        info: dict[str, Any] = {
            "server": {
                "pulsar": pulsar.__version__,
                "pulsar_rpc": __version__,
                "python": platform.python_version(),
                "implementation": sys.implementation.name,
                "platform": platform.platform(),
                "pid": os.getpid(),
                "uptime": round(time.time() - _STARTED, 3),
            }
        }
        actor = request.actor
        if actor is not None:
            info["server"]["actor"] = {"aid": actor.aid, "name": actor.name}
            info["arbiter"] = await _actor_send(actor, "arbiter", "info")
        return info

    def rpc_functions_list(self, request: RpcRequest) -> list[str]:
        """The names of every method of this server (sub-handlers included)."""
        return request.root.method_names()

    def rpc_documentation(self, request: RpcRequest) -> str:
        """The documentation of every method of this server, in Markdown."""
        root = request.root
        return _openrpc.markdown(root.methods(), title=root.title)

    async def rpc_kill_actor(self, request: RpcRequest, aid: str) -> Any:
        """Stops the actor ``aid`` of this server (its monitor replaces a worker).

        Args:
            aid: the id of the actor to stop.

        Returns:
            True once the actor stopped, False when no such actor runs. When ``aid`` is the
            worker serving the call, True at once (it stops after answering).
        """
        actor = request.actor
        if actor is None:
            raise _no_actor()
        if aid == actor.aid:
            # the actor serving this call: its graceful stop waits for this very response, so
            # answer first and let the arbiter stop it afterwards
            task = asyncio.ensure_future(_actor_send(actor, "arbiter", "kill_actor", aid))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
            return True
        return await _actor_send(actor, "arbiter", "kill_actor", aid)
