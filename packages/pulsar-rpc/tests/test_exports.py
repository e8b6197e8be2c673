"""The public surface of pulsar.apps.rpc is pinned."""

from __future__ import annotations

from pulsar.apps import rpc

EXPECTED = {
    "__version__",
    "JSONRPC",
    "OPENRPC_VERSION",
    "PulsarServerCommands",
    "RpcFunction",
    "RpcMethod",
    "RpcRequest",
    "RpcServer",
    "rpc_method",
    "Batch",
    "BatchCall",
    "JsonProxy",
    "SyncJsonProxy",
    "CallTimeout",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "RpcError",
    "RpcTimeoutError",
    "ServerError",
    "TransportError",
}


def test_public_names() -> None:
    assert set(rpc.__all__) == EXPECTED
    assert len(rpc.__all__) == len(EXPECTED)
    for name in rpc.__all__:
        assert hasattr(rpc, name), name


def test_one_base_error() -> None:
    errors = [getattr(rpc, n) for n in rpc.__all__ if n.endswith(("Error", "Timeout"))]
    assert errors and all(issubclass(e, rpc.RpcError) for e in errors)
    assert issubclass(rpc.RpcError, Exception)


def test_private_modules() -> None:
    import pkgutil

    names = [m.name for m in pkgutil.iter_modules(rpc.__path__)]
    assert names and all(n.startswith("_") for n in names)


def test_settings_registered() -> None:
    import pulsar

    cfg = pulsar.Config(apps=("rpc",))
    for name in (
        "rpc_timeout",
        "rpc_max_batch",
        "rpc_max_body",
        "rpc_thread_workers",
        "rpc_error_details",
    ):
        assert name in cfg.settings
