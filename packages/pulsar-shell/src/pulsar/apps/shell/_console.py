"""The interactive console: lines read in a thread, code run on the event loop.

How it works
------------
The event loop (the arbiter's, or the ``--attach`` client's) keeps the main thread. A daemon
thread reads lines with :func:`input` (GNU readline: line editing, history, tab completion),
compiles them with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` (multi-line statements as in the standard
console) and hands every complete statement to the loop with ``call_soon_threadsafe``. The code
runs on the loop thread, where the arbiter and its objects live; a statement that contains
``await`` becomes a task. The reading thread waits for the outcome and prints it. Between
prompts the loop is free: timers, actors and servers keep running.

SIGINT reaches the main thread, where the loop dispatches it to :meth:`AsyncConsole.interrupt`,
which acts according to the console's state (:class:`ConsoleState`):

* RUNNING a task (a statement with ``await``): the task is cancelled;
* RUNNING synchronous code (it blocks the loop): while it runs, SIGINT raises
  :class:`KeyboardInterrupt` in it, as in the standard console;
* READING: readline waits in a thread that is not the main one, where Python never sees
  signals, so the console points fd 0 at a spare pseudo-terminal holding a newline and wakes the
  thread's ``select()`` with a signal sent to that thread alone (SIGURG, otherwise unused);
  readline reads the newline and returns the line, the reader discards it, puts the terminal
  back on fd 0 with its modes and shows ``KeyboardInterrupt`` with a fresh prompt. (A pipe would
  do for the newline, but readline then fails to restore the modes of a non-terminal and skips
  preparing the real terminal at the next prompt.)
"""

from __future__ import annotations

import ast
import asyncio
import code
import contextlib
import enum
import inspect
import os
import select
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["AsyncConsole", "ConsoleState", "Exit", "exit_status"]

try:  # POSIX terminals
    import termios
except ImportError:  # pragma: no cover - not POSIX
    termios = None  # type: ignore[assignment]

#: traceback entries from these files are dropped from the front of a shown traceback
_SKIP_FILES = frozenset({__file__, asyncio.tasks.__file__, asyncio.events.__file__})

#: the signal that wakes the reading thread (see the module docstring)
_WAKE_SIGNAL = getattr(signal, "SIGURG", signal.SIGUSR2)


class ConsoleState(enum.Enum):
    """Where the console is. Rules (all transitions under the console's lock):

    IDLE → READING (``input()`` waits) → IDLE (a line came back) → RUNNING (a complete statement
    runs on the loop) → IDLE. Any state → CLOSED, from which nothing leaves: the reader sees
    end of input at its next prompt.
    """

    IDLE = "idle"
    READING = "reading"
    RUNNING = "running"
    CLOSED = "closed"


class Exit:
    """``exit()`` / ``quit()`` in the shell: stop the shell (and its arbiter) with ``code``.

    Unlike the ``site`` builtins it does not close ``sys.stdin``.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code: Any = None) -> None:
        raise SystemExit(code)


def exit_status(exc: SystemExit) -> int:
    """The process exit status of ``exc`` (``None`` → 0; a message is printed → 1)."""
    value = exc.code
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def format_exception(exc: BaseException, *skip_files: str) -> str:
    """A traceback of ``exc`` without the leading frames of the shell and asyncio machinery
    (and of ``skip_files``)."""
    skip = _SKIP_FILES.union(skip_files)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


class _Outcome:
    """The result of one statement, filled on the loop thread, read by the reading thread."""

    __slots__ = ("done", "error", "interrupted")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.interrupted = False

    def finish(self, error: BaseException | None = None) -> None:
        if isinstance(error, KeyboardInterrupt | asyncio.CancelledError):
            self.interrupted = True
        elif error is not None:
            self.error = error
        self.done.set()


class AsyncConsole(code.InteractiveConsole):
    """An interactive console whose statements run on ``loop`` (top-level ``await`` allowed).

    Args:
        loop: the running event loop that executes the statements (in the main thread).
        namespace: the console's globals (``pulsar``, ``arbiter``, ``send``...).
        banner: printed before the first prompt.
        history_file: readline history file (None: no history file).
        history_length: lines kept in the history file.
        on_exit: ``on_exit(status)`` called on the loop thread when the user leaves (Ctrl-D,
            ``exit()``); it must stop whatever runs the loop.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        namespace: dict[str, Any],
        *,
        banner: str = "",
        history_file: str | None = None,
        history_length: int = 1000,
        on_exit: Callable[[int], Any] | None = None,
    ) -> None:
        namespace.setdefault("__name__", "__console__")
        namespace.setdefault("__doc__", None)
        namespace.setdefault("exit", Exit("exit"))
        namespace.setdefault("quit", Exit("quit"))
        super().__init__(namespace, filename="<console>")
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.loop = loop
        self.banner = banner
        self.history_file = history_file if history_length > 0 else None
        self.history_length = history_length
        self.on_exit = on_exit
        self.state = ConsoleState.IDLE
        self.exit_code = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[Any] | None = None
        self._interrupted = False  # the READING thread was woken by Ctrl-C
        self._cancel_pending = False  # Ctrl-C before the statement reached the loop
        self._swallow_sigint = 0  # SIGINTs already delivered as KeyboardInterrupt
        self._saved_stdin: int | None = None
        self._wake_master, self._wake_slave = _spare_terminal()
        self._tty_attrs: Any = None
        self._readline: Any = None
        self._previous_wake_handler: Any = None

    # ============================================================================================
    # life cycle (loop thread)
    # ============================================================================================
    def start(self) -> None:
        """Set up readline and the terminal, then start the reading thread (loop thread)."""
        if sys.stdin.isatty() and termios is not None:
            try:
                self._tty_attrs = termios.tcgetattr(0)
            except termios.error:  # pragma: no cover
                self._tty_attrs = None
        self._setup_readline()
        if threading.current_thread() is threading.main_thread():
            # a Python-level handler makes the wake-up signal interrupt select() in the reader
            self._previous_wake_handler = signal.signal(_WAKE_SIGNAL, _ignore_signal)
        self._thread = threading.Thread(target=self._run, name="pulsar-shell-input", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Stop reading, save the history and restore the terminal (loop thread, idempotent)."""
        with self._lock:
            state, self.state = self.state, ConsoleState.CLOSED
            task = self._task
            if state is ConsoleState.READING and not self._interrupted:
                self._wake_reader()
        if state is ConsoleState.CLOSED:
            return
        if task is not None:
            task.cancel()
        thread = self._thread
        for _ in range(100):  # the reader leaves at once; never wait long for it
            if thread is None or not thread.is_alive():
                break
            await asyncio.sleep(0.01)
        self._save_history()
        self._restore_terminal()
        if self._previous_wake_handler is not None:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(_WAKE_SIGNAL, self._previous_wake_handler)
            self._previous_wake_handler = None

    def interrupt(self) -> None:
        """Ctrl-C (SIGINT dispatched by the loop): cancel the statement or clear the line."""
        with self._lock:
            if self._swallow_sigint:
                self._swallow_sigint -= 1
                return
            if self.state is ConsoleState.RUNNING:
                if self._task is not None:
                    self._task.cancel()
                else:  # the statement has not started yet: it will not
                    self._cancel_pending = True
            elif self.state is ConsoleState.READING and not self._interrupted:
                self._interrupted = True
                self._wake_reader()

    # ============================================================================================
    # reading thread
    # ============================================================================================
    def _run(self) -> None:
        status = 0
        try:
            self.interact(banner=self.banner, exitmsg="")
        except SystemExit as exc:
            status = exit_status(exc)
        except BaseException:  # pragma: no cover - a bug here must not hang the shell
            traceback.print_exc()
            status = 1
        self.exit_code = status
        with self._lock:
            closed = self.state is ConsoleState.CLOSED
        if not closed and self.on_exit is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.on_exit, status)

    def raw_input(self, prompt: str = "") -> str:
        """Read one line; Ctrl-C raises KeyboardInterrupt, a closed console EOFError."""
        with self._lock:
            if self.state is ConsoleState.CLOSED:
                raise EOFError
            self.state = ConsoleState.READING
        try:
            line = input(prompt)
        finally:
            with self._lock:
                woken = self._saved_stdin is not None
                interrupted, self._interrupted = self._interrupted, False
                if woken:
                    self._restore_stdin()
                if self.state is ConsoleState.READING:
                    self.state = ConsoleState.IDLE
                closed = self.state is ConsoleState.CLOSED
        if closed:
            raise EOFError
        if interrupted:
            self._forget_last_line(line)
            raise KeyboardInterrupt
        return line

    def runcode(self, code: types.CodeType) -> None:
        """Run one compiled statement on the loop and show its outcome (reading thread)."""
        outcome = _Outcome()
        with self._lock:
            if self.state is ConsoleState.CLOSED:
                return
            self.state = ConsoleState.RUNNING
            self._cancel_pending = False
        try:
            self.loop.call_soon_threadsafe(self._execute, code, outcome)
        except RuntimeError:  # the loop is closed
            raise SystemExit(self.exit_code) from None
        outcome.done.wait()
        with self._lock:
            self._task = None
            if self.state is ConsoleState.RUNNING:
                self.state = ConsoleState.IDLE
        if outcome.interrupted:
            self.write("\nKeyboardInterrupt\n")
        elif isinstance(outcome.error, SystemExit):
            raise outcome.error
        elif outcome.error is not None:
            self.show_exception(outcome.error)

    def show_exception(self, exc: BaseException) -> None:
        """Print the traceback of ``exc`` raised by a statement (as the console does)."""
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
        self.write(format_exception(exc))

    # ============================================================================================
    # loop thread: running a statement
    # ============================================================================================
    def _execute(self, code: types.CodeType, outcome: _Outcome) -> None:
        if self._cancel_pending:
            outcome.finish(KeyboardInterrupt())
            return
        func = types.FunctionType(code, self.locals)  # type: ignore[arg-type]
        try:
            with self._sigint_raises():
                result = func()
        except BaseException as exc:
            outcome.finish(exc)
            return
        if not inspect.iscoroutine(result):
            outcome.finish()
            return
        task = self.loop.create_task(_run_coroutine(result, outcome))
        with self._lock:
            if self.state is ConsoleState.CLOSED or self._cancel_pending:
                task.cancel()
            self._task = task

    @contextlib.contextmanager
    def _sigint_raises(self) -> Iterator[None]:
        """While synchronous code blocks the loop, SIGINT raises KeyboardInterrupt in it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is None:  # a handler not installed from Python: leave it alone
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            # the loop will dispatch this SIGINT too (wake-up fd): ignore it there
            self._swallow_sigint += 1
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ============================================================================================
    # waking the reader (see the module docstring)
    # ============================================================================================
    def _wake_reader(self) -> None:
        """Make the pending ``input()`` return (called with the lock held)."""
        thread = self._thread
        if thread is None or thread.ident is None or self._saved_stdin is not None:
            return
        os.write(self._wake_master, b"\n")
        self._saved_stdin = os.dup(0)
        os.dup2(self._wake_slave, 0)
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_kill(thread.ident, _WAKE_SIGNAL)

    def _restore_stdin(self) -> None:
        """Put the terminal back on fd 0, empty the spare one (called with the lock held)."""
        saved, self._saved_stdin = self._saved_stdin, None
        if saved is not None:
            os.dup2(saved, 0)
            os.close(saved)
        for fd in (self._wake_slave, self._wake_master):  # an unread newline, its echo
            while select.select([fd], [], [], 0)[0]:
                try:
                    os.read(fd, 512)
                except OSError:
                    break
        # readline restored the modes of the spare terminal, not of the real one
        self._restore_terminal()

    def _restore_terminal(self) -> None:
        if self._tty_attrs is not None and termios is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(0, termios.TCSADRAIN, self._tty_attrs)

    # ============================================================================================
    # readline and history
    # ============================================================================================
    def _setup_readline(self) -> None:
        try:
            import readline
            import rlcompleter
        except ImportError:  # pragma: no cover - Python built without readline
            return
        self._readline = readline
        completer = rlcompleter.Completer(self.locals)
        readline.set_completer(completer.complete)
        if "libedit" in (getattr(readline, "__doc__", "") or ""):  # pragma: no cover - macOS
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
        readline.set_history_length(self.history_length or -1)
        if self.history_file:
            try:
                readline.read_history_file(self.history_file)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.write(f"pulsar-shell: cannot read the history file: {exc}\n")

    def _forget_last_line(self, line: str) -> None:
        readline = self._readline
        if readline is None or not line.strip():
            return
        length = readline.get_current_history_length()
        if length and readline.get_history_item(length) == line:
            readline.remove_history_item(length - 1)

    def _save_history(self) -> None:
        readline = self._readline
        if readline is None or not self.history_file:
            return
        try:
            folder = os.path.dirname(self.history_file)
            if folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            readline.set_history_length(self.history_length)
            readline.write_history_file(self.history_file)
        except OSError as exc:
            self.write(f"pulsar-shell: cannot write the history file: {exc}\n")


async def _run_coroutine(coro: Any, outcome: _Outcome) -> None:
    """Await a statement; every outcome (SystemExit included) goes to ``outcome``.

    A task must not let SystemExit or KeyboardInterrupt escape: asyncio would re-raise them
    out of the loop and stop the arbiter abruptly.
    """
    try:
        await coro
    except BaseException as exc:
        outcome.finish(exc)
    else:
        outcome.finish()


def _spare_terminal() -> tuple[int, int]:
    """A pseudo-terminal pair (master, slave) standing in for fd 0 while a read is woken."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    os.set_inheritable(slave, False)
    return master, slave


def _ignore_signal(signum: int, frame: Any) -> None:
    """Python-level handler of the wake-up signal: its only job is to interrupt select()."""
