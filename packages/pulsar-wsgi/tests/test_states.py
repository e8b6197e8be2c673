"""The connection's state table, walked sans-IO: every move of :data:`TRANSITIONS` is made with
bytes (and the server's calls: responses, aborts, the transport lost), no loop, no socket; every
move the table lacks raises (Remote-/LocalProtocolError)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pulsar.apps.wsgi import LocalProtocolError, RemoteProtocolError
from pulsar.apps.wsgi._connection import (
    TRANSITIONS,
    HttpConnection,
    RecvState,
    SendState,
    Trigger,
)
from pulsar.apps.wsgi._events import Request, RequestError

R, S, T = RecvState, SendState, Trigger
Step = Callable[[HttpConnection], object]

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
POST_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
POST_CLOSE_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
UPGRADE = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
BAD = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"  # Host repeated: 400


def recv(data: bytes) -> Step:
    return lambda conn: conn.receive_data(data)


def _requests(conn: HttpConnection) -> list[Request]:
    return [event for event in conn.events if isinstance(event, Request)]


def respond(index: int = 0) -> Step:
    """Send the head of the response to the ``index``-th request received."""
    return lambda conn: conn.send_response(
        _requests(conn)[index], 200, [("Content-Length", "2")], now=0.0
    )


def data(conn: HttpConnection) -> object:
    return conn.send_data(b"ok")


def end(conn: HttpConnection) -> object:
    return conn.send_end()


def next_cycle(conn: HttpConnection) -> object:
    conn.start_next_cycle()
    return None


def abort(conn: HttpConnection) -> object:
    conn.abort()
    return None


def lost(conn: HttpConnection) -> object:
    conn.connection_lost()
    return None


def give_up(conn: HttpConnection) -> object:
    conn.fail_receive()  # the server's timeout
    return None


#: how to reach each state from a new connection (bytes, then the server's calls)
REACH: dict[RecvState | SendState, list[Step]] = {
    R.IDLE: [],
    R.HEAD: [recv(b"GET / HTTP/1.1\r\n")],
    R.BODY: [recv(POST_HEAD)],
    R.DONE: [recv(GET_CLOSE)],
    R.ERROR: [recv(BAD)],
    R.CLOSED: [recv(b"")],
    S.IDLE: [recv(GET)],
    S.BODY: [recv(GET), respond()],
    S.DONE: [recv(GET + GET), respond(), data, end],
    S.MUST_CLOSE: [recv(GET_CLOSE), respond(), data, end],
    S.CLOSED: [recv(GET), lost],
}

#: how to make each move from the state REACH gives (the last step is the move)
MOVES: dict[tuple[RecvState | SendState, Trigger], list[Step]] = {
    (R.IDLE, T.BEGIN): [recv(b"G")],
    (R.IDLE, T.LAST): [recv(UPGRADE)],  # a request then Upgrade: WSGI cannot switch protocols
    (R.HEAD, T.HEAD): [recv(b"Host: a\r\nContent-Length: 5\r\n\r\n")],
    (R.BODY, T.END): [recv(b"hello")],
    (R.BODY, T.LAST): [recv(b"hello")],  # from START: the request said Connection: close
    (R.IDLE, T.ERROR): [recv(b"\x00GET\r\n\r\n")],
    (R.HEAD, T.ERROR): [recv(b"Host : a\r\n\r\n")],  # a space before the colon
    (R.BODY, T.ERROR): [recv(b"hello world")],  # not a request line after the body
    **{(state, T.EOF): [recv(b"")] for state in (R.IDLE, R.HEAD, R.BODY)},
    **{(state, T.LOST): [lost] for state in (R.IDLE, R.HEAD, R.BODY)},
    **{(state, T.LAST): [recv(UPGRADE)] for state in (R.DONE, R.ERROR, R.CLOSED)},
    **{(state, T.ERROR): [give_up] for state in (R.DONE, R.ERROR, R.CLOSED)},
    **{(state, T.EOF): [recv(b"")] for state in (R.DONE, R.ERROR, R.CLOSED)},
    **{(state, T.LOST): [lost] for state in (R.DONE, R.ERROR, R.CLOSED)},
    (S.IDLE, T.RESPONSE): [respond()],
    (S.BODY, T.DATA): [data],
    (S.BODY, T.END): [data, end],
    (S.BODY, T.LAST): [data, end],  # from START: the request said Connection: close
    (S.DONE, T.NEXT): [next_cycle],
    (S.DONE, T.RESPONSE): [respond(1)],
    **{(state, T.ABORT): [abort] for state in (S.IDLE, S.BODY, S.DONE, S.MUST_CLOSE, S.CLOSED)},
    **{(state, T.LOST): [lost] for state in SendState},
}


#: where a move starts from other than REACH (the same state, reached from another request)
START: dict[tuple[RecvState | SendState, Trigger], list[Step]] = {
    (R.BODY, T.LAST): [recv(POST_CLOSE_HEAD)],
    (S.BODY, T.LAST): [recv(GET_CLOSE), respond()],
}


def _side(state: RecvState | SendState) -> Callable[[HttpConnection], RecvState | SendState]:
    if isinstance(state, RecvState):
        return lambda conn: conn.recv_state
    return lambda conn: conn.send_state


def test_every_move_has_a_recipe() -> None:
    assert HttpConnection.TRANSITIONS is TRANSITIONS  # the one table, in the connection
    assert set(MOVES) == set(TRANSITIONS)
    assert {state for state, _ in TRANSITIONS} == set(RecvState) | set(SendState)


@pytest.mark.parametrize(
    ("state", "trigger"),
    list(TRANSITIONS),
    ids=[f"{type(s).__name__}.{s.name}-{t}" for s, t in TRANSITIONS],
)
def test_walk(state: RecvState | SendState, trigger: Trigger) -> None:
    """Reach ``state`` with bytes, make the move, land where the table says."""
    conn = HttpConnection()
    side = _side(state)
    steps = START.get((state, trigger), REACH[state])
    moves = MOVES[state, trigger]
    for step in steps:
        step(conn)
    for step in moves[:-1]:
        step(conn)
    assert side(conn) is state
    moves[-1](conn)
    target = TRANSITIONS[state, trigger]
    assert side(conn) is target
    _behaves_as(conn, target)


def _behaves_as(conn: HttpConnection, state: RecvState | SendState) -> None:
    """What landing in ``state`` means, checked by behaviour (not by reading the table)."""
    if state is R.IDLE:  # the next request is parsed
        before = len(_requests(conn))
        conn.receive_data(GET)
        assert len(_requests(conn)) == before + 1
    elif state in (R.DONE, R.ERROR, R.CLOSED):  # terminal: later bytes are ignored
        before = len(conn.events)
        conn.receive_data(GET)
        assert len(conn.events) == before
    elif state is S.IDLE:
        assert not conn.headers_sent and not conn.must_close
    elif state is S.BODY:
        assert conn.headers_sent and not conn.must_close
    elif state is S.DONE:
        assert conn.headers_sent and not conn.must_close and not conn.lost
    elif state is S.MUST_CLOSE:
        assert conn.must_close and not conn.lost
    elif state is S.CLOSED:
        assert conn.must_close and conn.lost


def test_errors_become_events() -> None:
    for state in (R.IDLE, R.HEAD, R.BODY):
        conn = HttpConnection()
        for step in REACH[state] + MOVES[state, T.ERROR]:
            step(conn)
        assert any(isinstance(event, RequestError) for event in conn.events)


@pytest.mark.parametrize("state", list(RecvState))
def test_illegal_receive_moves_raise_remote(state: RecvState) -> None:
    for trigger in Trigger:
        if (state, trigger) in TRANSITIONS:
            continue
        conn = HttpConnection()
        for step in REACH[state]:
            step(conn)
        with pytest.raises(RemoteProtocolError):
            conn._recv(trigger)
        assert conn.recv_state is state  # an illegal move changes nothing


def test_illegal_receive_move_from_the_parser_is_a_400() -> None:
    conn = HttpConnection()
    with pytest.raises(RemoteProtocolError):
        conn.on_message_complete()  # END in IDLE: a body that ends before any request


SEND_CALLS: dict[Trigger, Step] = {
    T.RESPONSE: respond(),
    T.DATA: data,
    T.END: end,
    T.NEXT: next_cycle,
}


@pytest.mark.parametrize("state", list(SendState))
def test_illegal_send_moves_raise_local(state: SendState) -> None:
    for trigger, call in SEND_CALLS.items():
        if (state, trigger) in TRANSITIONS:
            continue
        if trigger is T.END and (state, T.LAST) in TRANSITIONS:
            continue  # END and LAST are one call (send_end), the connection picks
        conn = HttpConnection()
        for step in REACH[state]:
            step(conn)
        with pytest.raises(LocalProtocolError):
            call(conn)
        assert conn.send_state is state, trigger


def test_headers_sent_is_the_send_state() -> None:
    conn = HttpConnection()
    conn.receive_data(GET + GET)
    assert not conn.headers_sent
    respond()(conn)
    assert conn.headers_sent
    data(conn)
    end(conn)
    assert conn.headers_sent  # DONE: this cycle's response is out (a late failure closes)
    conn.start_next_cycle()
    assert not conn.headers_sent


def test_lost_is_the_send_state() -> None:
    conn = HttpConnection()
    conn.receive_data(POST_HEAD)
    assert not conn.lost
    conn.connection_lost()
    assert conn.lost and conn.must_close
    assert conn.recv_state is R.CLOSED and conn.send_state is S.CLOSED
    conn.receive_data(b"GET / HTTP/1.1\r\n")  # later bytes: ignored
    assert conn.recv_state is R.CLOSED
