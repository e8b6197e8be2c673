"""Deferred: a Twisted-style callback chain that speaks asyncio, plus async helpers.

How it works
------------
A :class:`Deferred` holds a *result* and a queue of ``(callback, errback)`` pairs.  Firing it
(:meth:`Deferred.callback` or :meth:`Deferred.errback`) stores the first result and runs the
queue in order: every step receives the current result and its return value becomes the new
current result.  Which half of a pair runs depends on one rule, the same as Twisted's (where a
``Failure`` plays the part of the exception instance):

    **the chain is on the error track while the current result is a** ``BaseException``
    **instance**.

So an errback that returns a plain value recovers the chain onto the callback track, an errback
that raises (or returns an exception instance, like returning a ``Failure`` in Twisted) keeps it on
the error track, and a callback that raises moves it there.

A step that returns an *awaitable* (coroutine, ``asyncio.Future``/``Task``, another ``Deferred``,
anything with ``__await__``) pauses the chain.  A ``Deferred`` is chained directly (no event loop
needed: the inner Deferred gets a private continuation link, processed iteratively, so arbitrarily
long chains of Deferreds do not recurse); a done ``Future`` is read at once; anything else becomes
a task on the Deferred's loop (or the running loop) and the chain resumes from its done-callback.
Plain values never touch the event loop: the synchronous path creates no task and no future.

Interoperability with asyncio goes through real futures: ``await d`` (and hence
``asyncio.ensure_future``/``gather``) waits on :meth:`Deferred.as_future`, which appends a
pass-through step mirroring the chain's result into an ``asyncio.Future`` of the running loop.
:meth:`Deferred.from_future` goes the other way.  Cancellation propagates both ways: cancelling a
Deferred that is paused cancels what it waits on; cancelling the mirror future cancels the Deferred.

An error still sitting at the end of a chain when the Deferred is garbage collected, never
retrieved through ``result()``, ``exception()``, ``await`` or a mirror future, is logged as
"Unhandled error in Deferred" on the ``pulsar`` logger.  Cancellation is never logged.

A Deferred is not thread safe: fire it on the thread that runs its loop (use
``loop.call_soon_threadsafe`` from other threads).

(Length: this module is past 800 lines mostly in docstrings; the Deferred and the helpers
share the private future bridge ``_to_future``/``_outcome``/``_resolve_future``, and splitting
them would only move the ~300 lines of helpers into a module importing this one.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import inspect
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, Literal, TypeVar

from ._exceptions import PulsarError

__all__ = [
    "AlreadyCalledError",
    "Deferred",
    "async_while",
    "chain_future",
    "maybe_async",
    "multi_async",
]

_T = TypeVar("_T")
_logger = logging.getLogger("pulsar")

ErrorMode = Literal["first", "group", "return"]
_ERROR_MODES = ("first", "group", "return")

# One half of a chain link: (function or None for pass-through, args, kwargs).
_Step = tuple[Callable[..., Any] | None, tuple[Any, ...], dict[str, Any]]
_NO_KWARGS: dict[str, Any] = {}


class AlreadyCalledError(PulsarError, asyncio.InvalidStateError):
    """Raised when a :class:`Deferred` that has already been fired is fired again."""


def _continue(result: Any, chainee: Deferred[Any]) -> Any:  # pragma: no cover - marker only
    """Marker for the link an inner Deferred uses to resume its outer one (never called)."""
    raise AssertionError("the continuation marker is handled by the chain runner")


def _is_awaitable(obj: Any) -> bool:
    """Fast awaitable check: a type attribute lookup for everything but old generator coros."""
    if hasattr(type(obj), "__await__"):
        return True
    return inspect.isgenerator(obj) and inspect.isawaitable(obj)


def _get_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    return loop if loop is not None else asyncio.get_running_loop()


def _close_unawaited(obj: Any) -> None:
    """Close a coroutine we refuse to schedule, so it does not warn "never awaited"."""
    if inspect.iscoroutine(obj):
        obj.close()


def _outcome(fut: asyncio.Future[Any]) -> Any:
    """The result of a done future, or its exception instance (CancelledError if cancelled)."""
    if fut.cancelled():
        try:
            fut.result()  # raises the CancelledError carrying the cancel message
        except asyncio.CancelledError as cancelled:
            return cancelled
    error = fut.exception()
    return error if error is not None else fut.result()


def _cancel_message(exc: BaseException) -> Any:
    return exc.args[0] if exc.args else None


def _resolve_future(fut: asyncio.Future[Any], result: Any) -> None:
    """Settle ``fut`` with ``result`` using the error-track rule (no-op when already done)."""
    if fut.done():
        return
    if isinstance(result, asyncio.CancelledError):
        fut.cancel(_cancel_message(result))
    elif isinstance(result, BaseException):
        if isinstance(result, StopIteration):
            # asyncio futures refuse StopIteration (it would end the awaiting generator).
            err = RuntimeError(f"StopIteration raised in a Deferred chain: {result!r}")
            err.__cause__ = result
            result = err
        fut.set_exception(result)
    else:
        fut.set_result(result)


def _to_future(obj: Any, loop: asyncio.AbstractEventLoop | None) -> asyncio.Future[Any]:
    """Turn an awaitable (or a ``concurrent.futures.Future``) into an asyncio future."""
    if isinstance(obj, Deferred):
        return obj.as_future(loop)
    if asyncio.isfuture(obj):
        return obj
    if isinstance(obj, concurrent.futures.Future):
        return asyncio.wrap_future(obj, loop=_get_loop(loop))
    try:
        running = _get_loop(loop)
    except RuntimeError:
        _close_unawaited(obj)
        raise
    if inspect.iscoroutine(obj):
        return running.create_task(obj)
    return asyncio.ensure_future(obj, loop=running)


class Deferred(Generic[_T]):
    """A callback chain with Twisted semantics that is also an asyncio awaitable.

    Args:
        canceller: called with the Deferred when :meth:`cancel` is called before it fired. It may
            fire the Deferred itself; if it does not, the Deferred errbacks with
            ``asyncio.CancelledError`` and the next ``callback``/``errback`` from the original
            producer is silently ignored (once), as in Twisted.
        loop: the event loop used to schedule coroutines returned by callbacks and to create
            mirror futures when no loop is running. Defaults to the running loop at that time.

    Every ``add_*`` method returns the Deferred itself, so calls can be chained. Callbacks added
    after the Deferred fired run immediately (or as soon as the chain is no longer paused).
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_called",
        "_canceller",
        "_loop",
        "_paused",
        "_result",
        "_retrieved",
        "_running",
        "_suppress_already_called",
        "_waiting",
    )

    def __init__(
        self,
        canceller: Callable[[Deferred[Any]], object] | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._callbacks: deque[tuple[_Step, _Step]] = deque()
        self._called = False
        self._canceller = canceller
        self._loop = loop
        self._paused = False
        self._result: Any = None
        self._retrieved = False
        self._running = False
        self._suppress_already_called = False
        self._waiting: Deferred[Any] | asyncio.Future[Any] | None = None

    # ------------------------------------------------------------------ building the chain

    def add_callbacks(
        self,
        callback: Callable[..., Any] | None,
        errback: Callable[..., Any] | None = None,
        *,
        callback_args: tuple[Any, ...] = (),
        callback_kwargs: dict[str, Any] | None = None,
        errback_args: tuple[Any, ...] = (),
        errback_kwargs: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Add one link: ``callback`` runs on the callback track, ``errback`` on the error track.

        Args:
            callback: ``callback(result, *callback_args, **callback_kwargs)``; ``None`` passes
                the result through unchanged.
            errback: ``errback(exc, *errback_args, **errback_kwargs)`` receiving the exception
                instance; ``None`` passes the error through unchanged.

        Returns:
            this Deferred.
        """
        link = (
            (callback, callback_args, callback_kwargs or _NO_KWARGS),
            (errback, errback_args, errback_kwargs or _NO_KWARGS),
        )
        self._callbacks.append(link)
        if self._called:
            self._run_callbacks()
        return self

    def add_callback(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``fn(result, *args, **kwargs)`` on the callback track (errors pass through).

        The return value replaces the result; raising (or returning an exception instance) moves
        the chain to the error track; returning an awaitable pauses the chain until it resolves.
        """
        link = ((fn, args, kwargs), (None, (), _NO_KWARGS))
        self._callbacks.append(link)
        if self._called:
            self._run_callbacks()
        return self

    def add_errback(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``fn(exc, *args, **kwargs)`` on the error track (values pass through).

        Returning a value (including ``None``) recovers the chain onto the callback track;
        raising or returning an exception instance keeps it on the error track.
        """
        link = ((None, (), _NO_KWARGS), (fn, args, kwargs))
        self._callbacks.append(link)
        if self._called:
            self._run_callbacks()
        return self

    def add_both(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Add ``fn`` as both callback and errback: it receives the value or the exception."""
        step = (fn, args, kwargs)
        self._callbacks.append((step, step))
        if self._called:
            self._run_callbacks()
        return self

    # ------------------------------------------------------------------ firing

    def callback(self, result: Any = None) -> None:
        """Fire the Deferred with ``result`` and run the chain.

        An exception instance passed here puts the chain on the error track (the error-track
        rule of the module docstring).

        Raises:
            AlreadyCalledError: the Deferred was already fired.
            TypeError: ``result`` is a Deferred (return it from a callback to chain instead).
        """
        if isinstance(result, Deferred):
            raise TypeError(
                "Deferred.callback() does not accept a Deferred; "
                "return it from a callback to chain it"
            )
        self._fire(result)

    def errback(self, exc: BaseException | type[BaseException] | None = None) -> None:
        """Fire the Deferred on the error track with ``exc`` and run the chain.

        Args:
            exc: an exception instance or class (instantiated without arguments). ``None`` uses
                the exception currently being handled, like Twisted's ``errback()``.

        Raises:
            AlreadyCalledError: the Deferred was already fired.
            TypeError: ``exc`` is not an exception, or ``None`` outside an ``except`` block.
        """
        if exc is None:
            exc = sys.exception()
            if exc is None:
                raise TypeError("errback() without an argument needs an exception being handled")
        elif isinstance(exc, type) and issubclass(exc, BaseException):
            exc = exc()
        if not isinstance(exc, BaseException):
            raise TypeError(f"errback() needs an exception, got {exc!r}")
        self._fire(exc)

    def _fire(self, result: Any) -> None:
        if self._called:
            if self._suppress_already_called:
                self._suppress_already_called = False
                return
            raise AlreadyCalledError(f"{self!r} was already fired")
        self._called = True
        self._result = result
        self._run_callbacks()

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the Deferred.

        * Not fired yet: call the canceller; if that did not fire the Deferred, errback with
          ``asyncio.CancelledError(msg)``.
        * Fired and paused on an awaitable: cancel that awaitable (its ``CancelledError`` then
          flows into the chain, where an errback may still recover).
        * Otherwise: nothing happens.

        Returns:
            ``True`` when the call had an effect, ``False`` otherwise (as ``Future.cancel``).
        """
        if not self._called:
            if self._canceller is not None:
                self._canceller(self)
            if not self._called:
                self._suppress_already_called = True
                self._fire(asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg))
            return True
        waiting = self._waiting
        if self._paused and waiting is not None:
            return waiting.cancel(msg)
        return False

    # ------------------------------------------------------------------ state

    @property
    def called(self) -> bool:
        """Whether the Deferred has been fired (it may still be paused on an awaitable)."""
        return self._called

    def done(self) -> bool:
        """Whether the chain has a result now: fired, not paused and not running a callback."""
        return self._called and not self._paused and not self._running

    def cancelled(self) -> bool:
        """Whether the chain is done and its result is an ``asyncio.CancelledError``.

        This is a statement about the outcome, as for ``asyncio.Future``: a cancellation that an
        errback recovered from is not "cancelled".
        """
        return self.done() and isinstance(self._result, asyncio.CancelledError)

    def result(self) -> _T:
        """Return the chain's current result, or raise it when it is on the error track.

        Raises:
            asyncio.InvalidStateError: the chain is not done (see :meth:`done`).
            BaseException: the error the chain ended with (it then counts as handled).
        """
        if not self.done():
            raise asyncio.InvalidStateError(f"{self!r} has no result yet")
        result = self._result
        if isinstance(result, BaseException):
            self._retrieved = True
            raise result
        return result  # type: ignore[no-any-return]

    def exception(self) -> BaseException | None:
        """Return the error the chain ended with, or ``None`` when it ended with a value.

        Mirrors ``asyncio.Future.exception``: a cancelled chain raises its ``CancelledError``.
        The returned error counts as handled (it will not be logged at garbage collection).

        Raises:
            asyncio.InvalidStateError: the chain is not done.
            asyncio.CancelledError: the chain ended cancelled.
        """
        if not self.done():
            raise asyncio.InvalidStateError(f"{self!r} has no result yet")
        result = self._result
        if isinstance(result, BaseException):
            self._retrieved = True
            if isinstance(result, asyncio.CancelledError):
                raise result
            return result
        return None

    # ------------------------------------------------------------------ the chain runner

    def _run_callbacks(self) -> None:
        """Run queued links; iterative over chained Deferreds (Twisted's algorithm)."""
        if self._running:
            return  # a callback added a link to its own Deferred: the loop below runs it
        chain: list[Deferred[Any]] = [self]
        while chain:
            current = chain[-1]
            if current._paused:
                chain.pop()
                continue
            finished = True
            callbacks = current._callbacks
            while callbacks:
                link = callbacks.popleft()
                fn, args, kwargs = link[1 if isinstance(current._result, BaseException) else 0]
                if fn is None:
                    continue
                if fn is _continue:
                    # Hand our result to the Deferred that waits on us, resume it first and
                    # come back to our own remaining links afterwards.  The result stays ours
                    # too (Twisted sets it to None); it counts as handled here.
                    chainee: Deferred[Any] = args[0]
                    chainee._result = current._result
                    chainee._paused = False
                    chainee._waiting = None
                    chainee._retrieved = False
                    current._retrieved = True
                    chain.append(chainee)
                    finished = False
                    break
                current._retrieved = False
                current._running = True
                try:
                    result = fn(current._result, *args, **kwargs)
                except (KeyboardInterrupt, SystemExit) as exc:
                    current._running = False
                    current._result = exc
                    raise
                except BaseException as exc:
                    result = exc
                else:
                    if result is current:
                        result = RuntimeError(f"a callback of {current!r} returned the Deferred")
                    elif _is_awaitable(result):
                        result = current._await(result)
                        if current._paused:
                            break
                finally:
                    current._running = False
                current._result = result
            if finished:
                chain.pop()

    def _await(self, awaitable: Any) -> Any:
        """Take the outcome of a ready awaitable, or pause the chain on it.

        Returns the outcome when it is available now; otherwise sets ``_paused`` (the return
        value is then ignored) or returns the error that prevented waiting.
        """
        if isinstance(awaitable, Deferred):
            if awaitable._called and not awaitable._paused and not awaitable._running:
                awaitable._retrieved = True
                return awaitable._result
            self._paused = True
            self._waiting = awaitable
            # The inner Deferred is not running links now (or will pick this up when it
            # resumes): append the continuation directly, as Twisted does.
            awaitable._callbacks.append(
                ((_continue, (self,), _NO_KWARGS), (_continue, (self,), _NO_KWARGS))
            )
            return None
        if asyncio.isfuture(awaitable):
            if awaitable.done():
                return _outcome(awaitable)
            future = awaitable
        else:
            try:
                future = _to_future(awaitable, self._loop)
            except RuntimeError as exc:
                error = RuntimeError(
                    f"a callback of {self!r} returned {awaitable!r} but no event loop is "
                    "running and the Deferred has no loop"
                )
                error.__cause__ = exc
                return error
            except Exception as exc:
                return exc
        self._paused = True
        self._waiting = future
        future.add_done_callback(self._on_awaited)
        return None

    def _on_awaited(self, future: asyncio.Future[Any]) -> None:
        if self._waiting is not future:  # pragma: no cover - defensive
            return
        self._waiting = None
        self._paused = False
        self._result = _outcome(future)
        self._run_callbacks()

    # ------------------------------------------------------------------ asyncio bridge

    def __await__(self) -> Generator[Any, None, _T]:
        """``await d``: the chain's result (raised when it is an error), without consuming it.

        When the chain is already done no future is created.  Otherwise the caller waits on
        :meth:`as_future`, so cancelling the awaiting task cancels the Deferred.
        """
        if self.done():
            return self.result()
        return (yield from self.as_future().__await__())

    def as_future(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[_T]:
        """Return an ``asyncio.Future`` settled with the chain's result at this point.

        A pass-through link is appended: the future receives the value, the exception, or is
        cancelled on a ``CancelledError``; the chain continues with the same result, which
        counts as handled (the future now carries it).  Links added later do not affect the
        future.  Cancelling the future cancels the Deferred.

        Args:
            loop: loop of the future; defaults to the running loop, then the Deferred's loop.

        Raises:
            RuntimeError: no loop given, running, or set on the Deferred.
        """
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                if self._loop is None:
                    raise
                loop = self._loop
        future: asyncio.Future[_T] = loop.create_future()
        mirrored = False

        def mirror(result: Any) -> Any:
            nonlocal mirrored
            mirrored = True
            _resolve_future(future, result)
            self._retrieved = True
            return result

        def propagate_cancel(fut: asyncio.Future[Any]) -> None:
            # Only a cancellation from outside: the chain may have moved on since it
            # cancelled the future itself, and must not be cancelled again.
            if fut.cancelled() and not mirrored:
                self.cancel(_cancel_message(_outcome(fut)))

        future.add_done_callback(propagate_cancel)
        self.add_both(mirror)
        return future

    @classmethod
    def from_future(
        cls,
        future: Awaitable[_T] | concurrent.futures.Future[_T],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Deferred[_T]:
        """Return a Deferred fired with the outcome of ``future``.

        Args:
            future: an ``asyncio.Future``/``Task``, a coroutine (scheduled as a task), any
                awaitable, a ``concurrent.futures.Future``, or a Deferred (returned as is).
            loop: loop for scheduling coroutines; defaults to the running loop.

        Cancelling the Deferred cancels the future (and the Deferred fires with
        ``CancelledError`` at once); a cancelled future errbacks the Deferred with its
        ``CancelledError``.

        Raises:
            RuntimeError: a coroutine or awaitable was given and there is no loop.
        """
        if isinstance(future, Deferred):
            return future
        fut = _to_future(future, loop)
        d: Deferred[_T] = cls(lambda _: fut.cancel(), loop=fut.get_loop())

        def transfer(f: asyncio.Future[Any]) -> None:
            outcome = _outcome(f)  # also marks the future's error as retrieved
            if not d._called:
                d._fire(outcome)
            else:  # cancelled earlier: drop the outcome, as Twisted's suppression would
                d._suppress_already_called = False

        if fut.done():
            transfer(fut)
        else:
            fut.add_done_callback(transfer)
        return d

    # ------------------------------------------------------------------ misc

    def __repr__(self) -> str:
        name = type(self).__name__
        if not self._called:
            return f"<{name} pending>"
        if self._paused:
            return f"<{name} paused on {self._waiting!r}>"
        if isinstance(self._result, BaseException):
            return f"<{name} failed: {self._result!r}>"
        return f"<{name} result={self._result!r}>"

    def __del__(self) -> None:
        try:
            if not self._called or self._retrieved or self._paused:
                return
            result = self._result
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                _logger.error(
                    "Unhandled error in Deferred %r",
                    self,
                    exc_info=(type(result), result, result.__traceback__),
                )
        except Exception:  # pragma: no cover - interpreter shutdown, half-built instance
            pass


# ---------------------------------------------------------------------- helpers


def maybe_async(
    value: Any, *, loop: asyncio.AbstractEventLoop | None = None
) -> asyncio.Future[Any]:
    """Return an awaitable ``asyncio.Future`` for any value.

    * a Deferred: its :meth:`Deferred.as_future`;
    * an ``asyncio.Future`` or ``Task``: itself;
    * a coroutine: a task scheduled on the loop; any other awaitable: ``ensure_future``;
    * a ``concurrent.futures.Future``: ``asyncio.wrap_future``;
    * anything else (exception instances included): a future already done with it.

    Args:
        loop: defaults to the running loop.

    Raises:
        RuntimeError: no loop given and none running (a coroutine is closed first).
    """
    if _is_awaitable(value) or isinstance(value, concurrent.futures.Future):
        return _to_future(value, loop)
    future = _get_loop(loop).create_future()
    future.set_result(value)
    return future


def _is_container(value: Any) -> bool:
    return isinstance(value, list | tuple | dict | set | frozenset)


def _collect(value: Any, out: list[Any]) -> None:
    """Append the awaitables of a (nested) container in traversal order."""
    if isinstance(value, dict):
        for item in value.values():
            _collect(item, out)
    elif _is_container(value):
        for item in value:
            _collect(item, out)
    elif _is_awaitable(value) or isinstance(value, concurrent.futures.Future):
        out.append(value)


def _rebuild(value: Any, results: Iterator[Any]) -> Any:
    """Rebuild ``value`` with its awaitables replaced by ``results``, same traversal order."""
    if isinstance(value, dict):
        if type(value) is dict:
            return {key: _rebuild(item, results) for key, item in value.items()}
        new_dict = copy.copy(value)  # keeps subclass state: defaultdict factory, OrderedDict
        for key, item in value.items():
            new_dict[key] = _rebuild(item, results)
        return new_dict
    if isinstance(value, list):
        items = [_rebuild(item, results) for item in value]
        if type(value) is list:
            return items
        new_list = copy.copy(value)
        new_list[:] = items
        return new_list
    if isinstance(value, tuple):
        items = [_rebuild(item, results) for item in value]
        if type(value) is tuple:
            return tuple(items)
        if hasattr(value, "_make"):  # namedtuple
            return value._make(items)
        return type(value)(items)
    if isinstance(value, set | frozenset):
        return type(value)(_rebuild(item, results) for item in value)
    if _is_awaitable(value) or isinstance(value, concurrent.futures.Future):
        return next(results)
    return value


async def multi_async(
    container: Any,
    *,
    errors: ErrorMode | None = None,
    raise_on_error: bool | None = None,
) -> Any:
    """Await every awaitable in ``container`` concurrently and return a container of the same shape.

    ``list``, ``tuple`` (namedtuples included), ``dict`` (values only; keys and order kept),
    ``set`` and ``frozenset`` are traversed recursively at any depth, and subclasses keep their
    type; awaitables (coroutines, futures, Deferreds, ``concurrent.futures.Future``) are
    replaced by their results and other values are kept.  A non-container is one leaf:
    ``await multi_async(coro)`` is ``await coro``.  The same awaitable object appearing twice
    is awaited once.  Containers must not contain themselves.

    Args:
        errors: what to do when awaitables fail:

            * ``"first"`` (default): raise the first error as soon as it happens, after
              cancelling (and waiting for) the awaitables still pending;
            * ``"group"``: wait for all, then raise a ``BaseExceptionGroup`` (an
              ``ExceptionGroup`` unless some error is a ``BaseException`` such as
              ``CancelledError``) of every error in traversal order;
            * ``"return"``: wait for all and put each error instance in place of its result.
        raise_on_error: pulsar's historical switch: ``True`` is ``errors="first"``, ``False``
            is ``errors="return"``.  Do not combine with ``errors``.

    Cancelling the call cancels the awaitables still pending.

    Raises:
        TypeError: both ``errors`` and ``raise_on_error`` given.
        ValueError: unknown ``errors`` mode.
    """
    if raise_on_error is not None:
        if errors is not None:
            raise TypeError("pass either errors= or raise_on_error=, not both")
        errors = "first" if raise_on_error else "return"
    mode = errors or "first"
    if mode not in _ERROR_MODES:
        raise ValueError(f"errors must be one of {_ERROR_MODES}, got {mode!r}")

    awaitables: list[Any] = []
    _collect(container, awaitables)
    if not awaitables:
        return _rebuild(container, iter(()))

    loop = asyncio.get_running_loop()
    by_id: dict[int, asyncio.Future[Any]] = {}
    futures: list[asyncio.Future[Any]] = []
    try:
        for obj in awaitables:
            fut = by_id.get(id(obj))
            if fut is None:
                fut = by_id[id(obj)] = _to_future(obj, loop)
            futures.append(fut)
    except BaseException:
        for fut in by_id.values():
            fut.cancel()
        for obj in awaitables:
            if id(obj) not in by_id:
                _close_unawaited(obj)
        raise
    unique = list(by_id.values())

    waiter: asyncio.Future[asyncio.Future[Any] | None] = loop.create_future()
    remaining = len(unique)

    def on_done(fut: asyncio.Future[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if waiter.done():
            return
        if mode == "first" and (fut.cancelled() or fut.exception() is not None):
            waiter.set_result(fut)
        elif remaining == 0:
            waiter.set_result(None)

    for fut in unique:
        fut.add_done_callback(on_done)
    try:
        failed = await waiter
    except BaseException:
        for fut in unique:
            fut.remove_done_callback(on_done)
            fut.cancel()
        raise

    if failed is not None:
        pending = [fut for fut in unique if not fut.done()]
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.wait(pending)
        for fut in unique:
            _outcome(fut)  # mark every error as retrieved: only the first one is reported
        error = _outcome(failed)
        raise error

    outcomes = [_outcome(fut) for fut in futures]
    if mode == "group":
        found = [out for out in outcomes if isinstance(out, BaseException)]
        if found:
            raise BaseExceptionGroup(
                f"multi_async: {len(found)} of {len(outcomes)} awaitables failed", found
            )
    return _rebuild(container, iter(outcomes))


async def async_while(
    timeout: float | None,
    predicate: Callable[..., Any],
    *args: Any,
    interval: float = 0.1,
) -> Any:
    """Asynchronous ``while predicate(*args): sleep``, bounded by ``timeout``.

    ``predicate(*args)`` may be a plain or an ``async`` callable (an awaitable result is
    awaited).  It is evaluated at once, then every ``interval`` seconds while its value is
    truthy, and one last time when the deadline is reached.  The timeout is checked between
    evaluations: a slow predicate is not interrupted.

    Args:
        timeout: seconds from the call; ``None`` waits forever; ``0`` or less evaluates once.
        interval: seconds between evaluations (``0`` yields to the loop each time).

    Returns:
        The predicate's last value: falsy when the condition ended, truthy on timeout.  No
        exception is raised on timeout.

    Raises:
        ValueError: negative ``interval``.
        Exception: whatever the predicate raises.
    """
    if interval < 0:
        raise ValueError(f"interval must be >= 0, got {interval!r}")
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + max(timeout, 0.0)

    async def evaluate() -> Any:
        value = predicate(*args)
        if _is_awaitable(value):
            value = await value
        return value

    value = await evaluate()
    while value:
        delay = interval
        if deadline is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            delay = min(interval, remaining)
        await asyncio.sleep(delay)
        value = await evaluate()
    return value


def chain_future(
    future: Any,
    callback: Callable[[Any], Any] | None = None,
    errback: Callable[[BaseException], Any] | None = None,
    next: Any = None,
) -> Any:
    """Link the outcome of ``future`` to ``next``, optionally transformed.

    When ``future`` succeeds, ``next`` receives ``callback(value)`` (or the value); when it
    fails, ``next`` receives ``errback(exc)`` (or the error).  The transforms follow Deferred
    rules: raising or returning an exception instance is an error, returning a value recovers,
    returning an awaitable waits for it.

    Args:
        future: an ``asyncio.Future``/``Task``, a Deferred, a coroutine (scheduled) or any
            awaitable.  A Deferred source gets a pass-through link (its chain keeps its result,
            which counts as handled).
        callback: transform of a successful result.
        errback: transform of an error (``CancelledError`` included).
        next: an ``asyncio.Future`` or a Deferred to settle; by default a new Deferred when
            ``future`` is a Deferred, otherwise a new future of ``future``'s loop.  A ``next``
            that is already done is left alone.

    Returns:
        ``next``.  Cancelling it (a future, or the Deferred created here) cancels ``future``
        if still pending, or the awaitable a transform is waiting on.
    """
    source: Deferred[Any] | asyncio.Future[Any]
    if isinstance(future, Deferred):
        source = future
        loop = future._loop
    else:
        source = _to_future(future, None)
        loop = source.get_loop()

    link: Deferred[Any] = Deferred(loop=loop)

    def cancel_upstream(_: Any = None) -> None:
        if not link._called:
            source.cancel()
        else:
            link.cancel()

    target: asyncio.Future[Any] | Deferred[Any]
    if next is None:
        if isinstance(source, Deferred):
            target = Deferred(lambda _: cancel_upstream(), loop=loop)
        else:
            target = source.get_loop().create_future()
    else:
        target = next
    if isinstance(target, Deferred):
        pass
    elif asyncio.isfuture(target):

        def on_target_done(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled():
                cancel_upstream()

        target.add_done_callback(on_target_done)
    else:
        raise TypeError(f"next must be an asyncio future or a Deferred, got {target!r}")

    def deliver(result: Any) -> None:
        if isinstance(target, Deferred):
            if not target._called:
                target._fire(result)
        else:
            _resolve_future(target, result)

    link.add_callbacks(callback, errback)
    link.add_both(deliver)

    if isinstance(source, Deferred):

        def observe(result: Any) -> Any:
            source._retrieved = True
            if not link._called:
                link._fire(result)
            return result

        source.add_both(observe)
    else:

        def on_source_done(fut: asyncio.Future[Any]) -> None:
            if not link._called:
                link._fire(_outcome(fut))

        if source.done():
            on_source_done(source)
        else:
            source.add_done_callback(on_source_done)
    return target
