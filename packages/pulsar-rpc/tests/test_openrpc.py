"""Introspection: the OpenRPC document (rpc.discover) and the Markdown documentation."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Literal, Optional, TypedDict

import rpc_helpers as h

from pulsar.apps import rpc
from pulsar.apps.rpc._openrpc import describe, parse_docstring, schema_of


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Movie(TypedDict):
    title: str
    year: int


def test_schema_of_hints() -> None:
    assert schema_of(int) == {"type": "integer"}
    assert schema_of(float) == {"type": "number"}
    assert schema_of(str) == {"type": "string"}
    assert schema_of(bool) == {"type": "boolean"}
    assert schema_of(None) == {"type": "null"}
    assert schema_of(Any) == {}
    assert schema_of(list[int]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_of(list) == {"type": "array"}
    assert schema_of(dict[str, float]) == {
        "type": "object",
        "additionalProperties": {"type": "number"},
    }
    assert schema_of(Optional[int]) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}  # noqa: UP045
    assert schema_of(int | str) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert schema_of(int | Any) == {}
    assert schema_of(Literal["a", 1]) == {"enum": ["a", 1]}
    assert schema_of(Color) == {"enum": ["red", "blue"]}
    assert schema_of(tuple[int, str]) == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "string"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert schema_of(tuple[int, ...]) == {"type": "array", "items": {"type": "integer"}}
    assert schema_of(Point) == {
        "title": "Point",
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        "required": ["x"],
    }
    assert schema_of(Movie)["required"] == ["title", "year"]
    assert schema_of(object()) == {}


def test_parse_docstring() -> None:
    doc = """Adds two numbers
    and returns them.

    A longer description.

    Args:
        a: the first number.
        b (int): the second
            number.
        **rest: extra.

    Returns:
        Their sum.

    Raises:
        ValueError: never.
    """
    import inspect

    summary, description, params, returns = parse_docstring(inspect.cleandoc(doc))
    assert summary == "Adds two numbers and returns them."
    assert description == "A longer description."
    assert params == {"a": "the first number.", "b": "the second number.", "rest": "extra."}
    assert returns == "Their sum."
    assert parse_docstring("") == ("", "", {}, "")


def test_describe_method() -> None:
    root = h.make_root()
    found = root.get_method("calc.add")
    assert found is not None
    spec = describe("calc.add", found[1])
    assert spec == {
        "name": "calc.add",
        "summary": "Adds two numbers.",
        "params": [
            {
                "name": "a",
                "schema": {"type": "number"},
                "description": "the first number.",
                "required": True,
            },
            {
                "name": "b",
                "schema": {"type": "number"},
                "description": "the second number.",
                "required": True,
            },
        ],
        "result": {"name": "result", "schema": {"type": "number"}, "description": "Their sum."},
        "paramStructure": "either",
    }


def test_param_structures_and_defaults() -> None:
    handler = rpc.JSONRPC()

    def positional(a: int, /, b: int = 2) -> None:
        pass

    def named(*, a: str = "x") -> None:
        pass

    def both(*args: int, **kwargs: Any) -> None:
        pass

    handler.add_method(positional).add_method(named).add_method(both)
    doc = handler.discover()
    by_name = {m["name"]: m for m in doc["methods"]}
    assert by_name["positional"]["paramStructure"] == "by-position"
    assert by_name["positional"]["params"][1] == {
        "name": "b",
        "schema": {"type": "integer", "default": 2},
        "required": False,
    }
    assert by_name["named"]["paramStructure"] == "by-name"
    assert by_name["both"]["paramStructure"] == "either"
    (args,) = by_name["both"]["params"]
    assert args["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert args["required"] is False


def test_discover_document(root: rpc.JSONRPC) -> None:
    doc = h.post(root, {"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}).json()["result"]
    assert doc["openrpc"] == rpc.OPENRPC_VERSION
    assert doc["info"]["title"] == "Root"
    assert doc["info"]["description"] == "The test server."
    assert doc["info"]["version"]
    names = [m["name"] for m in doc["methods"]]
    assert names[:6] == [
        "ping",
        "echo",
        "server_info",
        "functions_list",
        "documentation",
        "kill_actor",
    ]
    assert "calc.add" in names and "calc.sleep" in names
    for method in doc["methods"]:
        assert set(method) >= {"name", "params", "result"}
        assert method["paramStructure"] in ("by-name", "by-position", "either")
        for param in method["params"]:
            assert set(param) >= {"name", "schema", "required"}


def test_title_and_version() -> None:
    handler = rpc.JSONRPC(title="Calc API", version="2.1")
    assert handler.discover()["info"] == {"title": "Calc API", "version": "2.1"}


def test_unresolvable_hints_are_ignored() -> None:
    handler = rpc.JSONRPC()

    def odd(a: NoSuchType) -> Nope:  # type: ignore[name-defined]  # noqa: F821
        return a

    handler.add_method(odd)
    (method,) = handler.discover()["methods"]
    assert method["params"][0]["schema"] == {}
    assert (
        h.post(handler, {"jsonrpc": "2.0", "method": "odd", "params": [1], "id": 1}).json()[
            "result"
        ]
        == 1
    )
