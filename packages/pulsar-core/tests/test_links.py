"""Direct actor links: real process actors on real unix sockets, authenticated like the mailbox."""

from __future__ import annotations

import asyncio
import os
import signal

import core_helpers as h
import pytest

import pulsar
from pulsar import _mailbox as mb


async def _link_up(a, b) -> None:
    """Wait until ``a``'s direct link to ``b`` is up: it opens beside the traffic (after the
    second message), so on a loaded host it may come only after a few more; 4 s at most."""
    for _ in range(200):
        if b.aid in (await pulsar.send(a, "info"))["links"]["out"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no direct link from {a.aid} to {b.aid} after 4 s")


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
        assert got["count"] == 303
        assert got["links"]["out"][c.aid] >= 301  # the 300 counts and get_count
        return True

    assert h.run_arbiter(main)


def test_link_drop_falls_back_to_the_arbiter_route() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        b = await pulsar.spawn(name="b")
        assert await pulsar.send(a, "ping_many", b.aid, 5) == ["pong"] * 5
        await _link_up(a, b)
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
        await _link_up(a, b)
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


async def _two_requests(actor, target):
    """Run in an actor: two acked pings to ``target``; whether a link to it was being opened
    while the second was in flight, and when the code awaiting its reply resumed."""
    links = actor.links
    await pulsar.send(target, "ping")
    second = pulsar.send(target, "ping")
    during = target in links._out
    await second
    return during, target in links._out


def _linking_to(actor, target):
    """Run in an actor: whether it opened (or opens) a link to ``target``."""
    return target in actor.links._out


async def _wait_link_ready(actor, target):
    await pulsar.async_while(10, lambda: target not in actor.links.info()["out"])
    return target in actor.links.info()["out"]


def test_a_link_opens_after_the_second_message_not_while_it_is_in_flight() -> None:
    # Opening a link is a handshake's round trips in both processes: started while the second
    # message was in flight, it delayed that message (a user sending twice paid for it).
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        c = await pulsar.spawn(name="c")
        during, after = await pulsar.send(a, "run", _two_requests, c.aid)
        assert during is False  # the second request travels alone
        assert after is False  # opened after the awaiting code resumed (two loop hops)
        # the replier: two replies make its link due; none is opened under them
        assert await pulsar.send(c, "run", _linking_to, a.aid) is False
        assert await pulsar.send(a, "run", _wait_link_ready, c.aid) is True
        assert await pulsar.send(a, "ping_many", c.aid, 3) == ["pong"] * 3
        # the third reply opened C's link back to A, after it was written
        assert await pulsar.send(c, "run", _linking_to, a.aid) is True
        return True

    assert h.run_arbiter(main)


def _casts(actor, target):
    """Run in an actor: three fire-and-forget ``count``; whether a link to ``target`` was being
    opened after each."""
    out = []
    for _ in range(3):
        pulsar.send(target, "count")
        out.append(target in actor.links._out)
    return out


def test_fire_and_forget_opens_its_link_with_the_third_message() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        c = await pulsar.spawn(name="c")
        assert await pulsar.send(a, "run", _casts, c.aid) == [False, False, True]
        assert await pulsar.send(a, "run", _wait_link_ready, c.aid) is True
        got = await pulsar.send(a, "burst", c.aid, 100)  # in order across the switch
        assert got["count"] == 103
        return True

    assert h.run_arbiter(main)
