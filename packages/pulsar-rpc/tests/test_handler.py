"""The handler through its WSGI interface: environs built here, no server, no socket."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import pytest
import rpc_helpers as h

import pulsar
from pulsar.apps import rpc


def req(method: str, params: Any = None, rid: Any = 1, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method, **extra}
    if params is not None:
        obj["params"] = params
    if rid is not ...:
        obj["id"] = rid
    return obj


def result_of(root: rpc.JSONRPC, method: str, params: Any = None, rid: Any = 1) -> Any:
    resp = h.post(root, req(method, params, rid))
    assert resp.code == 200, resp.body
    obj = resp.json()
    assert "error" not in obj, obj
    return obj["result"]


def error_of(root: rpc.JSONRPC, body: Any, **kwargs: Any) -> dict[str, Any]:
    resp = h.post(root, body, **kwargs)
    assert resp.code == 200, resp.body
    obj = resp.json()
    assert obj["jsonrpc"] == "2.0" and "result" not in obj
    return obj  # type: ignore[no-any-return]


def still_serving(root: rpc.JSONRPC) -> None:
    assert result_of(root, "calc.add", [1, 2]) == 3


# --------------------------------------------------------------------------- spec examples


def test_positional_and_named_params(root: rpc.JSONRPC) -> None:
    assert result_of(root, "calc.subtract", [42, 23]) == 19
    assert result_of(root, "calc.subtract", [23, 42]) == -19
    assert result_of(root, "calc.subtract", {"subtrahend": 23, "minuend": 42}) == 19
    assert result_of(root, "calc.subtract", {"minuend": 42, "subtrahend": 23}) == 19


def test_response_headers(root: rpc.JSONRPC) -> None:
    resp = h.post(root, req("ping"))
    assert resp.status == "200 OK"
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.body)
    assert resp.json() == {"jsonrpc": "2.0", "result": "pong", "id": 1}


@pytest.mark.parametrize("rid", ["abc", 7, 7.5, None, -1, 12345678901234567890])
def test_id_echoed_with_its_type(root: rpc.JSONRPC, rid: Any) -> None:
    obj = h.post(root, req("ping", rid=rid)).json()
    assert obj["id"] == rid and type(obj["id"]) is type(rid)
    obj = error_of(root, req("nope", rid=rid))
    assert obj["id"] == rid and type(obj["id"]) is type(rid)


def test_notifications_get_no_response(root: rpc.JSONRPC) -> None:
    h.RECORDED.clear()
    resp = h.post(root, req("calc.record", [1], rid=...))
    assert resp.code == 204 and resp.body == b""
    assert "content-type" not in resp.headers
    assert h.RECORDED == [1]
    # failing notifications are not answered either
    for body in (req("nope", rid=...), req("calc.add", [1], rid=...), req("calc.fail", rid=...)):
        resp = h.post(root, body)
        assert resp.code == 204 and resp.body == b""
    still_serving(root)


def test_batch_of_notifications_only(root: rpc.JSONRPC) -> None:
    h.RECORDED.clear()
    body = [req("calc.record", [i], rid=...) for i in range(5)]
    resp = h.post(root, body)
    assert resp.code == 204 and resp.body == b""
    assert sorted(h.RECORDED) == [0, 1, 2, 3, 4]


def test_spec_batch_example(root: rpc.JSONRPC) -> None:
    root.add_method(lambda *a: None, "notify_hello")
    root.add_method(lambda: ["hello", 5], "get_data")
    body = [
        req("calc.sum", [1, 2, 4], rid="1"),
        req("notify_hello", [7], rid=...),
        req("calc.subtract", [42, 23], rid="2"),
        {"foo": "boo"},
        req("foo.get", {"name": "myself"}, rid="5"),
        req("get_data", rid="9"),
    ]
    resp = h.post(root, body)
    assert resp.code == 200
    out = resp.json()
    assert out == [
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": out[2]["error"], "id": None},
        {"jsonrpc": "2.0", "error": out[3]["error"], "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
    ]
    assert out[2]["error"]["code"] == -32600
    assert out[3]["error"]["code"] == -32601


def test_batch_calls_run_concurrently(root: rpc.JSONRPC) -> None:
    # ten async calls of 0.3 s and four blocking calls of 0.3 s finish in well under 14 * 0.3 s
    body = [req("calc.sleep", [0.3], rid=i) for i in range(10)]
    body += [req("calc.block", [0.3], rid=10 + i) for i in range(4)]
    start = time.monotonic()
    out = h.post(root, body).json()
    elapsed = time.monotonic() - start
    assert sorted(r["id"] for r in out) == list(range(14))
    assert all(r["result"] == 0.3 for r in out)
    assert elapsed < 1.5


def test_batch_responses_matched_by_id(root: rpc.JSONRPC) -> None:
    body = [req("calc.sleep", [0.05 * (5 - i)], rid=f"id-{i}") for i in range(5)]
    out = h.post(root, body).json()
    assert {r["id"]: r["result"] for r in out} == {f"id-{i}": 0.05 * (5 - i) for i in range(5)}


# --------------------------------------------------------------------------- bad input


def test_invalid_json(root: rpc.JSONRPC) -> None:
    obj = error_of(root, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert obj["error"]["code"] == -32700 and obj["id"] is None
    still_serving(root)


def test_invalid_json_in_batch(root: rpc.JSONRPC) -> None:
    obj = error_of(
        root,
        b'[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        b'{"jsonrpc": "2.0", "method"]',
    )
    assert obj["error"]["code"] == -32700
    still_serving(root)


def test_empty_array(root: rpc.JSONRPC) -> None:
    obj = error_of(root, [])
    assert obj == {"jsonrpc": "2.0", "error": obj["error"], "id": None}
    assert obj["error"]["code"] == -32600
    still_serving(root)


@pytest.mark.parametrize("body", [[1], [1, 2, 3], ["a", None, [], True]])
def test_array_of_non_objects(root: rpc.JSONRPC, body: list[Any]) -> None:
    out = h.post(root, body).json()
    assert isinstance(out, list) and len(out) == len(body)
    assert all(r["error"]["code"] == -32600 and r["id"] is None for r in out)
    still_serving(root)


@pytest.mark.parametrize("version", [..., "1.0", 2.0, "2", None, ["2.0"]])
def test_jsonrpc_member_missing_or_wrong(root: rpc.JSONRPC, version: Any) -> None:
    body: dict[str, Any] = {"method": "ping", "id": 9}
    if version is not ...:
        body["jsonrpc"] = version
    obj = error_of(root, body)
    assert obj["error"]["code"] == -32600 and obj["id"] == 9
    still_serving(root)


@pytest.mark.parametrize("method", [1, None, ["ping"], {"a": 1}, True])
def test_method_not_a_string(root: rpc.JSONRPC, method: Any) -> None:
    obj = error_of(root, {"jsonrpc": "2.0", "method": method, "id": 1})
    assert obj["error"]["code"] == -32600
    still_serving(root)


@pytest.mark.parametrize(
    "method",
    [
        "rpc.nothing",
        "rpc.",
        "rpc.discover.x",
        "nope",
        "calc",
        "calc.",
        "calc.nope",
        "x.y.z",
        "",
        ".ping",
        "_rpc_discover",
        "rpc_ping",
        "__init__",
        "calc.__call__",
        "close",
        "setting",
    ],
)
def test_unknown_methods(root: rpc.JSONRPC, method: str) -> None:
    obj = error_of(root, req(method))
    assert obj["error"]["code"] == -32601 and obj["id"] == 1
    assert repr(method) in obj["error"]["message"]
    still_serving(root)


@pytest.mark.parametrize(
    "params",
    [
        ["a", 2],
        [1, None],
        {"minuend": "x", "subtrahend": 1},
        [True, 1],
        [1.5, 2],
    ],
)
def test_params_of_the_wrong_type(root: rpc.JSONRPC, params: Any) -> None:
    obj = error_of(root, req("calc.subtract", params))
    assert obj["error"]["code"] == -32602
    assert obj["error"]["data"]["expected"] == "int"
    still_serving(root)


@pytest.mark.parametrize("params", ["bar", 3, True, None])
def test_params_not_structured(root: rpc.JSONRPC, params: Any) -> None:
    obj = error_of(root, {"jsonrpc": "2.0", "method": "calc.add", "params": params, "id": 1})
    assert obj["error"]["code"] == -32600
    still_serving(root)


@pytest.mark.parametrize(
    "params",
    [
        [1],
        [],
        None,
        [1, 2, 3],
        {"a": 1},
        {"a": 1, "b": 2, "c": 3},
        {"x": 1, "y": 2},
        {"request": 1, "a": 1, "b": 2},
    ],
)
def test_too_many_or_too_few_args(root: rpc.JSONRPC, params: Any) -> None:
    calls: list[Any] = []
    root.add_method(lambda a, b: calls.append((a, b)), "spy")
    obj = error_of(root, req("spy", params))
    assert obj["error"]["code"] == -32602
    assert calls == []  # checked before the call
    obj = error_of(root, req("calc.add", params))
    assert obj["error"]["code"] == -32602 and obj["error"]["message"].startswith("Invalid params")
    still_serving(root)


def test_var_args_and_keyword_only(root: rpc.JSONRPC) -> None:
    assert result_of(root, "calc.sum", [1, 2, 3.5]) == 6.5
    assert result_of(root, "calc.sum") == 0
    assert error_of(root, req("calc.sum", [1, "x"]))["error"]["code"] == -32602
    assert error_of(root, req("calc.sum", {"values": [1]}))["error"]["code"] == -32602
    assert result_of(root, "calc.options", {"a": 5, "z": 1}) == {"a": 5, "z": 1}
    assert result_of(root, "calc.options") == {"a": 1}
    assert error_of(root, req("calc.options", [1]))["error"]["code"] == -32602


def test_huge_batch_over_the_limit() -> None:
    root = h.make_root(max_batch=50)
    body = [req("ping", rid=i) for i in range(51)]
    obj = error_of(root, body)
    assert obj["error"]["code"] == -32600 and obj["id"] is None
    assert obj["error"]["data"] == {"limit": 50}
    assert len(h.post(root, body[:50]).json()) == 50
    still_serving(root)


def test_a_method_that_raises(root: rpc.JSONRPC, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, "pulsar.rpc"):
        obj = error_of(root, req("calc.fail"))
    assert obj["error"] == {"code": -32603, "message": "Internal error"}
    assert "something broke" in caplog.text and "calc.fail" in caplog.text
    still_serving(root)


def test_error_details_setting() -> None:
    root = h.make_root(error_details=True)
    obj = error_of(root, req("calc.fail"))
    assert obj["error"]["data"] == {"type": "ValueError", "message": "something broke"}


def test_application_errors(root: rpc.JSONRPC) -> None:
    obj = error_of(root, req("calc.divide", [1, 0]))
    assert obj["error"] == {"code": -32001, "message": "division by zero", "data": {"a": 1}}
    assert result_of(root, "calc.divide", [1, 4]) == 0.25


async def _raise_rpc(code: int) -> None:
    raise rpc.RpcError(code, "custom")


def test_async_application_errors(root: rpc.JSONRPC) -> None:
    root.add_method(_raise_rpc, "raise_rpc")
    for code in (-32000, -32099, 1, 404):
        obj = error_of(root, req("raise_rpc", [code]))
        assert obj["error"] == {"code": code, "message": "custom"}


def test_a_method_that_hangs_past_the_timeout() -> None:
    root = h.make_root(timeout=0.3)
    start = time.monotonic()
    obj = error_of(root, req("calc.sleep", [30]))
    assert time.monotonic() - start < 5
    assert obj["error"]["code"] == -32000 and "timed out" in obj["error"]["message"]
    assert obj["error"]["data"] == {"timeout": 0.3}
    # a blocking method too (its thread finishes later on its own)
    obj = error_of(root, req("calc.block", [1.0]))
    assert obj["error"]["code"] == -32000
    # in a batch, only the slow call fails
    out = h.post(root, [req("calc.sleep", [30], rid=1), req("calc.add", [1, 1], rid=2)]).json()
    assert {r["id"]: r.get("result", r.get("error", {}).get("code")) for r in out} == {
        1: -32000,
        2: 2,
    }
    still_serving(root)
    root.close()


def test_timeout_error_raised_by_the_method_is_internal(root: rpc.JSONRPC) -> None:
    async def times_out() -> None:
        raise TimeoutError("my own")

    root.add_method(times_out)
    assert error_of(root, req("times_out"))["error"]["code"] == -32603


def test_results_that_are_not_json(root: rpc.JSONRPC) -> None:
    assert error_of(root, req("calc.nan"))["error"]["code"] == -32603
    assert error_of(root, req("calc.unserializable"))["error"]["code"] == -32603
    out = h.post(root, [req("calc.nan", rid=1), req("ping", rid=2)]).json()
    assert out[0]["error"]["code"] == -32603 and out[1]["result"] == "pong"
    still_serving(root)


def test_non_utf8_bytes(root: rpc.JSONRPC) -> None:
    for body in (b"\xff\xfe\x00", b'{"jsonrpc": "2.0", "method": "p\xe9", "id": 1}', b"\xc3"):
        obj = error_of(root, body)
        assert obj["error"]["code"] == -32700 and obj["id"] is None
    still_serving(root)


# --------------------------------------------------------------------------- HTTP envelope


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
def test_only_post(root: rpc.JSONRPC, method: str) -> None:
    resp = h.call_wsgi(root, h.environ(req("ping"), method=method))
    assert resp.code == 405 and resp.headers["allow"] == "POST"
    still_serving(root)


@pytest.mark.parametrize(
    "ctype",
    [
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json; charset=latin-1",
        "text/json",
        "application/jsonx",
    ],
)
def test_content_type_must_be_json(root: rpc.JSONRPC, ctype: str | None) -> None:
    resp = h.post(root, req("ping"), content_type=ctype)
    assert resp.code == 415
    assert resp.json()["error"]["data"]["status"] == 415
    still_serving(root)


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        'application/json;charset="UTF-8"',
        "application/json-rpc",
        "application/jsonrequest",
        "application/vnd.api+json",
    ],
)
def test_json_content_types(root: rpc.JSONRPC, ctype: str) -> None:
    assert h.post(root, req("ping"), content_type=ctype).json()["result"] == "pong"


def test_body_over_the_size_limit() -> None:
    root = h.make_root(max_body=100)
    body = json.dumps(req("echo", ["x" * 200])).encode()
    resp = h.post(root, body)
    assert resp.code == 413 and resp.json()["error"]["data"] == {"status": 413, "limit": 100}
    # chunked input (no Content-Length, the server marks the input as terminated)
    env = h.environ(body, **{"wsgi.input_terminated": True})
    del env["CONTENT_LENGTH"]
    assert h.call_wsgi(root, env).code == 413
    small = json.dumps(req("echo", ["x"])).encode()
    env = h.environ(small, **{"wsgi.input_terminated": True})
    del env["CONTENT_LENGTH"]
    assert h.call_wsgi(root, env).json()["result"] == "x"
    still_serving(root)


@pytest.mark.parametrize("length", ["abc", "-1", "1.5"])
def test_bad_content_length(root: rpc.JSONRPC, length: str) -> None:
    assert h.post(root, req("ping"), length=length).code == 400
    still_serving(root)


def test_empty_body_is_a_parse_error(root: rpc.JSONRPC) -> None:
    assert error_of(root, b"")["error"]["code"] == -32700
    env = h.environ(req("ping"))
    del env["CONTENT_LENGTH"]  # PEP 3333: no Content-Length, no body
    assert h.call_wsgi(root, env).json()["error"]["code"] == -32700


def test_request_gives_the_environ(root: rpc.JSONRPC) -> None:
    resp = h.post(root, req("calc.environ"), HTTP_X_TOKEN="secret")
    assert resp.json()["result"] == "secret"


# --------------------------------------------------------------------------- handler building


def test_sub_handlers_nest() -> None:
    inner = h.Calculator()
    middle = rpc.JSONRPC().add_handler("inner", inner)
    top = rpc.JSONRPC().add_handler("middle", middle)
    assert result_of(top, "middle.inner.add", [2, 3]) == 5
    assert top.get_method("middle.inner.add") is not None
    assert top.get_method("middle.nope") is None
    assert "middle.inner.add" in top.method_names()


@pytest.mark.parametrize("prefix", ["", "a.b", "rpc"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError):
        rpc.JSONRPC().add_handler(prefix, h.Calculator())


def test_add_handler_needs_a_handler() -> None:
    with pytest.raises(TypeError):
        rpc.JSONRPC().add_handler("x", object())  # type: ignore[arg-type]
    handler = rpc.JSONRPC()
    with pytest.raises(ValueError):
        handler.add_handler("x", handler)


def divide(a: float, b: float) -> float:
    """Divides a by b."""
    return a / b


def whoami(request: rpc.RpcRequest) -> str:
    return request.method


class WithFunctions(rpc.JSONRPC):
    rpc_divide = rpc.rpc_method(divide)
    rpc_whoami = rpc.rpc_method(whoami)
    product = rpc.rpc_method(name="multiply")(lambda a, b: a * b)

    @rpc.rpc_method
    def power(a: int, b: int) -> int:  # type: ignore[misc]  # a plain function, no self
        return int(a**b)

    def rpc_get_data(self, request: rpc.RpcRequest) -> list[Any]:
        return ["hello", 5]

    def helper(self) -> None:
        """Not exposed: no rpc_ prefix, not an rpc_method."""


class WithoutData(WithFunctions):
    rpc_get_data = None


def test_rpc_method_and_class_collection() -> None:
    handler = WithFunctions()
    assert handler.method_names() == ["divide", "whoami", "multiply", "power", "get_data"]
    assert result_of(handler, "divide", [1, 4]) == 0.25
    assert result_of(handler, "whoami") == "whoami"
    assert result_of(handler, "multiply", [3, 4]) == 12
    assert result_of(handler, "power", {"a": 2, "b": 10}) == 1024
    assert error_of(handler, req("helper"))["error"]["code"] == -32601
    assert WithoutData().method_names() == ["divide", "whoami", "multiply", "power"]


def test_add_method() -> None:
    handler = rpc.JSONRPC()

    async def hello(request: rpc.RpcRequest, name: str) -> str:
        return f"hello {name} from {request.method}"

    handler.add_method(hello).add_method(len, "length").add_method(divide, "div")
    assert result_of(handler, "hello", ["bob"]) == "hello bob from hello"
    assert result_of(handler, "length", [[1, 2]]) == 2
    assert result_of(handler, "div", [1, 2]) == 0.5
    for bad in ("", "a.b", "rpc.x"):
        with pytest.raises(ValueError):
            handler.add_method(divide, bad)
    with pytest.raises(ValueError):
        rpc.rpc_method(name="a.b")


def test_method_needs_request_param() -> None:
    class Bad(rpc.JSONRPC):
        def rpc_nothing(self) -> None:
            pass

    with pytest.raises(TypeError, match="request"):
        Bad()


def test_rpc_discover_reserved_on_root_only(root: rpc.JSONRPC) -> None:
    doc = result_of(root, "rpc.discover")
    assert doc["openrpc"].startswith("1.")
    assert "rpc.discover" not in [m["name"] for m in doc["methods"]]
    assert error_of(root, req("calc.rpc.discover"))["error"]["code"] == -32601


def test_invalid_options() -> None:
    for kwargs in ({"timeout": -1}, {"max_batch": 0}, {"max_body": "x"}, {"thread_workers": 0}):
        with pytest.raises(ValueError):
            rpc.JSONRPC(**kwargs)


def test_settings_defaults_and_overrides() -> None:
    handler = rpc.JSONRPC(timeout=5)
    assert handler.setting("timeout") == 5.0
    assert handler.setting("max_batch", None) == 1000
    assert handler.setting("max_body", None) == 1024 * 1024
    assert handler.setting("error_details", None) is False

    class FakeActor:
        cfg = pulsar.Config(apps=("rpc",), rpc_max_batch=7, rpc_timeout=9)

    assert handler.setting("max_batch", FakeActor()) == 7
    assert handler.setting("timeout", FakeActor()) == 5.0  # the constructor wins

    class CoreOnly:
        cfg = pulsar.Config()

    assert handler.setting("max_batch", CoreOnly()) == 1000


def test_rpc_settings_on_the_command_line() -> None:
    cfg = pulsar.Config(apps=("rpc",))
    cfg.load(["--rpc-timeout", "2.5", "--rpc-max-batch", "10", "--rpc-error-details"], {})
    assert (cfg.rpc_timeout, cfg.rpc_max_batch, cfg.rpc_error_details) == (2.5, 10, True)
    cfg = pulsar.Config(apps=("rpc",))
    cfg.load([], {"PULSAR_RPC_MAX_BODY": "2048"})
    assert cfg.rpc_max_body == 2048


def test_handler_pickles() -> None:
    import pickle

    handler = h.make_root(timeout=3)
    handler.add_method(divide, "div")
    h.post(handler, req("calc.block", [0]))  # starts a pool
    copy = pickle.loads(pickle.dumps(handler))
    assert copy.method_names() == handler.method_names()
    assert result_of(copy, "div", [1, 2]) == 0.5
    assert result_of(copy, "calc.add", [1, 2]) == 3
    assert copy.setting("timeout") == 3.0
    handler.close()
    copy.close()


def test_concurrent_http_requests_from_many_threads(root: rpc.JSONRPC) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                assert result_of(root, "calc.sleep", [0]) == 0
                assert result_of(root, "calc.add", [n, i]) == n + i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


async def test_called_from_a_thread_running_a_loop(root: rpc.JSONRPC) -> None:
    # a server calling the application on its loop thread: the coroutine runs elsewhere
    here = id(asyncio.get_running_loop())
    assert result_of(root, "calc.aloop") != here


def test_async_method_on_the_private_loop_without_actor(root: rpc.JSONRPC) -> None:
    from pulsar.apps.rpc._loops import private_loop

    assert result_of(root, "calc.aloop") == id(private_loop())
