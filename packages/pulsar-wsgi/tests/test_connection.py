"""Sans-IO tier: HttpConnection fed bytes (no loop, no socket), and the raw request corpus."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pulsar.apps.wsgi import (
    NEED_DATA,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HttpConnection,
    Limits,
    LocalProtocolError,
    RecvState,
    Request,
    RequestError,
    SendState,
)

CORPUS = Path(__file__).parent / "requests"
#: the time given to send_response (the connection reads no clock)
NOW = 1_764_750_000.0


def events(conn: HttpConnection) -> list[Any]:
    out = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)


def feed(data: bytes, *, step: int | None = None, **kwargs: Any) -> tuple[HttpConnection, list]:
    conn = HttpConnection(**kwargs)
    if step is None:
        conn.receive_data(data)
    else:
        for i in range(0, len(data), step):
            conn.receive_data(data[i : i + step])
    return conn, events(conn)


def load(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A corpus request: ``\\n`` line ends become CRLF; ``\\xNN`` escapes become that byte."""
    expected: dict[str, Any] = {}
    exec(path.with_suffix(".py").read_text(encoding="utf-8"), expected)
    text = path.read_bytes()
    if expected.get("strip_final_newline") and text.endswith(b"\n"):
        text = text[:-1]
    text = text.replace(b"\n", b"\r\n")
    text = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text)
    return text, expected


def requests_of(evs: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in evs:
        if isinstance(event, Request):
            out.append({"request": event, "body": b"", "ended": False})
        elif isinstance(event, Data):
            out[-1]["body"] += event.data
        elif isinstance(event, EndOfMessage):
            out[-1]["ended"] = True
    return out


VALID = sorted(CORPUS.glob("valid/*.http"))
INVALID = sorted(CORPUS.glob("invalid/*.http"))


def limits_of(expected: dict[str, Any], **defaults: int) -> Limits:
    """The :class:`Limits` of a corpus case: its ``settings`` over ``defaults``."""
    names = {
        "limit_request_line": "request_line",
        "limit_request_fields": "request_fields",
        "limit_request_field_size": "request_field_size",
        "max_body_size": "max_body_size",
    }
    values = dict(defaults)
    for name, value in expected.get("settings", {}).items():
        values[names[name]] = value
    return Limits(**values)


@pytest.mark.parametrize("step", [None, 1, 7])
@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_corpus(path: Path, step: int | None) -> None:
    """Every valid request, fed whole, byte by byte (every boundary: inside the head, a
    chunk-size line, the data) and in 7-byte pieces."""
    data, expected = load(path)
    conn, evs = feed(data, step=step, limits=limits_of(expected))
    assert not [e for e in evs if isinstance(e, RequestError)], evs
    got = requests_of(evs)
    assert len(got) == len(expected["requests"])
    for item, want in zip(got, expected["requests"], strict=True):
        req: Request = item["request"]
        assert item["ended"]
        assert req.method == want["method"]
        assert req.target == want["target"]
        assert req.http_version == want["version"]
        assert list(req.headers) == want["headers"]
        assert item["body"] == want["body"]
        assert req.keep_alive == want.get("keep_alive", True)
        assert req.chunked == want.get("chunked", False)
        assert req.expect_continue == want.get("expect_continue", False)
        assert req.content_length == want.get("content_length")
    last_keep_alive = expected["requests"][-1].get("keep_alive", True)
    assert conn.recv_state is (RecvState.IDLE if last_keep_alive else RecvState.DONE)


@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_corpus(path: Path, step: int | None) -> None:
    data, expected = load(path)
    conn, evs = feed(data, step=step, limits=limits_of(expected))
    errors = [e for e in evs if isinstance(e, RequestError)]
    assert len(errors) == 1, evs
    assert evs[-1] is errors[0]  # nothing after the error
    assert errors[0].status == expected["status"], errors[0]
    assert expected.get("reason", "") in errors[0].reason
    assert conn.recv_state is RecvState.ERROR
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # terminal: ignored
    assert events(conn) == []


# -- limits -----------------------------------------------------------------------------------


def test_request_line_limit() -> None:
    _, evs = feed(
        b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: t\r\n\r\n", limits=Limits(request_line=50)
    )
    assert evs == [RequestError(414, "Request target too long")]


def test_request_line_limit_trickled() -> None:
    conn = HttpConnection(limits=Limits(request_line=50))
    conn.receive_data(b"GET /")
    for _ in range(60):
        conn.receive_data(b"a")
    assert events(conn) == [RequestError(414, "Request target too long")]


def test_header_count_limit() -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(11)) + b"\r\n"
    )
    _, evs = feed(head, limits=Limits(request_fields=10))
    assert [type(e) for e in evs] == [RequestError]
    assert evs[0].status == 431


def test_header_size_limit() -> None:
    _, evs = feed(
        b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"y" * 200 + b"\r\n\r\n",
        limits=Limits(request_field_size=100),
    )
    assert evs[0].status == 431


def test_unterminated_header_is_bounded() -> None:
    """A header that never ends cannot make the parser buffer without bound."""
    conn = HttpConnection(limits=Limits(request_fields=2, request_field_size=100))
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\nX: ")
    for _ in range(100):
        conn.receive_data(b"y" * 100)
        if conn.recv_state is RecvState.ERROR:
            break
    assert events(conn) == [RequestError(431, "Request header fields too large")]


def test_chunked_body_limit() -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (100, b"x" * 100) for _ in range(20)) + b"0\r\n\r\n"
    _, evs = feed(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
        limits=Limits(max_body_size=1000),
    )
    assert isinstance(evs[0], Request)
    assert evs[-1] == RequestError(413, "Request body too large")
    assert sum(len(e.data) for e in evs if isinstance(e, Data)) <= 1000


def test_limits_disabled() -> None:
    limits = Limits(request_line=0, request_fields=0, request_field_size=0, max_body_size=0)
    head = b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: t\r\nX: " + b"y" * 10000 + b"\r\n\r\n"
    _, evs = feed(head, limits=limits)
    assert [type(e) for e in evs] == [Request, EndOfMessage]


# -- receive side -----------------------------------------------------------------------------


def test_body_shorter_than_content_length_then_eof() -> None:
    conn, evs = feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    assert [type(e) for e in evs] == [Request, Data]
    assert conn.recv_state is RecvState.BODY and conn.receiving
    conn.receive_data(b"")
    assert events(conn) == [ConnectionClosed()]
    assert conn.recv_state is RecvState.CLOSED


def test_body_longer_than_content_length() -> None:
    """The extra bytes are parsed as the next request: here garbage, so an error."""
    _, evs = feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n")
    assert [type(e) for e in evs] == [Request, Data, EndOfMessage, RequestError]
    assert evs[1].data == b"abc"


def test_bytes_after_a_final_request_are_ignored() -> None:
    conn, evs = feed(
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert [type(e) for e in evs] == [Request, EndOfMessage]
    assert not evs[0].keep_alive
    assert conn.recv_state is RecvState.DONE


def test_upgrade_is_a_final_request() -> None:
    conn, evs = feed(
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxx"
    )
    assert [type(e) for e in evs] == [Request, EndOfMessage]
    assert conn.recv_state is RecvState.DONE
    head = conn.send_response(evs[0], 400, [("Content-Length", "0")], now=NOW)
    assert b"Connection: close\r\n" in head


def test_eof_when_idle() -> None:
    conn = HttpConnection()
    conn.receive_data(b"")
    assert events(conn) == [ConnectionClosed()]


# -- send side --------------------------------------------------------------------------------


def request(**kwargs: Any) -> Request:
    values: dict[str, Any] = {
        "method": "GET",
        "target": b"/",
        "http_version": "1.1",
        "headers": (),
    }
    values.update(kwargs)
    return Request(**values)


def answered(conn: HttpConnection, req: Request) -> HttpConnection:
    conn.unanswered += 1
    return conn


def test_response_with_content_length() -> None:
    conn = answered(HttpConnection(), req := request())
    head = conn.send_response(
        req, 200, [("Content-Type", "text/plain"), ("Content-Length", "5")], now=NOW
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n")
    assert b"\r\nDate: " in head and b"\r\nServer: pulsar\r\n" in head
    assert b"Connection" not in head and head.endswith(b"\r\n\r\n")
    assert conn.send_data(b"hello") == b"hello"
    assert conn.send_end() == b""
    assert conn.send_state is SendState.DONE and not conn.must_close


def test_chunked_response_without_length() -> None:
    conn = answered(HttpConnection(), req := request())
    head = conn.send_response(req, 200, [], now=NOW)
    assert b"Transfer-Encoding: chunked\r\n" in head
    assert conn.send_data(b"hello") == b"5\r\nhello\r\n"
    assert conn.send_data(b"") == b""
    assert conn.send_end() == b"0\r\n\r\n"


def test_http10_without_length_closes() -> None:
    conn = answered(HttpConnection(), req := request(http_version="1.0", keep_alive=True))
    head = conn.send_response(req, 200, [], now=NOW)
    assert b"chunked" not in head and b"Connection: close\r\n" in head
    assert conn.send_data(b"abc") == b"abc"
    conn.send_end()
    assert conn.must_close


def test_http10_keep_alive() -> None:
    conn = answered(HttpConnection(), req := request(http_version="1.0", keep_alive=True))
    head = conn.send_response(req, 200, [("Content-Length", "0")], now=NOW)
    assert b"Connection: keep-alive\r\n" in head
    conn.send_end()
    assert not conn.must_close


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_responses(method: str, status: int) -> None:
    conn = answered(HttpConnection(), req := request(method=method))
    head = conn.send_response(
        req, status, [("Content-Length", "5")] if status != 304 else [], now=NOW
    )
    assert b"chunked" not in head
    if status == 204:
        assert b"Content-Length" not in head
    if method == "HEAD":
        assert b"Content-Length: 5\r\n" in head
    assert not conn.body_expected
    assert conn.send_data(b"hello") == b""
    assert conn.send_end() == b""
    assert not conn.must_close


def test_application_connection_close_is_honoured() -> None:
    conn = answered(HttpConnection(), req := request())
    head = conn.send_response(
        req,
        200,
        [("Connection", "close"), ("Transfer-Encoding", "x"), ("Content-Length", "0")],
        now=NOW,
    )
    assert head.count(b"Connection") == 1 and b"Connection: close\r\n" in head
    assert b"Transfer-Encoding" not in head
    conn.send_end()
    assert conn.must_close


def test_keep_alive_disabled() -> None:
    conn = answered(HttpConnection(keep_alive=False), req := request())
    assert b"Connection: close" in conn.send_response(req, 200, [("Content-Length", "0")], now=NOW)


def test_error_response_closes() -> None:
    conn = HttpConnection()
    head = conn.send_response(None, 400, [("Content-Length", "0")], now=NOW)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in head
    conn.send_end()
    assert conn.must_close


@pytest.mark.parametrize(
    "headers",
    [
        [("Bad Name", "x")],
        [("X", "a\r\nInjected: yes")],
        [("X", "a\nb")],
        [("Content-Length", "abc")],
        [("Content-Length", "-1")],
        [("X", "\u20ac")],
    ],
)
def test_invalid_response_headers(headers: list[tuple[str, str]]) -> None:
    conn = answered(HttpConnection(), req := request())
    with pytest.raises(LocalProtocolError):
        conn.send_response(req, 200, headers, now=NOW)
    assert conn.send_state is SendState.IDLE  # nothing sent: a 500 is still possible


def test_body_longer_and_shorter_than_declared() -> None:
    conn = answered(HttpConnection(), req := request())
    conn.send_response(req, 200, [("Content-Length", "3")], now=NOW)
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"abcd")
    conn = answered(HttpConnection(), req)
    conn.send_response(req, 200, [("Content-Length", "3")], now=NOW)
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    assert conn.must_close


def test_send_state_errors() -> None:
    conn = HttpConnection()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    with pytest.raises(LocalProtocolError):
        conn.send_response(request(), 100, [], now=NOW)
    conn.send_response(request(), 200, [], now=NOW)
    with pytest.raises(LocalProtocolError):
        conn.send_response(request(), 200, [], now=NOW)


def test_last_request_before_an_error_closes() -> None:
    conn, evs = feed(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGARBAGE\r\n\r\n")
    assert [type(e) for e in evs] == [Request, EndOfMessage, RequestError]
    head = conn.send_response(evs[0], 200, [("Content-Length", "0")], now=NOW)
    assert b"Connection: close" in head


def test_pipelined_responses_keep_alive() -> None:
    conn, evs = feed(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
    reqs = [e for e in evs if isinstance(e, Request)]
    for req in reqs:
        head = conn.send_response(req, 200, [("Content-Length", "0")], now=NOW)
        assert b"Connection" not in head
        conn.send_end()
    assert conn.unanswered == 0 and not conn.must_close


def test_continue() -> None:
    """``100 Continue`` only for the request being received that waits for it, once, before
    its response; a response sent while it still waits closes the connection after it."""
    assert HttpConnection().send_continue() == b""  # nothing received
    conn, evs = feed(
        b"PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    request = evs[0]
    assert request.expect_continue
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send_continue() == b""  # once
    conn.receive_data(b"abc")
    head = conn.send_response(request, 200, [("Content-Length", "0")], now=NOW)
    assert b"Connection: close" not in head  # the body came in full
    # a response before the body, without 100 Continue: the client may never send it
    conn, evs = feed(
        b"PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    head = conn.send_response(evs[0], 417, [("Content-Length", "0")], now=NOW)
    assert b"Connection: close" in head
    assert conn.send_continue() == b""  # a response started
    # no Expect: no 100 Continue
    conn, evs = feed(b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")
    assert conn.send_continue() == b""


def test_answer_before_a_long_body_closes() -> None:
    """More than MAX_DRAIN still to come when the response starts: ``Connection: close``."""
    from pulsar.apps.wsgi import MAX_DRAIN

    size = MAX_DRAIN + 10
    conn, evs = feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\nabc" % size)
    head = conn.send_response(evs[0], 200, [("Content-Length", "0")], now=NOW)
    assert b"Connection: close" in head
    conn, evs = feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % MAX_DRAIN)
    head = conn.send_response(evs[0], 200, [("Content-Length", "0")], now=NOW)
    assert b"Connection: close" not in head  # drained: the next request is served


def test_fail_receive_closes_the_response_in_progress() -> None:
    conn, evs = feed(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    conn.send_response(evs[0], 200, [], now=NOW)
    conn.fail_receive()
    conn.send_end()
    assert conn.must_close and conn.recv_state is RecvState.ERROR


def test_time_comes_in_as_an_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection reads no clock: the Date header is the ``now`` given."""
    import time

    def no_clock() -> float:
        raise AssertionError("HttpConnection read the clock")

    monkeypatch.setattr(time, "time", no_clock)
    monkeypatch.setattr(time, "monotonic", no_clock)
    conn = HttpConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
    request = events(conn)[0]
    head = conn.send_response(request, 200, [("Content-Length", "0")], now=0.0)
    assert b"\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n" in head
    conn.send_end()
    head = conn.send_response(request, 200, [("Content-Length", "0")], now=86400.5)
    assert b"\r\nDate: Fri, 02 Jan 1970 00:00:00 GMT\r\n" in head  # from the head cache


def test_send_events() -> None:
    """The h11 shape: bytes in, events out; events in, bytes out."""
    from pulsar.apps.wsgi import InformationalResponse, Response

    conn = HttpConnection()
    conn.receive_data(
        b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    request = conn.next_event()
    assert isinstance(request, Request) and conn.next_event() is NEED_DATA
    assert conn.send(InformationalResponse()) == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.receive_data(b"ok")
    assert events(conn) == [Data(b"ok"), EndOfMessage()]
    head = conn.send(Response(201, (("X-A", "b"),), request=request), now=0.0)
    assert head.startswith(b"HTTP/1.1 201 Created\r\nX-A: b\r\n")
    assert b"Transfer-Encoding: chunked\r\n" in head and head.endswith(b"\r\n\r\n")
    assert conn.send(Data(b"hello")) == b"5\r\nhello\r\n"
    assert conn.send(EndOfMessage()) == b"0\r\n\r\n"
    assert conn.send_state is SendState.DONE
    with pytest.raises(LocalProtocolError):
        conn.send(Data(b"late"))  # no response in progress
    with pytest.raises(LocalProtocolError):
        conn.send(RequestError(400, "x"))  # type: ignore[arg-type]
