"""The supervisor's child state machine, walked as a table (sans-IO: no process, no socket)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from pulsar._actor import ActorSpec
from pulsar._supervision import (
    TRANSITIONS,
    ActorHandle,
    ChildState,
    IllegalTransition,
    PeerKind,
    Supervisor,
    exit_reason,
)


def _handle(aid: str = "a1") -> ActorHandle:
    spec = ActorSpec(
        aid=aid, name="w", kind="worker", concurrency="process", cfg=None, address=None, secret=b""
    )
    return ActorHandle(spec)


async def _walk() -> list[tuple[ChildState, ChildState, bool]]:
    seen = []
    for old, new in itertools.product(ChildState, ChildState):
        sup = Supervisor()
        handle = _handle()
        sup.add(handle)
        handle.state = old  # put it there directly: this test checks one transition each
        try:
            sup.transition(handle, new)
        except IllegalTransition as exc:
            assert old.value in str(exc) and new.value in str(exc)
            assert handle.state is old  # unchanged
            seen.append((old, new, False))
        else:
            assert handle.state is new
            seen.append((old, new, True))
    return seen


def test_every_transition_follows_the_table() -> None:
    seen = asyncio.run(_walk())
    assert len(seen) == len(ChildState) ** 2
    for old, new, allowed in seen:
        assert allowed == (new in TRANSITIONS[old]), (old, new)
    # the rules the table states
    assert TRANSITIONS[ChildState.EXITED] == frozenset()  # nothing comes back from the dead
    assert TRANSITIONS[ChildState.STOPPING] == {ChildState.EXITED}  # a stop is never undone
    for state in ChildState:
        if state is not ChildState.EXITED:
            assert ChildState.EXITED in TRANSITIONS[state]  # any live child can die
            assert ChildState.STOPPING in TRANSITIONS[state] or state is ChildState.STOPPING


async def _lifecycle() -> None:
    sup = Supervisor()
    reaped = []
    sup.on_reaped.append(lambda h, info: reaped.append((h.aid, info.reason, h.state)))
    h = _handle()
    sup.add(h)
    with pytest.raises(Exception, match="already supervised"):
        sup.add(h)
    assert h.state is ChildState.STARTING and h.alive and not h.ready
    sup.connected(h)
    assert h.state is ChildState.RUNNING
    sup.ready(h)
    assert h.state is ChildState.READY and h.ready
    assert sup.retire(h) and h.state is ChildState.RETIRING and h.stop_requested
    sup.keep(h)  # its replacement failed
    assert h.state is ChildState.READY and not h.stop_requested
    sup.stopping(h)
    sup.stopping(h)  # idempotent
    assert h.state is ChildState.STOPPING
    assert not sup.retire(h)
    info = sup.reaped(h, 0)
    assert info is not None and info.reason == "normal"
    assert sup.reaped(h, 0) is None  # reaped once
    assert h.state is ChildState.EXITED and not h.alive and h.stop_requested
    assert sup.exits["a1"] is info and "a1" not in sup.children
    assert reaped == [("a1", "normal", ChildState.EXITED)]
    assert (await h.exited) is info
    dead = _handle("a2")
    sup.add(dead)
    sup.reaped(dead, -9)
    with pytest.raises(IllegalTransition, match="exited -> running"):
        sup.transition(dead, ChildState.RUNNING)
    # a guest is a peer kind, not a string
    g = ActorHandle(
        ActorSpec(
            aid="g", name="g", kind="guest", concurrency="guest", cfg=None, address=None, secret=b""
        ),
        peer=PeerKind.GUEST,
    )
    assert g.peer is PeerKind.GUEST and h.peer is PeerKind.CHILD


def test_lifecycle_and_reaping() -> None:
    asyncio.run(_lifecycle())


def test_exit_reasons() -> None:
    assert exit_reason(0) == "normal"
    assert exit_reason(3) == "exit code 3"
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(None) == "exit code unknown"
    assert exit_reason(-15, timed_out=True) == "timeout (killed by SIGTERM)"
