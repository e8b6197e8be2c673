"""PulsarServerCommands outside a pulsar actor (the actor side is tested over a real server)."""

from __future__ import annotations

from typing import Any

import rpc_helpers as h

from pulsar.apps import rpc


def call(root: rpc.JSONRPC, method: str, params: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        body["params"] = params
    return h.post(root, body).json()  # type: ignore[no-any-return]


def test_ping_and_echo(root: rpc.JSONRPC) -> None:
    assert call(root, "ping")["result"] == "pong"
    assert call(root, "echo", ["hi"])["result"] == "hi"
    assert call(root, "echo", {"message": {"a": [1]}})["result"] == {"a": [1]}
    assert call(root, "echo")["result"] == ""


def test_functions_list_from_a_sub_handler() -> None:
    top = rpc.JSONRPC().add_handler("admin", h.Root()).add_handler("calc", h.Calculator())
    names = call(top, "admin.functions_list")["result"]
    assert "admin.ping" in names and "calc.add" in names
    assert names == top.method_names()


def test_documentation(root: rpc.JSONRPC) -> None:
    text = call(root, "documentation")["result"]
    assert text.startswith("# Root\n")
    assert "## `calc.add(a, b)`" in text
    assert "- `a` (number, required): the first number." in text


def test_server_info_without_actor(root: rpc.JSONRPC) -> None:
    info = call(root, "server_info")["result"]
    assert "arbiter" not in info
    server = info["server"]
    assert server["pulsar"] == server["pulsar_rpc"] == rpc.__version__
    assert isinstance(server["pid"], int)


def test_kill_actor_without_actor(root: rpc.JSONRPC) -> None:
    error = call(root, "kill_actor", ["abc"])["error"]
    assert error["code"] == -32000 and "pulsar actor" in error["message"]
    assert call(root, "kill_actor")["error"]["code"] == -32602


def test_kill_actor_can_be_removed() -> None:
    class Safe(rpc.PulsarServerCommands):
        rpc_kill_actor = None

    assert "kill_actor" not in Safe().method_names()
    assert call(Safe(), "kill_actor", ["x"])["error"]["code"] == -32601
