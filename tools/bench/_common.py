"""Helpers shared by the benchmarks under ``tools/bench/``.

* statistics: :func:`percentile`, :class:`Latency` (p50/p99/mean of nanosecond samples),
  :class:`Throughput`, and :func:`pipelined` (keep a window of requests in flight);
* reporting: :func:`render_table` (plain or markdown), :func:`ratio`, :class:`Target`
  (a PASS/MISS line), :func:`machine_info` (date, cores, Python, CPU model);
* processes: :func:`managed_process` (a subprocess in its own session, its whole group ended on
  exit), :func:`stop_mp_process` and :func:`reap_mp_children` for ``multiprocessing`` children,
  :func:`free_port` / :func:`wait_for_port` (127.0.0.1 only), :class:`Deadline`;
* peers: :class:`PeerEnv`, a virtual environment created with uv for the peer packages a
  benchmark compares against (uvicorn, gunicorn, celery, ...), kept in ``tools/bench/.venv-peers``
  between runs or in a temporary directory removed afterwards, so peers never leak into the
  workspace environment;
* profiles: :func:`profile_summary` (top functions of a cProfile dump, in % of the total time).

Only the standard library is used, so a benchmark imports this module from any interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import multiprocessing
import os
import platform
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BenchError",
    "Deadline",
    "Latency",
    "PeerEnv",
    "Target",
    "Throughput",
    "fmt_cpu",
    "fmt_rate",
    "fmt_us",
    "free_port",
    "machine_info",
    "managed_process",
    "percentile",
    "pipelined",
    "process_cpu",
    "profile_summary",
    "ratio",
    "reap_mp_children",
    "render_table",
    "stop_mp_process",
    "wait_for_port",
]

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".venv-peers"


class BenchError(Exception):
    """A benchmark could not run (a peer failed to install or start, a step timed out...)."""


# ---------------------------------------------------------------------------------- statistics


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, linearly interpolated between ranks.

    Raises ValueError on an empty sequence.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    data = sorted(samples)
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Latency:
    """Round-trip latency summary, in microseconds."""

    n: int
    p50: float
    p99: float
    mean: float

    @classmethod
    def from_ns(cls, samples: Sequence[int]) -> Latency:
        """Summarize nanosecond samples (as from ``time.perf_counter_ns`` differences)."""
        us = [s / 1000.0 for s in samples]
        return cls(len(us), percentile(us, 50), percentile(us, 99), sum(us) / len(us))

    def __str__(self) -> str:
        return f"{fmt_us(self.p50)} / {fmt_us(self.p99)}"


@dataclass(frozen=True, slots=True)
class Throughput:
    """``count`` messages in ``seconds``; ``rate`` is messages per second. ``cpu`` is the CPU
    time (seconds) every process on the path spent meanwhile, NaN when unknown."""

    count: int
    seconds: float
    cpu: float = math.nan

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    @property
    def cpu_per_msg_us(self) -> float:
        """CPU microseconds per message, summed over the processes (NaN when unknown)."""
        return self.cpu / self.count * 1e6

    def __str__(self) -> str:
        return fmt_rate(self.rate)


def process_cpu(pid: int) -> float:
    """CPU seconds used so far by the main thread of process ``pid`` (Linux
    ``/proc/<pid>/schedstat``, nanosecond resolution); NaN when unavailable."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return math.nan


def fmt_us(us: float) -> str:
    """``41.2 us`` / ``1.30 ms``."""
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.1f} us" if us < 100 else f"{us:.0f} us"


def fmt_rate(rate: float) -> str:
    """Messages per second, with thousands separators (``52,310/s``)."""
    return f"{rate:,.0f}/s"


def fmt_cpu(us: float) -> str:
    """CPU microseconds per message (``-`` when unknown)."""
    return "-" if math.isnan(us) else f"{us:.1f} us"


async def pipelined(issue: Callable[[], Awaitable[Any]], total: int, window: int) -> float:
    """Keep ``window`` requests in flight until ``total`` completed; return the elapsed seconds.

    ``issue()`` starts one request and returns an awaitable of its reply (a Future is used as is,
    a coroutine becomes a Task). A new request starts as soon as one completes. The first failed
    request stops the run and its exception is raised.
    """
    if total <= 0 or window <= 0:
        raise ValueError("total and window must be positive")
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    sent = done = 0

    def on_done(fut: asyncio.Future[Any]) -> None:
        nonlocal done
        if finished.done():
            return
        if fut.cancelled():
            finished.set_exception(asyncio.CancelledError("a pipelined request was cancelled"))
            return
        exc = fut.exception()
        if exc is not None:
            finished.set_exception(exc)
            return
        done += 1
        if sent < total:
            launch()
        elif done == total:
            finished.set_result(None)

    def launch() -> None:
        nonlocal sent
        sent += 1
        asyncio.ensure_future(issue()).add_done_callback(on_done)

    start = time.perf_counter()
    for _ in range(min(window, total)):
        launch()
    await finished
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------- reporting


def ratio(value: float, baseline: float) -> str:
    """``value / baseline`` as ``1.85x`` (``-`` when there is no baseline)."""
    if not baseline:
        return "-"
    r = value / baseline
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def render_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, markdown: bool = False
) -> str:
    """Render rows as an aligned text table, or a GitHub markdown table when ``markdown``.

    The first column is left-aligned, the others right-aligned. A row that is a single string
    is a section title (a separator line in text, a bold row in markdown).
    """
    ncols = len(headers)
    cells = [[str(c) for c in row] for row in rows if not isinstance(row, str)]
    widths = [
        max([len(headers[i])] + [len(r[i]) for r in cells if i < len(r)]) for i in range(ncols)
    ]

    def line(row: Sequence[str]) -> str:
        parts = [
            (row[i] if i < len(row) else "").ljust(widths[i])
            if i == 0
            else (row[i] if i < len(row) else "").rjust(widths[i])
            for i in range(ncols)
        ]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    out = [line(headers)]
    if markdown:
        out.append(
            "|"
            + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]])
            + "|"
        )
    else:
        out.append("-" * len(out[0]))
    for row in rows:
        if isinstance(row, str):
            out.append(line([f"**{row}**"]) if markdown else f"-- {row}")
        else:
            out.append(line([str(c) for c in row]))
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Target:
    """One goal: ``value`` compared with ``limit`` (``<=`` when ``lower_is_better``)."""

    label: str
    value: float
    limit: float
    lower_is_better: bool
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.value <= self.limit if self.lower_is_better else self.value >= self.limit

    def __str__(self) -> str:
        op = "<=" if self.lower_is_better else ">="
        verdict = "PASS" if self.ok else "MISS"
        extra = f"  ({self.detail})" if self.detail else ""
        return f"{verdict}  {self.label}: {self.value:.2f}x {op} {self.limit:g}x{extra}"


def machine_info() -> dict[str, str]:
    """Where a run happened: date (UTC), cores, Python, CPU model, OS."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for text_line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if text_line.startswith("model name"):
                cpu = text_line.split(":", 1)[1].strip()
                break
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count() or "?"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
    }


# ----------------------------------------------------------------------------------- processes


class Deadline:
    """A time budget: ``remaining()`` seconds left, ``check(what)`` raises once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def check(self, what: str = "benchmark") -> None:
        if self.remaining() <= 0:
            raise BenchError(f"{what}: time budget of {self.seconds:g}s exceeded")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Wait until a TCP server accepts connections on ``host:port``; BenchError on timeout."""
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise BenchError(f"nothing listens on {host}:{port} after {timeout:g}s")
            time.sleep(0.05)


def _stop_group(proc: subprocess.Popen[Any], grace: float) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    # SIGKILL the group even when the leader exited: its children (pre-fork workers) may not have
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def managed_process(
    args: Sequence[str | os.PathLike[str]], *, grace: float = 5.0, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """Start ``args`` in a new session and end its whole process group on exit.

    The group gets SIGTERM, then SIGKILL after ``grace`` seconds, so a pre-fork server and its
    workers never outlive the benchmark. Extra keywords go to :class:`subprocess.Popen`
    (``stdout`` defaults to DEVNULL).
    """
    popen.setdefault("stdout", subprocess.DEVNULL)
    proc = subprocess.Popen([os.fspath(a) for a in args], start_new_session=True, **popen)
    try:
        yield proc
    finally:
        _stop_group(proc, grace)


def stop_mp_process(proc: multiprocessing.process.BaseProcess, grace: float = 2.0) -> None:
    """End a ``multiprocessing`` child: join, then SIGTERM, then SIGKILL; always reaped."""
    if proc.pid is None:
        return
    proc.join(grace)
    if proc.is_alive():
        proc.terminate()
        proc.join(grace)
    if proc.is_alive():
        proc.kill()
        proc.join()


def reap_mp_children() -> list[int]:
    """Kill and reap every ``multiprocessing`` child still alive; return their pids (orphans)."""
    left = multiprocessing.active_children()
    for proc in left:
        proc.kill()
        proc.join()
    return [p.pid for p in left if p.pid is not None]


# ---------------------------------------------------------------------------------------- peers


def find_uv() -> str:
    """The ``uv`` executable (on PATH, or from the ``uv`` Python package); BenchError if none."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]
    except ImportError:
        raise BenchError("uv is not installed (pip install uv)")
    return str(find_uv_bin())


def _base_python() -> str:
    base = getattr(sys, "_base_executable", None)
    return base if base and Path(base).exists() else sys.executable


class PeerEnv:
    """A virtual environment holding the peer packages a benchmark compares pulsar with.

    Created with ``uv venv`` from the running interpreter's base Python, filled with
    ``uv pip install``. By default it lives in ``tools/bench/.venv-peers`` and is kept between
    runs: :meth:`install` records what it installed and skips requirements already there.
    ``PeerEnv.temporary()`` makes one in a temporary directory that :meth:`close` (or leaving the
    ``with`` block) removes::

        with PeerEnv() as peers:
            peers.install("uvicorn[standard]", "gunicorn")
            with peers.popen("uvicorn", "app:app", "--port", str(port), cwd=here):
                wait_for_port(port)
                ...

    Peers run only as separate processes (``peers.run``/``peers.popen``); nothing from the venv
    is imported into the benchmark. Errors (no uv, no network) raise :class:`BenchError`.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, python: str | None = None
    ) -> None:
        self.path = Path(path) if path is not None else PEERS_VENV
        self.base_python = python or _base_python()
        self._temporary: str | None = None

    @classmethod
    def temporary(cls, *, python: str | None = None) -> PeerEnv:
        """A peer environment in a new temporary directory, removed by :meth:`close`."""
        tmp = tempfile.mkdtemp(prefix="pulsar-bench-peers-")
        env = cls(Path(tmp) / "venv", python=python)
        env._temporary = tmp
        return env

    def __enter__(self) -> PeerEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the environment if it is temporary (a kept one stays for the next run)."""
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    @property
    def bin(self) -> Path:
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def script(self, name: str) -> Path:
        """The path of a console script installed in the environment (``gunicorn``...)."""
        return self.bin / name

    def _uv(self, *args: str) -> None:
        proc = subprocess.run([find_uv(), *args], capture_output=True, text=True, check=False)
        if proc.returncode:
            raise BenchError(f"uv {' '.join(args[:2])} failed:\n{proc.stderr.strip()}")

    def create(self) -> PeerEnv:
        """Create the environment unless it exists (idempotent)."""
        if not self.python.exists():
            self._uv("venv", "--quiet", "--python", self.base_python, str(self.path))
        return self

    @property
    def _stamp(self) -> Path:
        return self.path / "pulsar-bench-installed.json"

    def installed(self) -> set[str]:
        """The requirement strings installed through :meth:`install` so far."""
        try:
            return set(json.loads(self._stamp.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return set()

    def install(self, *requirements: str) -> PeerEnv:
        """Install ``requirements`` (pip syntax) unless each was installed already."""
        self.create()
        done = self.installed()
        missing = [r for r in requirements if r not in done]
        if missing:
            # everything asked for so far, resolved together: installing only the missing ones
            # lets a later peer downgrade a library an earlier one needs (arq pinned redis-py
            # below what Celery's kombu requires)
            wanted = sorted(done | set(missing))
            self._uv("pip", "install", "--quiet", "--python", str(self.python), *wanted)
            self._stamp.write_text(json.dumps(sorted(done | set(missing))), encoding="utf-8")
        return self

    def key(self) -> str:
        """A short fingerprint of what is installed (to label results)."""
        return hashlib.sha1(json.dumps(sorted(self.installed())).encode()).hexdigest()[:8]

    def command(self, program: str, *args: str) -> list[str]:
        """``program`` as a command line: a console script of the venv, or ``-m module`` with
        its python when ``program`` starts with ``-m``."""
        if program == "-m" or program.startswith("-"):
            return [str(self.python), program, *args]
        return [str(self.script(program)), *args]

    def run(self, program: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command of the environment to completion (``check=True`` by default)."""
        kwargs.setdefault("check", True)
        return subprocess.run(self.command(program, *args), **kwargs)

    def popen(self, program: str, *args: str, **kwargs: Any) -> Any:
        """:func:`managed_process` for a command of the environment (a context manager)."""
        return managed_process(self.command(program, *args), **kwargs)


# ------------------------------------------------------------------------------------- profiles


def baseline_python(rev: str, packages: Sequence[str]) -> tuple[str, str]:
    """``(label, python)`` of the pulsar packages ``packages`` (requirement names of this
    repository's ``packages/`` folders, extras allowed: ``"pulsar-tasks[redis]"``) as they were at
    git revision ``rev``: its ``packages/`` exported with ``git archive`` into
    ``tools/bench/.venv-baseline-<sha>/src`` and installed (not editable) into a venv beside it,
    kept between runs like the peers' (what a benchmark's ``--baseline REV`` runs)."""
    import io
    import tarfile

    root = HERE.parents[1]
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short=7", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise BenchError(f"--baseline {rev}: not a revision of {root}: {proc.stderr.strip()}")
    sha = proc.stdout.strip()
    home = HERE / f".venv-baseline-{sha}"
    src = home / "src"
    if not (src / "packages" / "pulsar-core" / "pyproject.toml").exists():
        src.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", sha, "packages"],
            capture_output=True,
            check=False,
        )
        if archive.returncode:
            raise BenchError(f"--baseline {rev}: git archive failed: {archive.stderr.decode()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(src, filter="data")
    requirements = []
    for spec in packages:
        name, sep, extras = spec.partition("[")
        folder = src / "packages" / name
        if not (folder / "pyproject.toml").exists():
            raise BenchError(f"--baseline {rev}: no {name} at {sha}")
        requirements.append(f"{folder}[{extras}" if sep else str(folder))
    env = PeerEnv(home / "venv")
    env.install(*requirements)
    return f"@{sha}", str(env.python)


def profile_summary(path: str | os.PathLike[str], limit: int = 15) -> str:
    """The ``limit`` functions with the most own time in a cProfile dump, as text lines with
    their share of the total own time, their cumulative share and call counts."""
    stats = pstats.Stats(os.fspath(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-12
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]
    out = [f"{'own%':>6} {'cum%':>6} {'calls':>9}  function   (total {total:.3f}s)"]
    for (filename, lineno, func), (_cc, nc, tt, ct, _callers) in rows:
        where = f"{_short_path(filename)}:{lineno}({func})" if lineno else func
        out.append(f"{100 * tt / total:6.1f} {100 * ct / total:6.1f} {nc:9d}  {where}")
    return "\n".join(out)


def _short_path(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("pulsar", "asyncio", "uvloop"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[i:])
    return Path(filename).name
