"""End-to-end tests of actors: real processes and threads talking over the real mailbox."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal

import core_helpers as h
import pytest

import pulsar


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_spawn_process_actor_all_start_methods(method: str) -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="calc", start=h.noop_start)
        assert isinstance(proxy, pulsar.ActorProxy)
        assert await pulsar.send(proxy, "ping") == "pong"
        assert await pulsar.send(proxy, "add", 2, 3) == 5
        who = await pulsar.send(proxy, "whoami")
        assert who["pid"] != os.getpid()
        assert who["name"] == "calc"
        assert who["caller"] == "arbiter"
        assert await pulsar.send(proxy, "run", _started) is True
        return await pulsar.send(proxy, "info")

    info = h.run_arbiter(main, start_method=method)
    assert info["state"] == "RUNNING"
    assert info["concurrency"] == "process"


def _started(actor):
    return actor.extra.get("started", False)


def test_thread_actor() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="t1", concurrency="thread", start=h.noop_start)
        who = await pulsar.send(proxy, "whoami")
        assert who["pid"] == os.getpid()
        info = await pulsar.send(proxy, "info")
        assert info["concurrency"] == "thread"
        assert await pulsar.send(proxy, "run", _started) is True
        return True

    assert h.run_arbiter(main)


def test_echo_config_and_commands() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="cfg", timeout=12)
        assert await pulsar.send(proxy, "echo", {"a": [1, 2]}) == {"a": [1, 2]}
        assert await pulsar.send(proxy, "config", "get", "timeout") == 12
        assert await pulsar.send(proxy, "config", "set", "timeout", 20) == 20
        with pytest.raises(pulsar.ConfigError):
            await pulsar.send(proxy, "config", "set", "timeout", "abc")
        with pytest.raises(pulsar.CommandError):
            await pulsar.send(proxy, "config", "get", "nope")
        assert "ping" in await pulsar.send(proxy, "commands")

    h.run_arbiter(main)


def test_actor_to_actor_through_the_arbiter() -> None:
    async def main(arbiter):
        a = await pulsar.spawn(name="a")
        b = await pulsar.spawn(name="b", concurrency="thread")
        who = await pulsar.send(a, "relay", b.aid, "whoami")
        assert who["name"] == "b" and who["caller"] == a.aid
        assert await pulsar.send(b, "relay", a.aid, "add", 1, 1) == 2
        assert await pulsar.send(a, "relay", "arbiter", "ping") == "pong"

    h.run_arbiter(main)


def test_errors_reach_the_caller() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="err")
        with pytest.raises(ValueError, match="bad things") as info:
            await pulsar.send(proxy, "fail", "bad things")
        assert any("remote traceback" in note for note in info.value.__notes__)
        with pytest.raises(pulsar.CommandNotFound, match="unknown command 'nope'"):
            await pulsar.send(proxy, "nope")
        with pytest.raises(pulsar.SerializationError, match="cannot be pickled"):
            pulsar.send(proxy, "echo", h.Unpicklable())
        with pytest.raises(pulsar.SerializationError, match="result of command 'bad_result'"):
            await pulsar.send(proxy, "bad_result")
        for target in (proxy, "arbiter"):  # a plain dict result, in a child and the arbiter
            with pytest.raises(pulsar.SerializationError, match="'bad_plain_result'"):
                await pulsar.send(target, "bad_plain_result")
        # the actor still serves after all of that
        assert await pulsar.send(proxy, "ping") == "pong"

    h.run_arbiter(main)


def test_unknown_and_dead_targets() -> None:
    async def main(arbiter):
        with pytest.raises(pulsar.ActorNotFound):
            await pulsar.send("nobody", "ping")
        proxy = await pulsar.spawn(name="short")
        assert await arbiter.kill_actor(proxy.aid) is True
        with pytest.raises(pulsar.ActorStopped, match="exited"):
            await pulsar.send(proxy, "ping")
        assert await arbiter.kill_actor(proxy.aid) is False

    h.run_arbiter(main)


def test_pending_request_fails_when_target_is_killed() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="victim")
        who = await pulsar.send(proxy, "whoami")
        pending = asyncio.ensure_future(pulsar.send(proxy, "sleep", 30))
        await asyncio.sleep(0.1)
        os.kill(who["pid"], signal.SIGKILL)
        with pytest.raises(pulsar.ActorStopped, match="SIGKILL"):
            await asyncio.wait_for(pending, 10)

    h.run_arbiter(main)


def test_fire_and_forget() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="ff")
        for _ in range(100):
            assert await pulsar.send(proxy, "count") is None
        # ordering on one connection: the ack'ed request comes after the casts
        return await pulsar.send(proxy, "get_count")

    assert h.run_arbiter(main) == 100


def test_link_receives_exit_reason() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="linked")
        watcher = await pulsar.spawn(name="watcher", concurrency="thread")
        fut = pulsar.link(proxy)
        # an actor can link too (through the arbiter)
        remote = asyncio.ensure_future(pulsar.send(watcher, "run", _link_and_wait, proxy.aid))
        await asyncio.sleep(0.2)
        who = await pulsar.send(proxy, "whoami")
        os.kill(who["pid"], signal.SIGKILL)
        info = await asyncio.wait_for(fut, 10)
        assert info.aid == proxy.aid and info.reason == "killed by SIGKILL"
        assert not info.normal
        assert await asyncio.wait_for(remote, 10) == "killed by SIGKILL"
        # linking to a dead actor resolves at once
        again = await asyncio.wait_for(pulsar.link(proxy), 5)
        assert again.reason == "killed by SIGKILL"
        nobody = await asyncio.wait_for(pulsar.link("unknown-aid"), 5)
        assert nobody.reason == "noproc"

    h.run_arbiter(main)


async def _link_and_wait(actor, aid):
    info = await actor.link(aid)
    return info.reason


def test_spawn_from_an_actor() -> None:
    async def main(arbiter):
        parent = await pulsar.spawn(name="parent")
        child = await pulsar.send(parent, "run", _spawn_child)
        assert isinstance(child, pulsar.ActorProxy)
        assert await pulsar.send(child, "ping") == "pong"
        info = await pulsar.send("arbiter", "info")
        names = sorted(a["name"] for a in info["actors"])
        assert names == ["child", "parent"]

    h.run_arbiter(main)


async def _spawn_child(actor):
    return await pulsar.spawn(name="child")


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_spawn_timeout(method: str) -> None:
    async def main(arbiter):
        with pytest.raises(pulsar.SpawnError, match=r"did not handshake within 0\.5s"):
            await pulsar.spawn(name="slow", start=h.SlowToStart(30), spawn_timeout=0.5)
        # the arbiter still works
        proxy = await pulsar.spawn(name="ok")
        assert await pulsar.send(proxy, "ping") == "pong"

    h.run_arbiter(main, start_method=method)


def test_send_outside_an_actor() -> None:
    with pytest.raises(pulsar.PulsarError, match="no pulsar actor"):
        pulsar.send("arbiter", "ping")


def test_send_from_the_actor_thread_pool() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="pool")
        return await pulsar.send(proxy, "run", _send_from_pool)

    assert h.run_arbiter(main) == "pong"


async def _send_from_pool(actor):
    def blocking():
        assert pulsar.get_actor() is actor
        with pytest.raises(pulsar.PulsarError, match="send_threadsafe"):
            pulsar.send("arbiter", "ping")  # no loop in this thread: nothing to bind to
        reply = pulsar.send_threadsafe("arbiter", "ping")
        assert isinstance(reply, concurrent.futures.Future)
        return reply.result(5)

    return await actor.run_in_executor(blocking)


def test_send_from_a_thread_with_its_own_loop_is_bound_to_that_loop() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="other-loop")
        return await pulsar.send(proxy, "run", _send_from_other_loop)

    assert h.run_arbiter(main) == ["pong", 5]


async def _send_from_other_loop(actor):
    def in_thread():
        from pulsar._actor import set_actor

        set_actor(actor)

        async def main():
            reply = pulsar.send("arbiter", "ping")
            assert isinstance(reply, asyncio.Future)
            assert reply.get_loop() is asyncio.get_running_loop()
            return [await reply, await pulsar.send(actor.proxy, "add", 2, 3)]

        return asyncio.run(main())

    return await actor.loop.run_in_executor(None, in_thread)


def test_send_keywords_named_like_its_own_parameters() -> None:
    """``target`` and ``action`` are positional-only: ``action=`` goes to the command."""

    async def main(arbiter):
        proxy = await pulsar.spawn(name="kw", timeout=7)
        got = await pulsar.send(proxy, "config", action="get", name="timeout")
        via_proxy = await proxy.send("config", action="get", name="timeout")
        echoed = await pulsar.send(proxy, "echo", message={"target": 1})
        return got, via_proxy, echoed

    assert h.run_arbiter(main) == (7, 7, {"target": 1})


def test_forked_child_has_no_arbiter() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="child")
        return await pulsar.send(proxy, "run", _child_arbiter)

    assert h.run_arbiter(main) == (None, "ActorProxy")


def _child_arbiter(actor):
    return pulsar.get_arbiter(), type(pulsar.arbiter()).__name__


def test_commands_are_registered_per_role() -> None:
    async def main(arbiter):
        proxy = await pulsar.spawn(name="plain")
        worker_cmds = await pulsar.send(proxy, "commands")
        arbiter_cmds = await pulsar.send("arbiter", "commands")
        assert "recycle" not in worker_cmds and "link" not in worker_cmds
        assert {"link", "notify", "ping"} <= set(arbiter_cmds) and "recycle" not in arbiter_cmds
        with pytest.raises(pulsar.CommandError, match="link is an arbiter command"):
            await pulsar.send(proxy, "link", "x")
        with pytest.raises(pulsar.CommandError, match="recycle is a monitor command"):
            await pulsar.send("arbiter", "recycle")
        assert await pulsar.send(proxy, "ping") == "pong"  # still serving
        return True

    assert h.run_arbiter(main)


def test_command_role_registration() -> None:
    from pulsar._commands import get_command

    @pulsar.command(role=pulsar.CommandRole.MONITOR)
    def only_monitors(request: pulsar.Request) -> str:
        return "monitor"

    cmd = get_command("only_monitors")
    assert cmd is not None and cmd.role is pulsar.CommandRole.MONITOR
    assert get_command("ping").role is pulsar.CommandRole.ANY  # type: ignore[union-attr]
