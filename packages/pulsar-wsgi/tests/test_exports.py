"""The public surface of pulsar.apps.wsgi is pinned (trio's test_exports habit)."""

from __future__ import annotations

import pulsar.apps.wsgi as wsgi

PUBLIC = {
    "__version__",
    "WSGIServer",
    "WsgiProtocolFactory",
    "create_protocol_factory",
    "HttpServerProtocol",
    "ProtocolFactory",
    "ServerState",
    "FlowControl",
    "Timer",
    "MAX_DRAIN",
    "MAX_PIPELINE",
    "load_callable",
    "main",
    "HttpConnection",
    "Limits",
    "RecvState",
    "SendState",
    "TRANSITIONS",
    "Trigger",
    "http_date",
    "NEED_DATA",
    "Event",
    "Request",
    "Response",
    "InformationalResponse",
    "Data",
    "EndOfMessage",
    "RequestError",
    "ConnectionClosed",
    "RequestBody",
    "EnvironBuilder",
    "ErrorStream",
    "FileWrapper",
    "AccessLogger",
    "Router",
    "StaticFiles",
    "GZipMiddleware",
    "HttpError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "ClientDisconnected",
}


def test_all_is_pinned() -> None:
    assert set(wsgi.__all__) == PUBLIC
    for name in wsgi.__all__:
        assert hasattr(wsgi, name), name


def test_errors() -> None:
    import pickle

    import pulsar

    assert issubclass(wsgi.HttpError, pulsar.PulsarError)
    for cls in (wsgi.RemoteProtocolError, wsgi.LocalProtocolError, wsgi.ClientDisconnected):
        assert issubclass(cls, wsgi.HttpError)
    assert issubclass(wsgi.ClientDisconnected, OSError)
    error = pickle.loads(pickle.dumps(wsgi.RemoteProtocolError("too big", 413)))
    assert (str(error), error.status) == ("too big", 413)


def test_settings_registered() -> None:
    import pulsar

    cfg = pulsar.Config(apps=("wsgi",))
    assert cfg.thread_workers == 8
    assert cfg.limit_request_line == 8190
    assert cfg.max_body_size == 16 * 1024 * 1024
    assert pulsar.Config(apps=("wsgi",), thread_workers=0).thread_workers == 0
    assert pulsar.Config().thread_workers == 4  # the core default is untouched
    cfg = pulsar.Config(apps=("wsgi",), forwarded_allow_ips=" 10.0.0.0/8 , ::1 ")
    assert cfg.forwarded_allow_ips == "10.0.0.0/8,::1"
    for bad in ({"forwarded_allow_ips": "nope"}, {"root_path": "api"}, {"max_body_size": -1}):
        try:
            pulsar.Config(apps=("wsgi",), **bad)
        except pulsar.ConfigError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_no_import_circle() -> None:
    """The modules of the package import each other in layers: no cycle, not even one hidden
    behind ``TYPE_CHECKING`` (every ``from .x import`` counts)."""
    import ast
    from pathlib import Path

    package = Path(wsgi.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[path.stem] = {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }

    def visit(module: str, stack: tuple[str, ...]) -> None:
        assert module not in stack, f"import circle: {' -> '.join((*stack, module))}"
        for imported in graph.get(module, ()):
            visit(imported, (*stack, module))

    for module in graph:
        if module != "__init__":
            visit(module, ())
