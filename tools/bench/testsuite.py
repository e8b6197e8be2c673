#!/usr/bin/env python3
"""pulsar-test vs pytest-asyncio / pytest-xdist: wall time of a generated async test suite.

The suite: ``--files`` files (20) of ``--tests`` tests (20 each, 400 in all), each test awaiting
``--sleep`` seconds of I/O (``asyncio.sleep(0.01)``). It runs, in one go, as:

* ``pytest-asyncio``: pytest + pytest-asyncio (``asyncio_mode=auto``), serially;
* ``xdist -n N``: the same with pytest-xdist and ``N`` workers (``--workers``, default 2);
* ``pulsar``: pytest + pulsar-test, serially (no marks needed);
* ``pulsar --pulsar-workers N``: pulsar-test spreading the files over ``N`` worker actors.

pytest-asyncio and pytest-xdist run from the peer environment (``tools/bench/.venv-peers``,
made with uv; never the workspace env), pulsar-test from the interpreter running this script.
Each runner is timed ``--rounds`` times (3), rounds interleaved, best wall time kept; every run
must report all tests passed. Target: ``--pulsar-workers N`` at least as fast as xdist ``-n N``.

    hatch run bench testsuite [--workers 2] [--rounds 3] [--markdown]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import BenchError, PeerEnv, Target, machine_info, ratio, render_table

__all__ = ["Runner", "generate_suite", "main", "run_once"]

PEERS = ("pytest>=8.2", "pytest-asyncio>=0.24", "pytest-xdist>=3.6")
_PASSED = re.compile(r"(\d+) passed")


def generate_suite(root: Path, files: int, tests: int, sleep: float) -> int:
    """Write the suite under ``root`` (with its own ``pytest.ini``); returns the test count."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for f in range(files):
        body = ["import asyncio", ""]
        for t in range(tests):
            body += [f"async def test_{t}():", f"    await asyncio.sleep({sleep!r})", ""]
        (root / f"test_file{f:03d}.py").write_text("\n".join(body), encoding="utf-8")
    return files * tests


@dataclass
class Runner:
    """One way of running the suite: a label and its command line."""

    label: str
    command: list[str]
    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def run_once(runner: Runner, cwd: Path, expected: int, timeout: float) -> float:
    """Run ``runner`` once in ``cwd``; its wall time. Raises BenchError unless all passed."""
    start = time.perf_counter()
    proc = subprocess.run(
        runner.command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    elapsed = time.perf_counter() - start
    found = _PASSED.search(proc.stdout)
    if proc.returncode != 0 or found is None or int(found.group(1)) != expected:
        raise BenchError(
            f"{runner.label}: expected {expected} passed, exit code {proc.returncode}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return elapsed


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench testsuite", description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=20, help="test files (20)")
    p.add_argument("--tests", type=int, default=20, help="tests per file (20)")
    p.add_argument("--sleep", type=float, default=0.01, help="seconds each test awaits (0.01)")
    p.add_argument("-w", "--workers", type=int, default=2, help="xdist / pulsar workers (2)")
    p.add_argument("-r", "--rounds", type=int, default=3, help="runs of each runner (3)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run (300)")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.add_argument(
        "--temporary-peers", action="store_true", help="peers in a throwaway venv (else kept)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the target is met, 1 when missed, 2 when it could not run."""
    opts = _parser().parse_args(argv)
    peers = PeerEnv.temporary() if opts.temporary_peers else PeerEnv()
    n = str(opts.workers)
    quiet = ["-q", "-p", "no:cacheprovider"]
    try:
        print(f"installing peers ({', '.join(PEERS)}) into {peers.path} ...", flush=True)
        peers.install(*PEERS)
        asyncio_args = ["-p", "no:xdist", "-o", "asyncio_mode=auto", *quiet]
        asyncio_args += ["-o", "asyncio_default_fixture_loop_scope=function"]
        runners = [
            Runner("pytest-asyncio (serial)", peers.command("-m", "pytest", *asyncio_args)),
            Runner(
                f"pytest-asyncio + xdist -n {n}",
                peers.command(
                    "-m", "pytest", *asyncio_args[2:], "-p", "xdist", "-n", n, "--dist", "load"
                ),
            ),
            Runner("pulsar-test (serial)", [sys.executable, "-m", "pytest", *quiet]),
            Runner(
                f"pulsar-test --pulsar-workers {n}",
                [sys.executable, "-m", "pytest", *quiet, "--pulsar-workers", n],
            ),
        ]
        with tempfile.TemporaryDirectory(prefix="pulsar-bench-suite-") as tmp:
            root = Path(tmp) / "suite"
            total = generate_suite(root, opts.files, opts.tests, opts.sleep)
            print(
                f"suite: {opts.files} files x {opts.tests} tests = {total} tests, each awaiting "
                f"{opts.sleep * 1000:g} ms; {opts.rounds} rounds, best kept\n",
                flush=True,
            )
            for r in range(opts.rounds):
                for runner in runners:
                    runner.times.append(run_once(runner, root, total, opts.timeout))
                    print(f"  round {r + 1}: {runner.label:<34} {runner.times[-1]:6.2f} s")
    except (BenchError, subprocess.TimeoutExpired) as exc:
        print(f"bench testsuite: {exc}", file=sys.stderr)
        return 2
    finally:
        peers.close()

    serial, xdist, _, pulsar_n = runners
    ideal = total * opts.sleep
    headers = ["runner", "best wall", "median", "vs serial asyncio", "vs xdist"]
    rows = [
        [
            r.label,
            f"{r.best:.2f} s",
            f"{r.median:.2f} s",
            ratio(r.best, serial.best),
            ratio(r.best, xdist.best),
        ]
        for r in runners
    ]
    info = machine_info()
    print()
    print(f"{info['date']}  {info['cpu']}, {info['nproc']} CPUs, {info['python']}, {info['os']}")
    print(
        f"(the awaited I/O alone: {ideal:.2f} s serially, {ideal / opts.workers:.2f} s on "
        f"{opts.workers} workers)\n"
    )
    print(render_table(headers, rows))
    if opts.markdown:
        print()
        print(render_table(headers, rows, markdown=True))
    target = Target(
        f"pulsar --pulsar-workers {n} wall / xdist -n {n} wall",
        pulsar_n.best / xdist.best,
        1.0,
        lower_is_better=True,
    )
    print()
    print(target)
    return 0 if target.ok else 1


if __name__ == "__main__":
    sys.exit(main())
