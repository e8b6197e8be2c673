"""The plugin's command line options, ini keys and markers, declared once, read into one object.

Every option that makes sense for a whole project has an ini key of the same name (``pulsar_io``
for ``--pulsar-io``); the command line wins over the ini file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import pytest

from pulsar import ConfigError
from pulsar.loop import IO_CHOICES, resolve_io

__all__ = [
    "DEFAULT_PROFILE_FILE",
    "DEFAULT_START_METHOD",
    "START_METHODS",
    "DEFAULT_TIMEOUT",
    "LOOP_SCOPES",
    "MARKERS",
    "SETTINGS_KEY",
    "Settings",
    "add_options",
    "parse_workers",
]

#: Loop scopes: one loop for the whole session, or a fresh loop for every test.
LOOP_SCOPES = ("session", "function")
#: Seconds an async test (and each async fixture step) may take; 0 turns the limit off.
DEFAULT_TIMEOUT = 60.0
DEFAULT_BENCH_RUNS = 10
DEFAULT_PROFILE_FILE = "pulsar-profile.txt"
#: Start methods of the process actors the ``arbiter`` / ``spawn`` fixtures start.
START_METHODS = ("auto", "fork", "forkserver", "spawn")
#: fork on Linux (fast, nothing to pickle); elsewhere pulsar's own choice (spawn on macOS).
DEFAULT_START_METHOD = "fork" if sys.platform.startswith("linux") else "auto"

#: Markers registered by the plugin (name and signature, help).
MARKERS = {
    "timeout_async(seconds)": (
        "pulsar: time limit of this async test and of each of its async fixture steps "
        "(0 = none); overrides --pulsar-timeout"
    ),
    "allow_leaks": (
        "pulsar: do not fail this test for tasks left pending, coroutines never awaited or "
        "errors reported to the loop"
    ),
    "bench": "pulsar: a benchmark; run --pulsar-bench-runs times and timed with --pulsar-bench",
    "arbiter_settings(**settings)": (
        "pulsar: settings of the arbiter the 'arbiter' fixture starts for this test "
        "(e.g. log_level='info', timeout=5)"
    ),
}


def add_options(parser: pytest.Parser) -> None:
    """Register the ``pulsar`` option group and its ini keys."""
    group = parser.getgroup("pulsar", "pulsar: async tests on the pulsar loop")
    group.addoption(
        "--pulsar-io",
        dest="pulsar_io",
        default=None,
        choices=IO_CHOICES,
        help="event loop of async tests: asyncio (default), uvloop, or auto (uvloop if installed)",
    )
    group.addoption(
        "--pulsar-loop-scope",
        dest="pulsar_loop_scope",
        default=None,
        choices=LOOP_SCOPES,
        help="session (default): one loop for every async test and fixture; function: a new loop "
        "per test (then async fixtures must be function-scoped)",
    )
    group.addoption(
        "--pulsar-timeout",
        dest="pulsar_timeout",
        default=None,
        metavar="SECONDS",
        help=f"time limit of each async test and async fixture step, 0 = none "
        f"(default {DEFAULT_TIMEOUT:g}); on expiry the test fails with every task's and "
        "thread's stack",
    )
    group.addoption(
        "--pulsar-bench",
        dest="pulsar_bench",
        action="store_true",
        default=False,
        help="run tests marked 'bench' several times and print their timings",
    )
    group.addoption(
        "--pulsar-bench-runs",
        dest="pulsar_bench_runs",
        default=DEFAULT_BENCH_RUNS,
        type=int,
        metavar="N",
        help=f"runs of each bench test with --pulsar-bench (default {DEFAULT_BENCH_RUNS})",
    )
    group.addoption(
        "--pulsar-profile",
        dest="pulsar_profile",
        nargs="?",
        const=DEFAULT_PROFILE_FILE,
        default=None,
        metavar="FILE",
        help=f"profile the whole run with cProfile and write a report sorted by cumulative time "
        f"to FILE (default {DEFAULT_PROFILE_FILE}); write --pulsar-profile=FILE",
    )
    group.addoption(
        "--pulsar-start-method",
        dest="pulsar_start_method",
        default=None,
        choices=START_METHODS,
        help=f"start method of the process actors of the arbiter/spawn fixtures "
        f"(default {DEFAULT_START_METHOD})",
    )
    group.addoption(
        "--pulsar-workers",
        dest="pulsar_workers",
        default=None,
        metavar="N",
        help="run the test files on N pulsar worker processes ('auto': one per CPU); 0 = off",
    )
    parser.addini("pulsar_io", "default of --pulsar-io", default="asyncio")
    parser.addini("pulsar_loop_scope", "default of --pulsar-loop-scope", default="session")
    parser.addini("pulsar_timeout", "default of --pulsar-timeout", default=str(DEFAULT_TIMEOUT))
    parser.addini(
        "pulsar_start_method", "default of --pulsar-start-method", default=DEFAULT_START_METHOD
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The plugin's configuration, validated."""

    io: str = "asyncio"
    loop_scope: str = "session"
    timeout: float = DEFAULT_TIMEOUT
    bench: bool = False
    bench_runs: int = DEFAULT_BENCH_RUNS
    profile: str | None = None
    start_method: str = DEFAULT_START_METHOD
    workers: int = 0

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Read options (command line over ini); raise :class:`pytest.UsageError` on bad values."""

        def value(name: str) -> str:
            option = config.getoption(name, None)
            return str(option if option is not None else config.getini(name)).strip()

        io = value("pulsar_io").lower()
        try:
            resolve_io(io)
        except ConfigError as exc:
            raise pytest.UsageError(f"pulsar: --pulsar-io / pulsar_io: {exc}") from None
        loop_scope = value("pulsar_loop_scope").lower()
        if loop_scope not in LOOP_SCOPES:
            raise pytest.UsageError(
                f"pulsar: --pulsar-loop-scope / pulsar_loop_scope: invalid value {loop_scope!r} "
                f"(expected one of {', '.join(LOOP_SCOPES)})"
            )
        timeout = parse_timeout(value("pulsar_timeout"), "--pulsar-timeout / pulsar_timeout")
        runs = config.getoption("pulsar_bench_runs", DEFAULT_BENCH_RUNS)
        if runs < 1:
            raise pytest.UsageError(f"pulsar: --pulsar-bench-runs must be at least 1, got {runs}")
        profile = config.getoption("pulsar_profile", None)
        if profile is not None and (
            os.path.isdir(profile) or profile.endswith(".py") or "::" in profile
        ):
            raise pytest.UsageError(
                f"pulsar: --pulsar-profile took {profile!r} as its report file, which looks like "
                f"a test path; write --pulsar-profile=FILE, or put --pulsar-profile last"
            )
        start_method = value("pulsar_start_method").lower()
        if start_method not in START_METHODS:
            raise pytest.UsageError(
                f"pulsar: --pulsar-start-method / pulsar_start_method: invalid value "
                f"{start_method!r} (expected one of {', '.join(START_METHODS)})"
            )
        return cls(
            io=io,
            loop_scope=loop_scope,
            timeout=timeout,
            bench=bool(config.getoption("pulsar_bench", False)),
            bench_runs=runs,
            profile=profile,
            start_method=start_method,
            workers=parse_workers(config.getoption("pulsar_workers", None)),
        )


def parse_timeout(raw: object, where: str) -> float:
    """A timeout in seconds from ``raw`` (a number or its text); 0 means none."""
    try:
        timeout = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise pytest.UsageError(f"pulsar: {where}: not a number of seconds: {raw!r}") from None
    if timeout < 0 or timeout != timeout:
        raise pytest.UsageError(f"pulsar: {where}: must be 0 (no limit) or more, got {raw!r}")
    return timeout


def parse_workers(raw: object) -> int:
    """The number of ``--pulsar-workers``: a count, ``auto`` (one per CPU) or None (0, off)."""
    if raw is None:
        return 0
    text = str(raw).strip().lower()
    if text == "auto":
        return max(1, os.cpu_count() or 1)
    try:
        workers = int(text)
    except ValueError:
        raise pytest.UsageError(
            f"pulsar: --pulsar-workers: expected a number of workers or 'auto', got {raw!r}"
        ) from None
    if workers < 0:
        raise pytest.UsageError(f"pulsar: --pulsar-workers must be 0 (off) or more, got {raw!r}")
    return workers


#: Where ``pytest_configure`` keeps the run's :class:`Settings` (``config.stash[SETTINGS_KEY]``).
SETTINGS_KEY = pytest.StashKey[Settings]()
