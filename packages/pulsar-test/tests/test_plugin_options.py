"""--pulsar-bench, --pulsar-profile, and the port fixtures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

BENCH = """
import asyncio
import pytest

CALLS = {"async": 0, "sync": 0}

@pytest.mark.bench
async def test_async_bench():
    CALLS["async"] += 1
    await asyncio.sleep(0)

@pytest.mark.bench
def test_sync_bench():
    CALLS["sync"] += 1

def test_zz_counts(request):
    runs = request.config.getoption("pulsar_bench_runs") if request.config.getoption(
        "pulsar_bench") else 1
    assert CALLS == {"async": runs, "sync": runs}
"""


def test_bench_runs_and_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_b=BENCH)
    result = pytester.runpytest("--pulsar-bench", "--pulsar-bench-runs", "4")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*= pulsar bench (4 runs per test) =*",
            "test * runs * mean * stdev * min",
            "test_b.py::test_*_bench * 4 * *s * *s * *s",
            "test_b.py::test_*_bench * 4 * *s * *s * *s",
        ]
    )


def test_bench_tests_run_once_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_b=BENCH)
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    result.stdout.no_fnmatch_line("*pulsar bench*")


def test_bench_runs_must_be_positive(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--pulsar-bench-runs=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pulsar-bench-runs must be at least 1*"])


def test_profile_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def marker_function_for_profile():
            await asyncio.sleep(0)

        async def test_profiled():
            await marker_function_for_profile()
        """
    )
    result = pytester.runpytest("--pulsar-profile=out/profile.txt")
    result.assert_outcomes(passed=1)
    report = Path(pytester.path, "out", "profile.txt")
    result.stdout.fnmatch_lines(
        [
            "*= pulsar profile =*",
            f"cProfile report (sorted by cumulative time) written to {report}",
        ]
    )
    text = report.read_text()
    assert "cumulative" in text
    assert "marker_function_for_profile" in text


def test_profile_default_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--pulsar-profile")
    result.assert_outcomes(passed=1)
    assert Path(pytester.path, "pulsar-profile.txt").is_file()


def test_profile_refuses_a_test_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_x(): pass")
    result = pytester.runpytest("--pulsar-profile", "test_a.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*looks like a test path; write --pulsar-profile=FILE*"])


def test_unused_tcp_port_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socket

        def test_port(unused_tcp_port):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", unused_tcp_port))

        def test_factory(unused_tcp_port_factory):
            ports = {unused_tcp_port_factory() for _ in range(5)}
            assert len(ports) == 5
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_unused_tcp_port_helper() -> None:
    from pulsar.apps.test import unused_tcp_port

    port = unused_tcp_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "pulsar: async tests on the pulsar loop:",
            "*--pulsar-io=*",
            "*--pulsar-loop-scope=*",
            "*--pulsar-timeout=SECONDS*",
            "*--pulsar-bench *",
            "*--pulsar-bench-runs=N*",
            "*--pulsar-profile=*FILE*",
        ]
    )
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.timeout_async(seconds): pulsar: *",
            "@pytest.mark.allow_leaks: pulsar: *",
            "@pytest.mark.bench: pulsar: *",
        ]
    )
