"""The whole actor test module a second time, the way Windows runs actors: the ``spawn`` start
method and a TCP mailbox on 127.0.0.1 (``Arbiter.mailbox_transport = "tcp"``).

Windows itself runs in the GitHub workflow matrix (``windows-latest``); this module keeps that path
exercised by every ``hatch run test`` on Linux. Tests that pass their own ``start_method`` keep it.
"""

from __future__ import annotations

from collections.abc import Iterator

import core_helpers as h
import pytest
from test_actors import *  # noqa: F403  (the same tests, collected again under this module)

import pulsar


@pytest.fixture(autouse=True)
def windows_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(h.RUN_DEFAULTS, "start_method", "spawn")
    monkeypatch.setattr(pulsar.Arbiter, "mailbox_transport", "tcp")
    yield


def test_the_mailbox_is_tcp_and_children_spawned() -> None:
    async def main(arbiter):
        assert isinstance(arbiter.address, tuple) and arbiter.address[0] == "127.0.0.1"
        proxy = await pulsar.spawn(name="w", start=h.noop_start)
        info = await pulsar.send(proxy, "info")
        assert "links" not in info  # no direct links over TCP
        assert arbiter.cfg.get("start_method") == "spawn"
        client = await pulsar.connect(arbiter.address, secret=arbiter.secret)
        assert await client.send(proxy, "ping") == "pong"
        await client.aclose()
        return True

    assert h.run_arbiter(main)
