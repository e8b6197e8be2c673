"""Asynchronous scripts: ``pulsar-shell script.py [args]``.

The script is compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` and run on the event loop of the
running arbiter (or of the ``--attach`` client) with the shell's names in its globals. Its exit
status follows Python's rules: normal end → 0, ``sys.exit(n)`` → n, an exception → its traceback
on stderr and 1.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import sys
import tokenize
import types
from collections.abc import Sequence
from typing import Any

from ._console import exit_status, format_exception

__all__ = ["compile_script", "run_script"]


def compile_script(path: str) -> types.CodeType:
    """Read and compile ``path`` (top-level ``await`` allowed).

    Raises:
        OSError: the file cannot be read.
        SyntaxError: the script does not compile.
    """
    with tokenize.open(path) as f:
        source = f.read()
    return compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


async def run_script(path: str, args: Sequence[str], scope: dict[str, Any]) -> int:
    """Run the script ``path`` with ``sys.argv = [path, *args]``; return its exit status.

    ``scope`` (``pulsar``, ``arbiter``, ``send``...) is added to the script's globals, whose
    ``__name__`` is ``"__main__"``. Functions the script sends to other actors must be importable
    by name (defined in a module), since the script itself is not a module other processes can
    import.
    """
    try:
        code = compile_script(path)
    except OSError as exc:
        print(f"pulsar-shell: can't open file {path!r}: {exc}", file=sys.stderr)
        return 2
    except SyntaxError as exc:
        print(format_exception(exc), end="", file=sys.stderr)
        return 1
    namespace: dict[str, Any] = dict(scope)
    namespace.update(
        {"__name__": "__main__", "__file__": path, "__doc__": None, "__builtins__": __builtins__}
    )
    saved_argv = sys.argv
    folder = os.path.dirname(os.path.abspath(path))
    sys.argv = [path, *args]
    sys.path.insert(0, folder)
    try:
        result = types.FunctionType(code, namespace)()
        if inspect.iscoroutine(result):
            await result
    except SystemExit as exc:
        return exit_status(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("KeyboardInterrupt", file=sys.stderr)
        return 130
    except BaseException as exc:
        print(format_exception(exc, __file__), end="", file=sys.stderr, flush=True)
        return 1
    finally:
        sys.argv = saved_argv
        if folder in sys.path:
            sys.path.remove(folder)
    return 0
