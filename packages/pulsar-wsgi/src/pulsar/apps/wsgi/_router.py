"""A small WSGI router: per-method handlers and typed path parameters.

``/users/<int:id>`` matches ``/users/42`` and calls the handler with ``id=42``; converters are
``str`` (default, no ``/``), ``int``, ``float`` and ``path`` (may contain ``/``). A path that
matches with another method gets ``405`` with an ``Allow`` header, no match ``404``. HEAD falls
back to the GET handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Router"]

_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?\d+", int),
    "float": (r"-?\d+(?:\.\d+)?", float),
    "path": (r".+", str),
}
_PARAM_RE = re.compile(r"<(?:(\w+):)?(\w+)>")

Handler = Callable[..., Any]


def _plain(status: str, text: str, extra: list[tuple[str, str]] | None = None) -> Handler:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = text.encode()
        start_response(
            status,
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *(extra or [])],
        )
        return [body]

    return app


class Router:
    """A WSGI application dispatching on the path and method.

    Handlers are WSGI callables receiving the path parameters as keyword arguments::

        router = Router()

        @router.route("/users/<int:id>", methods=["GET"])
        def user(environ, start_response, id):
            ...

    Matched parameters are also in ``environ["pulsar.route_params"]``.
    """

    def __init__(self) -> None:
        self._routes: list[
            tuple[str, re.Pattern[str], dict[str, Callable[[str], Any]], dict[str, Handler]]
        ] = []

    def add(self, pattern: str, handler: Handler, methods: Iterable[str] = ("GET",)) -> None:
        """Route ``methods`` on ``pattern`` to ``handler``.

        Raises:
            ValueError: an unknown converter.
        """
        for existing, _, _, handlers in self._routes:
            if existing == pattern:
                handlers.update({m.upper(): handler for m in methods})
                return
        regex, converters = self._compile(pattern)
        self._routes.append((pattern, regex, converters, {m.upper(): handler for m in methods}))

    def route(
        self, pattern: str, methods: Iterable[str] = ("GET",)
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def decorator(handler: Handler) -> Handler:
            self.add(pattern, handler, methods)
            return handler

        return decorator

    @staticmethod
    def _compile(pattern: str) -> tuple[re.Pattern[str], dict[str, Callable[[str], Any]]]:
        converters: dict[str, Callable[[str], Any]] = {}
        out = []
        last = 0
        for match in _PARAM_RE.finditer(pattern):
            out.append(re.escape(pattern[last : match.start()]))
            kind, name = match.group(1) or "str", match.group(2)
            if kind not in _CONVERTERS:
                raise ValueError(f"unknown converter {kind!r} in {pattern!r}")
            regex, convert = _CONVERTERS[kind]
            out.append(f"(?P<{name}>{regex})")
            converters[name] = convert
            last = match.end()
        out.append(re.escape(pattern[last:]))
        return re.compile("".join(out)), converters

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, Any]]:
        """The handler and parameters for ``method`` and ``path`` (404/405 handlers if none)."""
        allowed: set[str] = set()
        for _, regex, converters, handlers in self._routes:
            found = regex.fullmatch(path)
            if found is None:
                continue
            handler = handlers.get(method) or (handlers.get("GET") if method == "HEAD" else None)
            if handler is None:
                allowed.update(handlers)
                continue
            try:
                params = {k: converters[k](v) for k, v in found.groupdict().items()}
            except ValueError:
                continue
            return handler, params
        if allowed:
            allow = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
            return _plain("405 Method Not Allowed", "Method Not Allowed\n", [("Allow", allow)]), {}
        return _plain("404 Not Found", "Not Found\n"), {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        handler, params = self.match(environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/")
        environ["pulsar.route_params"] = params
        return handler(environ, start_response, **params)
