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


# -- the hot path: cached header names, coalesced writes ------------------------------------------


def test_cached_names_keep_each_split_apart() -> None:
    # "ab"+"c" and "a"+"bc" are the same name bytes: the lengths are part of the cache key
    server, client = pair()
    handshake(server, client)
    envs = [
        mb.Envelope(mb.REQUEST, 1, "ab", "c", "x", True, b""),
        mb.Envelope(mb.REQUEST, 2, "a", "bc", "x", True, b""),
        mb.Envelope(mb.REPLY, 3, "a", "b", "cx", False, b"body"),
        mb.Envelope(mb.REPLY, 3, "a", "bcx", "", False, b"body"),
    ]
    for _ in range(2):  # a cache miss, then a hit
        got = server.feed(b"".join(client.send(env) for env in envs))
        assert [f.envelope for f in got] == envs
        assert all(type(f.envelope) is mb.Envelope for f in got)
    # encoding from the cache still refuses what it never cached
    with pytest.raises(ProtocolError, match="255 bytes"):
        client.send(mb.Envelope(mb.REQUEST, 1, "a" * 256, "b", "x", True, b""))


def test_names_caches_are_bounded() -> None:
    server, client = pair()
    handshake(server, client)
    for i in range(mb._NAMES_MAX + 10):
        env = mb.Envelope(mb.REQUEST, i, f"s{i}", "t", "c", True, b"")
        assert server.feed(client.send(env))[0].envelope == env
    assert len(mb._names_out) <= mb._NAMES_MAX
    assert len(mb._names_in) <= mb._NAMES_MAX


def test_header_longer_than_its_frame_is_refused() -> None:
    server, client = pair()
    handshake(server, client)
    # names lengths of 50+50+50 bytes in a frame that holds 3 of them
    header = struct.pack("!BQBBBB", mb.REQUEST, 1, 1, 50, 50, 50) + b"abc"
    with pytest.raises(ProtocolError, match="undecodable"):
        server.feed(struct.pack("!I", len(header)) + header)
    assert server.state is mb.ConnState.CLOSED


def test_bad_frames_in_a_burst_are_refused_with_cached_names() -> None:
    good = mb.Envelope(mb.REQUEST, 1, "a", "b", "ping", True, b"")
    for bad in (
        # an unknown kind, with names already cached
        struct.pack("!BQBBBB", 9, 1, 1, 1, 1, 4) + b"abping",
        # names lengths longer than the frame
        struct.pack("!BQBBBB", mb.REQUEST, 1, 1, 1, 1, 40) + b"abping",
    ):
        server, client = pair()
        handshake(server, client)
        assert server.feed(client.send(good))[0].envelope == good  # names cached
        burst = client.send(good) + struct.pack("!I", len(bad)) + bad + client.send(good)
        with pytest.raises(ProtocolError, match="undecodable"):
            server.feed(burst)
        assert server.state is mb.ConnState.CLOSED


def test_non_ascii_names_are_refused() -> None:
    server, client = pair()
    handshake(server, client)
    header = struct.pack("!BQBBBB", mb.REQUEST, 1, 1, 2, 1, 1) + "é".encode() + b"tc"
    with pytest.raises(ProtocolError, match="undecodable"):
        server.feed(struct.pack("!I", len(header)) + header)


class _Counting:
    """Counts the writes of a real transport (the socket stays real)."""

    def __init__(self, proto: mb.MailboxProtocol) -> None:
        assert proto.transport is not None
        self.writes = 0
        real = proto.transport.write

        def write(data: bytes) -> None:
            self.writes += 1
            real(data)

        proto.transport.write = write  # type: ignore[method-assign]


async def _socket_pair(
    on_server_message, on_client_message
) -> tuple[mb.MailboxProtocol, mb.MailboxProtocol, object]:
    import asyncio
    import os
    import tempfile

    loop = asyncio.get_running_loop()
    path = os.path.join(tempfile.mkdtemp(), "s.sock")
    accepted: asyncio.Future[mb.MailboxProtocol] = loop.create_future()

    def server_factory() -> mb.MailboxProtocol:
        proto = mb.MailboxProtocol(
            mb.Connection(mb.Role.SERVER, SECRET), on_message=on_server_message
        )
        if not accepted.done():
            accepted.set_result(proto)
        return proto

    server = await loop.create_unix_server(server_factory, path)
    _, client = await loop.create_unix_connection(
        lambda: mb.MailboxProtocol(
            mb.Connection(mb.Role.CLIENT, SECRET), on_message=on_client_message
        ),
        path,
    )
    await asyncio.wait_for(client.opened, 5)
    sproto = await asyncio.wait_for(accepted, 5)
    await asyncio.wait_for(sproto.opened, 5)
    return sproto, client, server


async def _until(predicate, what: str) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def test_a_burst_replies_in_coalesced_writes_in_order() -> None:
    """Replies sent from the callbacks a burst resolved (as futures' done callbacks do) go out
    in a few writes, every one of them, in order; a lone frame's reply is written at once."""
    import asyncio

    n = 64

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: list[int] = []

        def on_server(proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
            env = frame.envelope
            reply = (mb.REPLY, env.id, "s", env.sender, env.command, True, env.body)
            # the reply is sent from a callback of the next loop turn
            loop.call_soon(proto.write_envelope, reply)

        def on_client(proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
            got.append(frame.envelope.id)

        sproto, client, server = await _socket_pair(on_server, on_client)
        counter = _Counting(sproto)
        burst = b"".join(
            mb.encode_frame((mb.REQUEST, i, "c", "s", "echo", True, b"")) for i in range(n)
        )
        assert client.transport is not None
        client.transport.write(burst)  # one write: the server reads it as one burst
        await _until(lambda: len(got) == n, "the replies")
        assert got == list(range(n))
        assert counter.writes <= n // mb._FLUSH_EVERY + 2  # not one write per reply
        # a lone frame: its reply written from a callback goes out at once, unbatched
        before = counter.writes
        client.write_envelope((mb.REQUEST, 999, "c", "s", "echo", True, b""))
        await _until(lambda: len(got) == n + 1, "the lone reply")
        assert counter.writes == before + 1
        client.close()
        sproto.close()
        server.close()  # type: ignore[attr-defined]

    asyncio.run(main())


def test_close_flushes_coalesced_writes() -> None:
    """A handler that writes then closes its connection within a burst loses nothing."""
    import asyncio

    async def main() -> None:
        got: list[int] = []
        lost = asyncio.get_running_loop().create_future()

        def on_server(proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
            env = frame.envelope
            proto.write_envelope((mb.REPLY, env.id, "s", env.sender, env.command, True, b""))
            if env.id == 2:
                proto.close()

        def on_client(proto: mb.MailboxProtocol, frame: mb.Frame) -> None:
            got.append(frame.envelope.id)

        _, client, server = await _socket_pair(on_server, on_client)
        client._on_close = lambda p, exc: lost.done() or lost.set_result(None)
        burst = b"".join(
            mb.encode_frame((mb.REQUEST, i, "c", "s", "echo", True, b"")) for i in range(3)
        )
        assert client.transport is not None
        client.transport.write(burst)
        await asyncio.wait_for(lost, 10)
        assert got == [0, 1, 2]
        server.close()  # type: ignore[attr-defined]

    asyncio.run(main())


def test_socket_dir_fits_a_unix_socket_under_a_deep_tmpdir(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a TMPDIR deeper than a unix socket path may be long (108 bytes on Linux): the arbiter
    # failed to start with "AF_UNIX path too long" (seen under pytest-xdist's longer tmp_path)
    import os
    import shutil
    import tempfile

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = mb.make_socket_dir()
    try:
        assert len(os.fsencode(os.path.join(path, "0123456789ab.link"))) <= mb.MAX_UNIX_PATH
        assert os.stat(path).st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(path)


def test_an_arbiter_starts_under_a_deep_tmpdir(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import core_helpers as h

    import pulsar

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))

    async def main(arbiter):
        assert isinstance(arbiter.address, str)  # still a unix mailbox, in a shorter folder
        proxy = await pulsar.spawn(name="w", start=h.noop_start)
        info = await pulsar.send(proxy, "info")
        assert "links" in info  # its link socket fits too
        return await pulsar.send(proxy, "ping")

    assert h.run_arbiter(main) == "pong"


def test_an_arbiter_with_no_short_folder_for_a_socket_listens_on_tcp(
    tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import tempfile

    import core_helpers as h

    import pulsar

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    monkeypatch.setattr(mb, "_SHORT_BASES", ())

    async def main(arbiter):
        assert isinstance(arbiter.address, tuple) and arbiter.address[0] == "127.0.0.1"
        proxy = await pulsar.spawn(name="w", start=h.noop_start)
        return await pulsar.send(proxy, "ping")

    with caplog.at_level("WARNING", logger="pulsar.arbiter"):
        assert h.run_arbiter(main) == "pong"
    assert "too deep for a unix socket" in caplog.text
