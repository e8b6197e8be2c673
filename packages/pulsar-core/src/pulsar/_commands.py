"""Actor commands: the registry, the ``@command`` decorator and the built-in commands.

A command is ``async def name(request, *args, **kwargs)`` (or a plain function) run in the *target*
actor when another actor ``send``s it. ``request.actor`` is the actor running the command,
``request.caller`` the aid of the sender. Commands live in one registry per process, so a module
defining commands must be imported in the actor that runs them (the module of an actor's ``start``
callable always is).

``ack=False`` commands are fire-and-forget: the sender does not wait and no reply travels back.

Commands are registered per **role** (:class:`CommandRole`): ``ANY`` actor runs them, or only a
``MONITOR`` or the ``ARBITER``. An actor declares its roles (``actor.roles``); a command sent to
an actor without its role is answered with a :class:`~pulsar.CommandError` naming where to send
it, before the command runs. What a role's commands need from the actor is a Protocol
(:class:`ArbiterRole`, :class:`MonitorRole`), so the built-in commands call typed methods, never
``hasattr`` and never stubs.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._exceptions import CommandError

if TYPE_CHECKING:  # pragma: no cover
    from ._actor import ActorBase, ExitInfo

__all__ = [
    "ArbiterRole",
    "Command",
    "MonitorRole",
    "Request",
    "CommandRole",
    "command",
    "command_modules",
    "get_command",
    "registered_commands",
    "role_error",
]


class CommandRole(enum.Enum):
    """Which actors run a command."""

    ANY = "any"
    MONITOR = "monitor"
    ARBITER = "arbiter"


class ArbiterRole(Protocol):
    """What the arbiter's commands call on it."""

    def add_link(self, caller: str, aid: str) -> ExitInfo | None: ...

    def on_notify(self, caller: str, info: dict[str, Any]) -> None: ...


class MonitorRole(Protocol):
    """What the monitors' commands call on them."""

    def recycle(self, aid: str) -> bool: ...


@dataclass(slots=True)
class Request:
    """What a command receives as its first argument."""

    actor: ActorBase
    caller: str
    command: str


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command."""

    name: str
    fn: Callable[..., Any]
    ack: bool
    doc: str
    is_async: bool = False
    role: CommandRole = CommandRole.ANY


_registry: dict[str, Command] = {}


def command(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    ack: bool = True,
    role: CommandRole = CommandRole.ANY,
) -> Any:
    """Register an actor command.

    Use as ``@pulsar.command()`` / ``@pulsar.command`` or ``@pulsar.command(ack=False)`` for a
    fire-and-forget command; ``role=CommandRole.MONITOR`` / ``CommandRole.ARBITER`` for a
    command only those run. The command's name is the function name unless ``name`` is given.
    Registering a different function under an existing name replaces it (so a module can be
    re-imported); built-in names cannot be replaced.
    """

    def register(f: Callable[..., Any]) -> Callable[..., Any]:
        cname = name or f.__name__
        old = _registry.get(cname)
        if old is not None and old.fn.__module__ == __name__ and f.__module__ != __name__:
            raise CommandError(f"cannot replace the built-in command {cname!r}")
        _registry[cname] = Command(
            cname, f, ack, inspect.getdoc(f) or "", inspect.iscoroutinefunction(f), role
        )
        return f

    if fn is not None:
        return register(fn)
    return register


def get_command(name: str) -> Command | None:
    """The command registered under ``name``, or None."""
    return _registry.get(name)


def registered_commands() -> dict[str, Command]:
    """A copy of the registry."""
    return dict(_registry)


def command_modules() -> tuple[str, ...]:
    """The modules that registered commands in this process (built-ins and ``__main__`` aside):
    a child started with ``spawn`` or ``forkserver`` imports them, so it knows the same commands
    as a forked one."""
    names = {cmd.fn.__module__ for cmd in _registry.values()}
    return tuple(sorted(n for n in names if n not in (__name__, "__main__", "__mp_main__")))


def role_error(cmd: Command, actor_name: str) -> CommandError:
    """The error answering ``cmd`` sent to an actor without its role."""
    article = "an" if cmd.role is CommandRole.ARBITER else "a"
    return CommandError(
        f"{cmd.name} is {article} {cmd.role.value} command (sent to {actor_name}): "
        f"send it to {cmd.role.value!r}"
    )


# -- built-in commands ---------------------------------------------------------------------------


@command
def ping(request: Request) -> str:
    """Answer ``'pong'``."""
    return "pong"


@command
def echo(request: Request, message: Any = None) -> Any:
    """Return ``message`` unchanged."""
    return message


@command
async def info(request: Request) -> dict[str, Any]:
    """The actor's info dictionary (the arbiter's gives the whole tree)."""
    return await request.actor.get_info()


@command
def config(
    request: Request, action: str = "get", name: str | None = None, value: Any = None
) -> Any:
    """Read or change the actor's configuration.

    ``config()`` returns every setting's value; ``config('get', name)`` one value;
    ``config('set', name, value)`` validates and sets it, returning the new value.
    """
    cfg = request.actor.cfg
    if action == "get":
        if name is None:
            return {k: v for k, v in cfg.items() if not callable(v)}
        if name not in cfg.settings:
            raise CommandError(f"unknown setting {name!r}")
        return cfg.get(name)
    if action == "set":
        if name is None:
            raise CommandError("config set needs a setting name")
        cfg.set(name, value)
        return cfg.get(name)
    raise CommandError(f"config: unknown action {action!r} (expected 'get' or 'set')")


@command
async def run(request: Request, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a picklable callable in the target actor: ``fn(actor, *args, **kwargs)``."""
    result = fn(request.actor, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


@command
def stop(request: Request, exit_code: int = 0) -> bool:
    """Stop the target actor gracefully (after replying)."""
    request.actor.loop.call_soon(request.actor.stop, exit_code)
    return True


@command(ack=False, role=CommandRole.ARBITER)
def notify(request: Request, info: dict[str, Any] | None = None) -> None:
    """Heartbeat from an actor to the arbiter, carrying a short info dict."""
    cast(ArbiterRole, request.actor).on_notify(request.caller, info or {})


@command
async def spawn(request: Request, **params: Any) -> Any:
    """Spawn a new actor (the arbiter runs it; others forward to the arbiter)."""
    return await request.actor.spawn(**params)


@command
async def kill_actor(request: Request, aid: str, graceful: bool = True) -> bool:
    """Stop the actor ``aid`` (arbiter). Returns False when no such actor runs."""
    return await request.actor.kill_actor(aid, graceful=graceful)


@command(role=CommandRole.ARBITER)
def link(request: Request, aid: str) -> Any:
    """Ask to be told when actor ``aid`` exits (arbiter). Returns None, or the exit record if the
    actor is already gone."""
    return cast(ArbiterRole, request.actor).add_link(request.caller, aid)


@command(ack=False)
def actor_exited(request: Request, exit_info: Any) -> None:
    """Told by the arbiter to an actor that linked to another one which just exited."""
    request.actor.on_linked_exit(exit_info)


@command(role=CommandRole.MONITOR)
def recycle(request: Request) -> bool:
    """Sent by a worker to its monitor: replace me (a new worker starts before I stop)."""
    return cast(MonitorRole, request.actor).recycle(request.caller)


@command
def commands(request: Request) -> list[str]:
    """The names of the commands this actor runs (those of its roles)."""
    roles = request.actor.roles
    return sorted(name for name, cmd in _registry.items() if cmd.role in roles)
