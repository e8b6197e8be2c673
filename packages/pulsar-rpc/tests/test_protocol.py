"""Sans-IO: parsing request bodies and encoding responses (no loop, no socket)."""

from __future__ import annotations

import json

import pytest

from pulsar.apps.rpc import InternalError, InvalidRequest, ParseError, RpcError
from pulsar.apps.rpc._protocol import (
    Call,
    Rejected,
    encode_error,
    encode_result,
    encode_result_or_error,
    is_valid_id,
    join_responses,
    parse_payload,
)


def parse(body: bytes | str, max_batch: int = 10):  # type: ignore[no-untyped-def]
    return parse_payload(body.encode() if isinstance(body, str) else body, max_batch=max_batch)


def test_single_call_by_position_and_by_name() -> None:
    p = parse('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}')
    assert not p.batch and p.error is None
    assert p.items == [Call("subtract", [42, 23], 1, False)]
    p = parse('{"jsonrpc": "2.0", "method": "s", "params": {"a": 1}, "id": "x"}')
    assert p.items == [Call("s", {"a": 1}, "x", False)]


def test_params_may_be_omitted() -> None:
    assert parse('{"jsonrpc": "2.0", "method": "m", "id": 3}').items == [Call("m", None, 3)]


def test_notification_has_no_id_member() -> None:
    (call,) = parse('{"jsonrpc": "2.0", "method": "update", "params": [1]}').items
    assert isinstance(call, Call) and call.notification
    (call,) = parse('{"jsonrpc": "2.0", "method": "update", "id": null}').items
    assert isinstance(call, Call) and not call.notification and call.id is None


@pytest.mark.parametrize("rid", ["abc", 1, -5, 2.5, None, 10**30])
def test_valid_ids(rid: object) -> None:
    assert is_valid_id(rid)
    (call,) = parse(json.dumps({"jsonrpc": "2.0", "method": "m", "id": rid})).items
    assert isinstance(call, Call) and call.id == rid and type(call.id) is type(rid)


@pytest.mark.parametrize("rid", [True, False, [1], {"a": 1}])
def test_invalid_ids(rid: object) -> None:
    assert not is_valid_id(rid)
    (item,) = parse(json.dumps({"jsonrpc": "2.0", "method": "m", "id": rid})).items
    assert isinstance(item, Rejected) and item.id is None
    assert item.error.code == -32600


@pytest.mark.parametrize(
    "body",
    [
        "",
        "{",
        '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
        "NaN",
        '{"jsonrpc": "2.0", "method": "m", "params": [Infinity], "id": 1}',
        "[" * 100_000,
        "\ufeff{}",
    ],
)
def test_parse_errors(body: str) -> None:
    p = parse(body)
    assert isinstance(p.error, ParseError) and p.error.code == -32700 and not p.items


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b'{"a": "\xe9"}', '"é"'.encode("utf-16")])
def test_non_utf8_is_a_parse_error(body: bytes) -> None:
    p = parse(body)
    assert isinstance(p.error, ParseError)
    assert "UTF-8" in p.error.message


def test_empty_batch_is_one_invalid_request() -> None:
    p = parse("[]")
    assert isinstance(p.error, InvalidRequest) and p.batch


def test_batch_over_the_limit() -> None:
    body = json.dumps([{"jsonrpc": "2.0", "method": "m", "id": i} for i in range(11)])
    p = parse(body, max_batch=10)
    assert isinstance(p.error, InvalidRequest)
    assert p.error.data == {"limit": 10}
    assert len(parse(body, max_batch=11).items) == 11


@pytest.mark.parametrize(
    ("obj", "rid", "fragment"),
    [
        (1, None, "JSON object"),
        ("x", None, "JSON object"),
        ({"method": "m", "id": 1}, 1, '"jsonrpc"'),
        ({"jsonrpc": "1.0", "method": "m", "id": 2}, 2, '"jsonrpc"'),
        ({"jsonrpc": 2.0, "method": "m", "id": 2}, 2, '"jsonrpc"'),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None, "method"),
        ({"jsonrpc": "2.0", "id": 4}, 4, "method"),
        ({"jsonrpc": "2.0", "method": "m", "params": "bar", "id": 5}, 5, "params"),
        ({"jsonrpc": "2.0", "method": "m", "params": None, "id": 6}, 6, "params"),
        ({"jsonrpc": "2.0", "method": "m", "params": 3, "id": 7}, 7, "params"),
    ],
)
def test_invalid_request_objects(obj: object, rid: object, fragment: str) -> None:
    (item,) = parse(json.dumps(obj)).items
    assert isinstance(item, Rejected)
    assert item.error.code == -32600 and fragment in item.error.message
    assert item.id == rid


def test_batch_keeps_order_and_mixes_valid_and_invalid() -> None:
    p = parse('[1, {"jsonrpc": "2.0", "method": "m", "id": 1}, {"foo": "boo"}]')
    assert p.batch
    kinds = [type(item) for item in p.items]
    assert kinds == [Rejected, Call, Rejected]


def test_encode_result_and_error() -> None:
    assert json.loads(encode_result(1, [1, "a"])) == {"jsonrpc": "2.0", "result": [1, "a"], "id": 1}
    assert json.loads(encode_result("x", None)) == {"jsonrpc": "2.0", "result": None, "id": "x"}
    err = json.loads(encode_error(None, RpcError(-32001, "nope", {"k": 1})))
    assert err == {
        "jsonrpc": "2.0",
        "error": {"code": -32001, "message": "nope", "data": {"k": 1}},
        "id": None,
    }
    # no data member when data is None
    assert "data" not in json.loads(encode_error(1, RpcError(5, "m")))["error"]


def test_unencodable_results_and_data() -> None:
    with pytest.raises(TypeError):
        encode_result(1, object())
    with pytest.raises(ValueError):
        encode_result(1, float("nan"))
    obj = json.loads(encode_result_or_error(7, {1, 2}))
    assert obj["error"]["code"] == InternalError.default_code and obj["id"] == 7
    obj = json.loads(encode_error(1, RpcError(1, "m", object())))
    assert obj["error"]["data"].startswith("<object")


def test_lone_surrogates_are_encoded_as_ascii() -> None:
    p = parse('{"jsonrpc": "2.0", "method": "m", "params": ["\\ud800"], "id": 1}')
    (call,) = p.items
    assert isinstance(call, Call)
    assert json.loads(encode_result(1, call.params))["result"] == ["\ud800"]


def test_join_responses() -> None:
    assert join_responses([], batch=True) is None
    assert join_responses([], batch=False) is None
    assert join_responses([b"{}"], batch=False) == b"{}"
    assert join_responses([b"{}", b"{}"], batch=True) == b"[{},{}]"
    assert join_responses([b"{}"], batch=True) == b"[{}]"
