"""RpcError: codes, the error object, pickling, the class for each code."""

from __future__ import annotations

import pickle

import pytest

from pulsar.apps import rpc
from pulsar.apps.rpc._errors import error_class


def test_rpc_error_fields() -> None:
    exc = rpc.RpcError(-32001, "division by zero", {"a": 1})
    assert (exc.code, exc.message, exc.data) == (-32001, "division by zero", {"a": 1})
    assert exc.to_dict() == {"code": -32001, "message": "division by zero", "data": {"a": 1}}
    assert rpc.RpcError(5, "m").to_dict() == {"code": 5, "message": "m"}
    assert str(exc) == "[-32001] division by zero ({'a': 1})"
    assert "RpcError(-32001" in repr(exc)


def test_defaults_and_message_only() -> None:
    assert rpc.RpcError().to_dict() == {"code": -32000, "message": "Server error"}
    exc = rpc.RpcError("just a message")
    assert (exc.code, exc.message) == (-32000, "just a message")


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (rpc.ParseError, -32700),
        (rpc.InvalidRequest, -32600),
        (rpc.MethodNotFound, -32601),
        (rpc.InvalidParams, -32602),
        (rpc.InternalError, -32603),
        (rpc.CallTimeout, -32000),
        (rpc.TransportError, -32300),
        (rpc.RpcTimeoutError, -32300),
    ],
)
def test_standard_classes(cls: type[rpc.RpcError], code: int) -> None:
    exc = cls("text", {"k": 1})
    assert isinstance(exc, rpc.RpcError)
    assert (exc.code, exc.message, exc.data) == (code, "text", {"k": 1})
    assert cls().message == cls.default_message


@pytest.mark.parametrize(
    "exc",
    [
        rpc.RpcError(-32050, "x", [1, 2]),
        rpc.MethodNotFound("no such method"),
        rpc.CallTimeout("slow", {"timeout": 1.0}),
        rpc.ServerError(-32099, "srv"),
        rpc.RpcTimeoutError("late"),
    ],
)
def test_errors_pickle(exc: rpc.RpcError) -> None:
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    assert (copy.code, copy.message, copy.data) == (exc.code, exc.message, exc.data)


def test_error_class_by_code() -> None:
    assert error_class(-32601) is rpc.MethodNotFound
    assert error_class(-32000) is rpc.ServerError
    assert error_class(-32099) is rpc.ServerError
    assert error_class(-32100) is rpc.RpcError
    assert error_class(7) is rpc.RpcError
