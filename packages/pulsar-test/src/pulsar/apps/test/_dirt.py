"""What makes a test's loop "dirty", and the report that names it.

A test is dirty when, after its teardown, the loop still has tasks the test created, a coroutine
was dropped without being awaited while it ran, or an error went to the loop's exception handler
(an exception in a callback, a task's exception nobody retrieved). Twisted's trial calls this a
dirty reactor; here it fails the test unless it is marked ``allow_leaks``.
"""

from __future__ import annotations

import asyncio
import re
import traceback
import warnings
from collections.abc import Iterable
from typing import Any

from ._stacks import format_frames, format_origin, format_task_stacks

__all__ = ["describe_unawaited", "format_dirt", "format_loop_error", "is_unawaited_warning"]

_UNAWAITED = re.compile(r"coroutine '.*' was never awaited")


def is_unawaited_warning(message: warnings.WarningMessage) -> bool:
    """True for CPython's ``RuntimeWarning: coroutine '...' was never awaited``."""
    return issubclass(message.category, RuntimeWarning) and bool(
        _UNAWAITED.match(str(message.message))
    )


def describe_unawaited(message: warnings.WarningMessage) -> str:
    """The warning's first line, plus where the coroutine was created when that was tracked."""
    text = str(message.message).splitlines()[0]
    origin = getattr(message.source, "cr_origin", None)
    if origin:
        stack = format_origin(origin)
        if stack:
            text += "\n  created at (most recent call last):\n" + format_frames(stack, "    ")
    return text


def format_loop_error(context: dict[str, Any]) -> str:
    """One error given to a loop's exception handler, laid out like asyncio logs it."""
    lines = [str(context.get("message") or "Unhandled error in the event loop")]
    for key in sorted(context):
        if key not in ("message", "exception"):
            lines.append(f"{key}: {context[key]!r}")
    text = "\n".join(lines)
    exc = context.get("exception")
    if isinstance(exc, BaseException):
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text


def format_dirt(
    what: str,
    *,
    tasks: Iterable[asyncio.Task[Any]] = (),
    created: dict[asyncio.Task[Any], traceback.StackSummary] | None = None,
    unawaited: Iterable[str] = (),
    errors: Iterable[dict[str, Any]] = (),
) -> str | None:
    """The report of a dirty test, or ``None`` when there is nothing to report."""
    tasks, unawaited, errors = list(tasks), list(unawaited), list(errors)
    if not (tasks or unawaited or errors):
        return None
    parts = [f"pulsar: {what} left the event loop dirty (@pytest.mark.allow_leaks accepts it)"]
    if tasks:
        parts.append(
            f"\n{len(tasks)} task(s) created by the test still pending after its teardown "
            "(now cancelled):\n" + format_task_stacks(tasks, created=created)
        )
    if unawaited:
        parts.append(f"\n{len(unawaited)} coroutine(s) never awaited:")
        parts.extend("  " + text.replace("\n", "\n  ") for text in unawaited)
    if errors:
        parts.append(f"\n{len(errors)} error(s) reported to the loop's exception handler:")
        parts.extend("  " + format_loop_error(ctx).replace("\n", "\n  ") for ctx in errors)
    return "\n".join(parts)
