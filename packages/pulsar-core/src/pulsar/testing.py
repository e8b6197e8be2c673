"""Helpers for test runners that embed pulsar (the ``pulsar-test`` plugin, a worker process
running tests as a plain pytest process would)."""

from __future__ import annotations

from . import _arbiter
from ._actor import set_actor

__all__ = ["forget_arbiter", "set_actor"]


def forget_arbiter() -> None:
    """This process is not the arbiter's (a forked test worker): ``pulsar.arbiter()`` and
    ``pulsar.get_arbiter()`` create or find their own from now on."""
    _arbiter._forget_arbiter_in_child()
