"""Direct actor links: real process actors on real unix sockets, authenticated like the mailbox."""

from __future__ import annotations

import asyncio
import os
import signal

import core_helpers as h
import pytest

import pulsar
from pulsar import _mailbox as mb


def test_ordering_is_kept_across_the_switch_to_a_direct_link() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        b = await pulsar.spawn(name="b")
        # the link opens in the middle of the stream
        got = await pulsar.send(a, "burst", b.aid, 500)
        assert got["count"] == 500  # none lost, none reordered past get_count
        info_b = await pulsar.send(b, "info")
        assert a.aid in info_b["links"]["in"]
        # with the link ready: every message on it, still in order
        c = await pulsar.spawn(name="c")
        got = await pulsar.send(a, "burst", c.aid, 300, wait_link=True)
        assert got["count"] == 302
        assert got["links"]["out"][c.aid] >= 301  # the 300 counts and get_count
        return True

    assert h.run_arbiter(main)


def test_link_drop_falls_back_to_the_arbiter_route() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        b = await pulsar.spawn(name="b")
        assert await pulsar.send(a, "ping_many", b.aid, 5) == ["pong"] * 5
        assert (await pulsar.send(a, "info"))["links"]["out"]
        assert await pulsar.send(b, "drop_links") == 1
        for _ in range(200):  # until a has seen its link close
            if b.aid not in (await pulsar.send(a, "info"))["links"]["out"]:
                break
            await asyncio.sleep(0.02)
        # every later request gets its answer, through the arbiter
        assert await pulsar.send(a, "ping_many", b.aid, 20) == ["pong"] * 20
        assert await pulsar.send(a, "burst", b.aid, 50) == {
            "count": 50,
            "links": {"out": {}, "in": [b.aid]},
        }
        return True

    assert h.run_arbiter(main)


def test_dead_target_still_answers_actor_stopped() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        b = await pulsar.spawn(name="b")
        assert await pulsar.send(a, "ping_many", b.aid, 5) == ["pong"] * 5
        pid = (await pulsar.send(b, "info"))["pid"]
        os.kill(pid, signal.SIGKILL)
        await asyncio.shield(arbiter.handles[b.aid].exited)
        assert await pulsar.send(a, "ping_many", b.aid, 3) == ["ActorStopped"] * 3
        # a request in flight on the link when the target dies
        c = await pulsar.spawn(name="c")
        assert await pulsar.send(a, "ping_many", c.aid, 3) == ["pong"] * 3
        slow = asyncio.ensure_future(pulsar.send(a, "relay", c.aid, "sleep", 30))
        await asyncio.sleep(0)
        cpid = (await pulsar.send(c, "info"))["pid"]
        os.kill(cpid, signal.SIGKILL)
        with pytest.raises(pulsar.ActorStopped):
            await asyncio.wait_for(slow, 10)
        return True

    assert h.run_arbiter(main)


def test_link_socket_needs_the_secret() -> None:
    async def main(arbiter):
        b = await pulsar.spawn(name="b")
        path = os.path.join(os.path.dirname(arbiter.address), f"{b.aid}.link")
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        conn = mb.Connection(mb.Role.CLIENT, b"wrong" * 8)
        reader, writer = await asyncio.open_unix_connection(path)
        data = await reader.read(1024)
        conn.receive_data(data)
        with pytest.raises(pulsar.AuthenticationError):
            conn.next_event()
            conn.next_event()
            writer.write(conn.data_to_send())
            await asyncio.wait_for(reader.read(), 5)
            raise pulsar.AuthenticationError("closed")
        writer.close()
        assert await pulsar.send(b, "ping") == "pong"
        return True

    assert h.run_arbiter(main)


def test_request_in_flight_when_a_link_drops_gets_an_error_not_a_hang() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        b = await pulsar.spawn(name="b")
        assert await pulsar.send(a, "ping_many", b.aid, 5) == ["pong"] * 5
        slow = asyncio.ensure_future(pulsar.send(a, "relay", b.aid, "sleep", 5))
        for _ in range(500):  # until b runs it (info itself is one running command)
            if (await pulsar.send(b, "info"))["running_commands"] >= 2:
                break
            await asyncio.sleep(0.01)
        assert await pulsar.send(b, "drop_links") == 1  # b is alive: only the link drops
        with pytest.raises(pulsar.MailboxError, match="may have run"):
            await asyncio.wait_for(slow, 10)
        assert await pulsar.send(a, "ping_many", b.aid, 3) == ["pong"] * 3  # arbiter route
        return True

    assert h.run_arbiter(main)
