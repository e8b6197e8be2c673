#!/usr/bin/env python3
"""Run one benchmark: ``hatch run bench NAME [args]`` runs ``tools/bench/NAME.py``.

With no NAME (or ``-l``/``--list``) it lists the available benchmarks with the first line of
their docstring. A benchmark is a module next to this file (not starting with ``_``) exposing
``main(argv) -> int``; it is imported by name with this directory on ``sys.path``, so the
functions it sends to actors pickle by reference in every child process.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["available", "main"]

HERE = Path(__file__).resolve().parent


def available() -> dict[str, str]:
    """The benchmarks of this directory: ``{name: first line of its docstring}``."""
    found: dict[str, str] = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name.startswith("_") or path.stem == "run":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark named by ``argv[0]`` with the remaining arguments; return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    benches = available()
    if not args or args[0] in ("-l", "--list", "-h", "--help"):
        print("usage: hatch run bench NAME [args]   (NAME --help for its options)\n")
        width = max((len(n) for n in benches), default=0)
        for name, doc in benches.items():
            print(f"  {name:<{width}}  {doc}")
        return 0
    name, rest = args[0], args[1:]
    if name not in benches:
        print(f"bench: no benchmark {name!r} (available: {', '.join(benches)})", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(name)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
