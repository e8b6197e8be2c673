"""How a Python callable becomes an rpc method: :class:`RpcMethod` and :func:`rpc_method`.

An :class:`RpcMethod` is built once per handler and method. It keeps the callable, whether it
is a coroutine function, whether it receives the request, and the signature *without* ``self``
and ``request``: :meth:`RpcMethod.bind` checks the JSON params against that signature
(``inspect.Signature.bind``) and against simple type hints before anything runs, raising
:class:`~pulsar.apps.rpc.InvalidParams` (-32602) on a mismatch.

Type hints are checked only where the check is unambiguous for JSON values: ``int``, ``float``
(an integer is accepted), ``str``, ``bool``, ``None``, ``list``/``tuple``/``dict`` (the
container only, not the items), ``Any``, and unions or ``Optional`` of those. Any other hint is
documentation only (it still shapes the OpenRPC schema).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from ._errors import InvalidParams

__all__ = ["RpcFunction", "RpcMethod", "rpc_method"]

_Checker = Callable[[Any], bool]


class RpcFunction:
    """A plain function exposed as an rpc method (see :func:`rpc_method`).

    Unlike a function, it does not bind to the instance when stored on a handler class: it is
    called as is, with the request first when ``request`` is true.
    """

    __slots__ = ("__dict__", "func", "name", "request")

    def __init__(self, func: Callable[..., Any], name: str | None, request: bool) -> None:
        self.func = func
        self.name = name
        self.request = request
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"rpc_method({getattr(self.func, '__qualname__', self.func)!r})"


def _first_param_is_request(func: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].name == "request"


@typing.overload
def rpc_method(func: Callable[..., Any], /) -> RpcFunction: ...


@typing.overload
def rpc_method(
    *, name: str | None = None, request: bool | None = None
) -> Callable[[Callable[..., Any]], RpcFunction]: ...


def rpc_method(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    request: bool | None = None,
) -> Any:
    """Expose a plain function (sync or ``async def``) as an rpc method.

    Use it as a decorator (``@rpc_method`` or ``@rpc_method(name="sum")``) or a call
    (``rpc_divide = rpc_method(divide)`` in a handler class body). Register the result with
    :meth:`JSONRPC.add_method`, or store it on a handler class: as ``rpc_<name>`` it is
    exposed as ``<name>``, under any other attribute name as ``name`` or the function's name.

    Args:
        func: the function; it does not receive ``self``.
        name: the method name (default: from the attribute or the function's ``__name__``).
        request: pass the :class:`RpcRequest` as first argument; by default it is passed when
            the first parameter is called ``request``.

    Returns:
        An :class:`RpcFunction` (a decorator when ``func`` is omitted).
    """
    if name is not None and (not name or "." in name or name.startswith("rpc.")):
        raise ValueError(f"invalid rpc method name {name!r}: no dots, not empty")

    def wrap(fn: Callable[..., Any]) -> RpcFunction:
        if isinstance(fn, RpcFunction):
            fn = fn.func
        if not callable(fn):
            raise TypeError(f"rpc_method() needs a callable, not {fn!r}")
        takes = _first_param_is_request(fn) if request is None else request
        return RpcFunction(fn, name, takes)

    return wrap if func is None else wrap(func)


def _is_async(func: Any) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    return call is not None and not inspect.isfunction(func) and inspect.iscoroutinefunction(call)


def _checker(hint: Any) -> _Checker | None:
    """A predicate for a JSON value against ``hint``, or None when it cannot be checked."""
    if hint is Any or hint is object:
        return None
    if hint is None or hint is type(None):
        return lambda v: v is None
    if hint is bool:
        return lambda v: isinstance(v, bool)
    if hint is int:
        return lambda v: isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    if hint is str:
        return lambda v: isinstance(v, str)
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        return lambda v: isinstance(v, list)
    if origin is dict:
        return lambda v: isinstance(v, dict)
    if origin in (typing.Union, types.UnionType):
        checks = [_checker(arg) for arg in typing.get_args(hint)]
        if any(c is None for c in checks):
            return None
        found = [c for c in checks if c is not None]
        return lambda v: any(c(v) for c in found)
    return None


_JSON_TYPE = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return _JSON_TYPE.get(type(value), type(value).__name__)


class RpcMethod:
    """One method of a handler, ready to be called with JSON params.

    Attributes:
        name: the short name (``add``; the full name ``calc.add`` depends on where the
            handler is mounted).
        func: the callable (a bound method for ``rpc_<name>`` methods).
        is_async: True for coroutine functions (they run on an event loop).
        request: whether the callable receives the request first.
        signature: the signature without ``self`` and ``request``.
    """

    __slots__ = ("_checks", "_hints", "func", "is_async", "name", "request", "signature")

    def __init__(self, name: str, func: Callable[..., Any], *, request: bool = True) -> None:
        self.name = name
        self.func = func
        self.is_async = _is_async(func)
        self.request = request
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins: accept anything
            sig = inspect.Signature(
                [
                    inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                    inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
                ]
            )
        params = list(sig.parameters.values())
        if request:
            if not params or params[0].kind not in (
                inspect.Parameter.POSITIONAL_ONLY,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
            ):
                if not (params and params[0].kind is inspect.Parameter.VAR_POSITIONAL):
                    raise TypeError(f"rpc method {name!r} must accept the request first")
            else:
                params = params[1:]
        self.signature = sig.replace(parameters=params)
        self._hints: dict[str, Any] | None = None
        self._checks: dict[str, _Checker] | None = None

    def __repr__(self) -> str:
        return f"<RpcMethod {self.name}{self.signature}>"

    @property
    def doc(self) -> str:
        """The cleaned docstring ('' when none)."""
        return inspect.getdoc(self.func) or ""

    @property
    def hints(self) -> dict[str, Any]:
        """The resolved type hints (empty when they cannot be resolved)."""
        if self._hints is None:
            target = getattr(self.func, "__wrapped__", self.func)
            target = getattr(target, "__func__", target)
            if not inspect.isfunction(target) and not inspect.ismethod(target):
                target = getattr(target, "__call__", target)  # noqa: B004
            try:
                self._hints = typing.get_type_hints(target)
            except Exception:
                self._hints = {}
        return self._hints

    def _checks_for(self) -> dict[str, _Checker]:
        if self._checks is None:
            hints = self.hints
            checks: dict[str, _Checker] = {}
            for param in self.signature.parameters.values():
                if param.name in hints:
                    check = _checker(hints[param.name])
                    if check is not None:
                        checks[param.name] = check
            self._checks = checks
        return self._checks

    def bind(self, params: list[Any] | dict[str, Any] | None) -> inspect.BoundArguments:
        """Check ``params`` against the signature and the simple type hints.

        Raises:
            InvalidParams: too many or too few arguments, unknown or missing names, or a
                value whose JSON type does not match a simple hint.
        """
        try:
            if params is None:
                bound = self.signature.bind()
            elif isinstance(params, list):
                bound = self.signature.bind(*params)
            else:
                bound = self.signature.bind(**params)
        except TypeError as exc:
            raise InvalidParams(f"Invalid params: {exc}") from None
        checks = self._checks_for()
        if checks:
            for pname, value in bound.arguments.items():
                check = checks.get(pname)
                if check is None:
                    continue
                kind = self.signature.parameters[pname].kind
                if kind is inspect.Parameter.VAR_POSITIONAL:
                    bad = [v for v in value if not check(v)]
                elif kind is inspect.Parameter.VAR_KEYWORD:
                    bad = [v for v in value.values() if not check(v)]
                else:
                    bad = [] if check(value) else [value]
                if bad:
                    hint = self.hints[pname]
                    shown = hint.__name__ if isinstance(hint, type) else str(hint)
                    raise InvalidParams(
                        f"Invalid params: {pname!r} must be {shown}, not {_json_type(bad[0])}",
                        {"param": pname, "expected": shown},
                    )
        return bound
