"""JSON-RPC 2.0 framing without I/O: bytes in, calls out; results in, bytes out.

How it works: :func:`parse_payload` decodes a request body (strict UTF-8, strict JSON: no
``NaN``/``Infinity``) and checks every request object against the specification, producing a
:class:`Payload` whose items are either :class:`Call` (a valid request, maybe a notification)
or :class:`Rejected` (an invalid request object, answered with -32600 even without an ``id``,
as the specification's examples show). A body that is not JSON, an empty array or a batch over
the limit give a payload with a single ``error`` and no items. The response side
(:func:`encode_result`, :func:`encode_error`, :func:`join_responses`) builds each response
object separately so that one result that cannot be encoded turns into an error for that call
only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ._errors import InternalError, InvalidRequest, ParseError, RpcError

__all__ = [
    "Call",
    "Payload",
    "Rejected",
    "encode_error",
    "encode_result",
    "encode_result_or_error",
    "is_valid_id",
    "join_responses",
    "parse_payload",
]

_MISSING: Any = object()


@dataclass(slots=True)
class Call:
    """A valid request object: ``method``, ``params`` (a list, a dict, or None when omitted)
    and ``id`` (meaningful only when ``notification`` is False)."""

    method: str
    params: list[Any] | dict[str, Any] | None
    id: Any = None
    notification: bool = False


@dataclass(slots=True)
class Rejected:
    """An invalid request object: answered with ``error`` and ``id`` (None when unknown)."""

    error: RpcError
    id: Any = None


@dataclass(slots=True)
class Payload:
    """A parsed body: ``batch`` tells whether it was an array; ``items`` keeps its order.

    When ``error`` is set the body as a whole is answered with that single error object
    (id null): a parse error, an empty batch, a batch over the limit.
    """

    batch: bool = False
    items: list[Call | Rejected] = field(default_factory=list)
    error: RpcError | None = None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def is_valid_id(value: Any) -> bool:
    """A request ``id`` must be a string, a number (not a boolean) or null."""
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _check(obj: Any) -> Call | Rejected:
    """One request object -> a Call, or Rejected with the reason."""
    if not isinstance(obj, dict):
        return Rejected(InvalidRequest("Invalid Request: a request must be a JSON object"))
    rid = obj.get("id", _MISSING)
    notification = rid is _MISSING
    if notification:
        rid = None
    elif not is_valid_id(rid):
        return Rejected(InvalidRequest("Invalid Request: id must be a string, a number or null"))
    if obj.get("jsonrpc") != "2.0":
        return Rejected(InvalidRequest('Invalid Request: "jsonrpc" must be exactly "2.0"'), rid)
    method = obj.get("method")
    if not isinstance(method, str):
        return Rejected(InvalidRequest("Invalid Request: method must be a string"), rid)
    params = obj.get("params", _MISSING)
    if params is _MISSING:
        params = None
    elif not isinstance(params, list | dict):
        return Rejected(
            InvalidRequest("Invalid Request: params must be an array or an object"), rid
        )
    return Call(method, params, rid, notification)


def parse_payload(body: bytes, *, max_batch: int) -> Payload:
    """Decode and check a request body.

    Args:
        body: the raw HTTP body.
        max_batch: the most calls accepted in one batch.

    Returns:
        A :class:`Payload`; never raises for bad input.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Payload(error=ParseError(f"Parse error: the body is not UTF-8 ({exc.reason})"))
    try:
        data = _decoder.decode(text)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return Payload(error=ParseError(f"Parse error: {reason}"))
    if isinstance(data, list):
        if not data:
            return Payload(batch=True, error=InvalidRequest("Invalid Request: empty batch"))
        if len(data) > max_batch:
            return Payload(
                batch=True,
                error=InvalidRequest(
                    f"Invalid Request: a batch of {len(data)} calls is over the limit of "
                    f"{max_batch}",
                    {"limit": max_batch},
                ),
            )
        return Payload(batch=True, items=[_check(obj) for obj in data])
    return Payload(items=[_check(data)])


def _dump_id(rid: Any) -> str:
    return _encoder.encode(rid)


def encode_result(rid: Any, result: Any) -> bytes:
    """A success response object; raises TypeError/ValueError when ``result`` is not JSON."""
    return f'{{"jsonrpc":"2.0","result":{_encoder.encode(result)},"id":{_dump_id(rid)}}}'.encode()


def encode_error(rid: Any, error: RpcError) -> bytes:
    """An error response object. ``error.data`` that cannot be encoded is replaced by its
    ``repr`` (an error response is always produced)."""
    obj = error.to_dict()
    try:
        text = _encoder.encode(obj)
    except (TypeError, ValueError):
        obj["data"] = repr(error.data)
        text = _encoder.encode(obj)
    return f'{{"jsonrpc":"2.0","error":{text},"id":{_dump_id(rid)}}}'.encode()


def encode_result_or_error(rid: Any, result: Any) -> bytes:
    """:func:`encode_result`, or a -32603 error when the result is not JSON-serializable."""
    try:
        return encode_result(rid, result)
    except (TypeError, ValueError, RecursionError) as exc:
        return encode_error(
            rid, InternalError(f"Internal error: the result is not JSON-serializable ({exc})")
        )


def join_responses(parts: list[bytes], *, batch: bool) -> bytes | None:
    """The response body: one object, an array for a batch, or None when nothing is to be
    sent (only notifications)."""
    if not parts:
        return None
    if not batch:
        return parts[0]
    return b"[" + b",".join(parts) + b"]"
