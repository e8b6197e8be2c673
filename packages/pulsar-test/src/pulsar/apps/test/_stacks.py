"""Readable stacks of asyncio tasks and threads, for timeout and leak reports.

A task's *pending* stack comes from :meth:`asyncio.Task.get_stack` (the chain of coroutines it
is suspended in). Its *creation* stack is only known when the task factory of
:mod:`pulsar.apps.test._runner` recorded it. Frames of asyncio itself and of this plugin are left
out of creation stacks: they are the same for every task and hide the line that matters.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Any

import _pytest
import pluggy

__all__ = [
    "await_chain",
    "creation_stack",
    "format_frames",
    "format_origin",
    "format_task",
    "format_task_stacks",
    "format_thread_stacks",
]

#: Directories whose frames are noise in a creation stack: asyncio, pytest, pluggy, this plugin.
_NOISE_DIRS = tuple(
    os.path.dirname(path) + os.sep
    for path in (asyncio.__file__, _pytest.__file__ or "", pluggy.__file__ or "", __file__)
)
#: How many frames a creation stack keeps (the innermost ones).
_CREATION_DEPTH = 24
#: How many tasks a report lists before it summarises the rest.
_MAX_TASKS = 50


def creation_stack(skip: int = 1) -> traceback.StackSummary:
    """The caller's stack, innermost frames first trimmed of asyncio and plugin frames.

    Cheap enough for a task factory: source lines are looked up only when formatted.
    """
    frame = sys._getframe(skip + 1)
    summary = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=_CREATION_DEPTH, lookup_lines=False
    )
    frames = [f for f in summary if not f.filename.startswith(_NOISE_DIRS)]
    frames.reverse()
    return traceback.StackSummary.from_list(frames)


def format_origin(origin: Iterable[tuple[str, int, str]]) -> traceback.StackSummary:
    """A coroutine's ``cr_origin`` (innermost first) as a stack summary without noise frames."""
    frames = [
        traceback.FrameSummary(filename, lineno, name)
        for filename, lineno, name in origin
        if not filename.startswith(_NOISE_DIRS)
    ]
    frames.reverse()
    return traceback.StackSummary.from_list(frames)


def format_frames(stack: traceback.StackSummary, indent: str = "    ") -> str:
    """Format a stack summary (oldest call first), each line prefixed by ``indent``."""
    lines = "".join(stack.format()).rstrip("\n").splitlines()
    return "\n".join(indent + line[2:] for line in lines)


def await_chain(coro: Any) -> list[FrameType]:
    """The frames of a coroutine and of what it awaits, down to the innermost one suspended.

    :meth:`asyncio.Task.get_stack` stops at the outermost coroutine; this follows ``cr_await``
    (and generators' ``gi_yieldfrom``, async generators' ``ag_await``) to where it waits.
    """
    frames = []
    seen = 0
    while coro is not None and seen < 200:
        seen += 1
        frame = next(
            (getattr(coro, a) for a in ("cr_frame", "gi_frame", "ag_frame") if hasattr(coro, a)),
            None,
        )
        if frame is None:
            break
        frames.append(frame)
        coro = next(
            (
                getattr(coro, a)
                for a in ("cr_await", "gi_yieldfrom", "ag_await")
                if getattr(coro, a, None) is not None
            ),
            None,
        )
    return frames


def _pending_stack(task: asyncio.Task[object]) -> traceback.StackSummary:
    frames = await_chain(task.get_coro())
    return traceback.StackSummary.extract(
        ((frame, frame.f_lineno) for frame in frames), lookup_lines=True
    )


def format_task(
    task: asyncio.Task[object],
    created: traceback.StackSummary | None = None,
    *,
    note: str = "",
) -> str:
    """Describe one task: its repr, where it was created (if known) and where it waits."""
    head = f"  {task!r}{note}"
    parts = [head]
    if created:
        parts.append("    created at (most recent call last):")
        parts.append(format_frames(created, "      "))
    pending = _pending_stack(task)
    if pending:
        parts.append("    pending at (most recent call last):")
        parts.append(format_frames(pending, "      "))
    return "\n".join(parts)


def format_task_stacks(
    tasks: Iterable[asyncio.Task[object]],
    *,
    created: dict[asyncio.Task[object], traceback.StackSummary] | None = None,
    notes: dict[asyncio.Task[object], str] | None = None,
) -> str:
    """Describe each of ``tasks`` with its stacks, one block per task.

    ``created`` maps tasks to their creation stacks, ``notes`` to a short remark printed after
    the repr. At most 50 tasks are described; the rest are counted.
    """
    tasks = list(tasks)
    created = created or {}
    notes = notes or {}
    blocks = [
        format_task(task, created.get(task), note=notes.get(task, ""))
        for task in tasks[:_MAX_TASKS]
    ]
    if len(tasks) > _MAX_TASKS:
        blocks.append(f"  ... and {len(tasks) - _MAX_TASKS} more tasks")
    return "\n".join(blocks)


def format_thread_stacks(*, skip_current: bool = True) -> str:
    """The stack of every thread of this process (like :mod:`faulthandler`, but readable).

    The calling thread is left out when ``skip_current`` is true: from a loop callback its stack
    is the event loop itself.
    """
    names = {thread.ident: thread for thread in threading.enumerate()}
    current = threading.get_ident()
    blocks = []
    for ident, frame in sorted(sys._current_frames().items()):
        if skip_current and ident == current:
            continue
        thread = names.get(ident)
        if thread is None:
            title = f"  Thread {ident} (not started by threading)"
        else:
            kind = " daemon" if thread.daemon else ""
            title = f"  Thread {thread.name!r}{kind} (ident {ident}):"
        stack = traceback.StackSummary.extract(traceback.walk_stack(frame), lookup_lines=True)
        stack.reverse()
        blocks.append(f"{title}\n{format_frames(stack, '    ')}")
    return "\n".join(blocks) if blocks else "  (no other thread)"
