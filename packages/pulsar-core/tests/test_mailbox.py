"""Sans-IO tests of the mailbox connection: handshake, framing, limits."""

from __future__ import annotations

import pickle
import struct

import pytest

from pulsar import AuthenticationError, ProtocolError
from pulsar import _mailbox as mb

SECRET = b"s" * 32


def pair(
    server_secret: bytes = SECRET, client_secret: bytes = SECRET, max_frame_size: int = 1 << 20
) -> tuple[mb.Connection, mb.Connection]:
    server = mb.Connection(mb.Role.SERVER, server_secret, max_frame_size=max_frame_size)
    client = mb.Connection(mb.Role.CLIENT, client_secret, max_frame_size=max_frame_size)
    return server, client


def pump(src_bytes: bytes, dst: mb.Connection) -> list[object]:
    dst.receive_data(src_bytes)
    events = []
    while (event := dst.next_event()) is not None:
        events.append(event)
    return events


def handshake(server: mb.Connection, client: mb.Connection) -> None:
    assert pump(server.initiate(), client) == []
    assert pump(client.data_to_send(), server) == [mb.Authenticated()]
    assert pump(server.data_to_send(), client) == [mb.Authenticated()]
    assert server.is_open and client.is_open


def test_handshake_and_message_round_trip() -> None:
    server, client = pair()
    handshake(server, client)
    env = mb.Envelope(mb.REQUEST, 1, "a", "b", "ping", True, mb.dumps(((), {})))
    events = pump(client.send(env), server)
    assert len(events) == 1
    frame = events[0]
    assert isinstance(frame, mb.Frame)
    assert frame.envelope == env
    # forwarding the raw payload reproduces the same frame
    assert pump(server.forward(frame.payload), client)[0].envelope == env


def test_messages_split_and_coalesced() -> None:
    server, client = pair()
    handshake(server, client)
    data = b"".join(
        client.send(mb.Envelope(mb.REQUEST, i, "a", "b", "echo", True, mb.dumps(i)))
        for i in range(50)
    )
    got = []
    for i in range(0, len(data), 7):  # byte dribble
        got.extend(pump(data[i : i + 7], server))
    assert [f.envelope.id for f in got] == list(range(50))


def test_wrong_secret_is_refused_before_any_unpickling() -> None:
    server, client = pair(client_secret=b"x" * 32)
    pump(server.initiate(), client)
    with pytest.raises(AuthenticationError, match="wrong secret"):
        pump(client.data_to_send(), server)
    assert server.state is mb.ConnState.CLOSED


def test_impostor_server_is_refused_by_client() -> None:
    server, client = pair(server_secret=b"x" * 32)
    pump(server.initiate(), client)
    server.receive_data(client.data_to_send())
    with pytest.raises(AuthenticationError):
        server.next_event()  # the server cannot verify a client of another secret
    # and a client that receives a bogus server proof refuses it
    server2, client2 = pair()
    pump(server2.initiate(), client2)
    client2.data_to_send()
    with pytest.raises(AuthenticationError, match="server failed"):
        pump(struct.pack("!I", 32) + b"z" * 32, client2)


def test_pickle_before_handshake_is_never_loaded() -> None:
    class Boom:
        def __reduce__(self):  # pragma: no cover - must never run
            raise AssertionError("unpickled!")

    server, _ = pair()
    server.initiate()
    payload = pickle.dumps((1, 2, 3))
    with pytest.raises(AuthenticationError):
        pump(struct.pack("!I", len(payload)) + payload, server)


def test_oversized_handshake_frame() -> None:
    server, _ = pair()
    server.initiate()
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        pump(struct.pack("!I", 10_000), server)


def test_oversized_message_frame() -> None:
    server, client = pair(max_frame_size=1024)
    handshake(server, client)
    with pytest.raises(ProtocolError, match="exceeds the limit of 1024"):
        pump(struct.pack("!I", 4096) + b"\0" * 10, server)


def test_garbage_after_handshake() -> None:
    server, client = pair()
    handshake(server, client)
    with pytest.raises(ProtocolError, match="undecodable"):
        pump(struct.pack("!I", 5) + b"\xff\x00garbage"[:5], server)
    assert server.state is mb.ConnState.CLOSED
    assert server.next_event() is None


def test_bad_magic() -> None:
    _, client = pair()
    with pytest.raises(AuthenticationError, match="not a pulsar mailbox"):
        pump(struct.pack("!I", 40) + b"HTTP/1.1" + b"0" * 32, client)


def test_send_before_open_is_an_error() -> None:
    server, client = pair()
    with pytest.raises(ProtocolError):
        client.send(mb.Envelope(mb.REQUEST, 1, "a", "b", "ping", True, b""))
    with pytest.raises(ProtocolError):
        server.forward(b"x")


def test_socket_dir_is_private(tmp_path) -> None:
    import os
    import shutil
    import stat

    path = mb.make_socket_dir()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    finally:
        shutil.rmtree(path)
