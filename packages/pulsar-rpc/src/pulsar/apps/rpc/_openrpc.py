"""Introspection: an OpenRPC document and Markdown documentation built from the methods.

How it works: each method's signature (without ``self`` and ``request``) gives the params, in
order, with ``required`` for those without a default; positional-only params make the method
``by-position``, keyword-only ones (or ``**kwargs``) ``by-name``, otherwise ``either``. Type
hints become JSON Schemas (:func:`schema_of`); the docstring gives the summary (first line), the
description (the rest) and, from a Google-style ``Args:`` section, each param's description and
from ``Returns:`` the result's.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._methods import RpcMethod

__all__ = ["OPENRPC_VERSION", "describe", "document", "markdown", "parse_docstring", "schema_of"]

#: the version of the OpenRPC specification the documents follow
OPENRPC_VERSION = "1.3.2"

_SECTION_RE = re.compile(r"^(Args|Arguments|Parameters|Params|Returns|Return|Raises|Yields):\s*$")
_ITEM_RE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def schema_of(hint: Any, _depth: int = 0) -> dict[str, Any]:
    """The JSON Schema of a type hint; ``{}`` (anything) for what has no JSON equivalent."""
    if _depth > 8 or hint is inspect.Parameter.empty or hint is Any or hint is object:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return schema_of(args[0], _depth + 1)
    if origin in (typing.Union, types.UnionType):
        options = [schema_of(arg, _depth + 1) for arg in args]
        return {} if any(not o for o in options) else {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if hint in (list, set, frozenset) or origin in (list, set, frozenset, Sequence):
        schema: dict[str, Any] = {"type": "array"}
        if args:
            items = schema_of(args[0], _depth + 1)
            if items:
                schema["items"] = items
        return schema
    if hint is tuple or origin is tuple:
        schema = {"type": "array"}
        if args and not (len(args) == 2 and args[1] is Ellipsis):
            schema["prefixItems"] = [schema_of(a, _depth + 1) for a in args]
            schema["minItems"] = schema["maxItems"] = len(args)
        elif args:
            items = schema_of(args[0], _depth + 1)
            if items:
                schema["items"] = items
        return schema
    if hint is dict or origin in (dict, Mapping):
        schema = {"type": "object"}
        if len(args) == 2:
            values = schema_of(args[1], _depth + 1)
            if values:
                schema["additionalProperties"] = values
        return schema
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if isinstance(hint, type) and (typing.is_typeddict(hint) or dataclasses.is_dataclass(hint)):
        try:
            hints = typing.get_type_hints(hint)
        except Exception:
            hints = {}
        if dataclasses.is_dataclass(hint):
            fields = dataclasses.fields(hint)
            required = [
                f.name
                for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            names = [f.name for f in fields]
        else:
            names = list(hints)
            required = sorted(getattr(hint, "__required_keys__", names))
        return {
            "title": hint.__name__,
            "type": "object",
            "properties": {n: schema_of(hints.get(n, Any), _depth + 1) for n in names},
            "required": required,
        }
    return {}


def parse_docstring(doc: str) -> tuple[str, str, dict[str, str], str]:
    """Split a cleaned docstring into ``(summary, description, {param: text}, returns)``.

    The summary is the first paragraph joined on one line; the description is the rest
    without the ``Args:``/``Returns:`` sections, whose entries are collected instead.
    """
    lines = doc.strip().splitlines()
    if not lines:
        return "", "", {}, ""
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    summary = " ".join(line.strip() for line in lines[:end])
    params: dict[str, str] = {}
    returns: list[str] = []
    body: list[str] = []
    section: str | None = None
    current: str | None = None
    for line in lines[end:]:
        match = _SECTION_RE.match(line.strip()) if not line.startswith(" ") else None
        if match:
            section = match.group(1)
            current = None
            continue
        if section is not None and line and not line.startswith(" "):
            section = None  # a non-indented line ends the section
        if section in ("Args", "Arguments", "Parameters", "Params"):
            item = _ITEM_RE.match(line.strip())
            indent = len(line) - len(line.lstrip())
            if item and (current is None or indent <= 4):
                current = item.group(1).lstrip("*")
                params[current] = item.group(3).strip()
            elif current is not None and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
        elif section in ("Returns", "Return", "Yields"):
            if line.strip():
                returns.append(line.strip())
        elif section is None:
            body.append(line)
    description = "\n".join(body).strip()
    return summary, description, params, " ".join(returns)


def describe(name: str, method: RpcMethod) -> dict[str, Any]:
    """The OpenRPC Method Object of ``method`` exposed as ``name``."""
    hints = method.hints
    summary, description, pdocs, rdoc = parse_docstring(method.doc)
    params: list[dict[str, Any]] = []
    by_position = by_name = False
    P = inspect.Parameter
    for param in method.signature.parameters.values():
        if param.kind is P.POSITIONAL_ONLY:
            by_position = True
        elif param.kind is P.KEYWORD_ONLY:
            by_name = True
        elif param.kind is P.VAR_KEYWORD:
            by_name = True
            continue
        elif param.kind is P.VAR_POSITIONAL:
            by_position = True
        schema = schema_of(hints.get(param.name, P.empty))
        if param.kind is P.VAR_POSITIONAL:
            schema = {"type": "array", **({"items": schema} if schema else {})}
        descriptor: dict[str, Any] = {"name": param.name, "schema": schema}
        if pdocs.get(param.name):
            descriptor["description"] = pdocs[param.name]
        if param.kind is P.VAR_POSITIONAL:
            descriptor["required"] = False
            descriptor["description"] = (
                descriptor.get("description", "") + " (any number of trailing positional values)"
            ).strip()
        else:
            descriptor["required"] = param.default is P.empty
            if param.default is not P.empty and _is_json(param.default):
                descriptor["schema"] = {**schema, "default": param.default}
        params.append(descriptor)
    result: dict[str, Any] = {"name": "result", "schema": schema_of(hints.get("return", Any))}
    if rdoc:
        result["description"] = rdoc
    obj: dict[str, Any] = {"name": name}
    if summary:
        obj["summary"] = summary
    if description:
        obj["description"] = description
    obj["params"] = params
    obj["result"] = result
    obj["paramStructure"] = (
        "either" if by_position == by_name else ("by-position" if by_position else "by-name")
    )
    return obj


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def document(
    methods: Iterable[tuple[str, RpcMethod]],
    *,
    title: str,
    version: str,
    doc: Any = None,
) -> dict[str, Any]:
    """The OpenRPC document of ``methods`` (``(full name, RpcMethod)`` pairs)."""
    info: dict[str, Any] = {"title": title, "version": version}
    text = None
    if doc is not None and not type(doc).__module__.startswith("pulsar.apps.rpc."):
        text = type(doc).__dict__.get("__doc__")  # the user's class, not ours
    if text:
        info["description"] = " ".join(inspect.cleandoc(text).split("\n\n")[0].split())
    return {
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": [describe(name, method) for name, method in methods],
    }


def markdown(methods: Iterable[tuple[str, RpcMethod]], *, title: str) -> str:
    """Human-readable documentation of ``methods`` in Markdown."""
    out = [f"# {title}", ""]
    for name, method in methods:
        spec = describe(name, method)
        params = ", ".join(p["name"] for p in spec["params"])
        out += [f"## `{name}({params})`", ""]
        if spec.get("summary"):
            out += [spec["summary"], ""]
        if spec.get("description"):
            out += [spec["description"], ""]
        for param in spec["params"]:
            kind = param["schema"].get("type", "any")
            need = "required" if param["required"] else "optional"
            text = f": {param['description']}" if param.get("description") else ""
            out.append(f"- `{param['name']}` ({kind}, {need}){text}")
        if spec["params"]:
            out.append("")
    return "\n".join(out).rstrip() + "\n"
