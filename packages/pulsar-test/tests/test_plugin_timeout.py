"""Per-test timeouts: the failure shows every pending task's and every thread's stack."""

from __future__ import annotations

import time

import pytest

HANGS = """
import asyncio
import threading
import pytest

async def stuck_helper():
    await asyncio.sleep(3600)

async def test_hangs():
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="stuck-worker", daemon=True)
    thread.start()
    helper = asyncio.create_task(stuck_helper(), name="helper-task")
    try:
        await asyncio.sleep(3600)
    finally:
        release.set()
        helper.cancel()

async def test_fast():
    await asyncio.sleep(0)
"""


def test_hanging_test_fails_with_stacks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hangs=HANGS)
    start = time.monotonic()
    result = pytester.runpytest("--pulsar-timeout=0.3")
    assert time.monotonic() - start < 10
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "pulsar: test_hangs.py::test_hangs timed out after 0.3 s and was cancelled.",
            "*pending task(s) on the loop when it expired:",
            "  <Task pending name='test_hangs.py::test_hangs'*<- this run",
            "    pending at (most recent call last):",
            '      File "*test_hangs.py", line 14, in test_hangs',
            "        await asyncio.sleep(3600)",
            "  <Task pending name='helper-task'*",
            "    created at (most recent call last):",
            '      File "*test_hangs.py", line 12, in test_hangs',
            "    pending at (most recent call last):",
            '      File "*test_hangs.py", line 6, in stuck_helper',
            "Other threads:",
            "  Thread 'stuck-worker' daemon*",
            "*in wait",
        ]
    )


def test_marker_overrides_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        pytestmark = pytest.mark.timeout_async(0.2)

        async def test_module_limit():
            await asyncio.sleep(5)

        @pytest.mark.timeout_async(seconds=0)
        async def test_no_limit():
            await asyncio.sleep(0.4)

        @pytest.mark.timeout_async("soon")
        async def test_bad_value():
            pass
        """
    )
    result = pytester.runpytest("--pulsar-timeout=100")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_bad_value*",
            "pulsar: @pytest.mark.timeout_async: not a number of seconds: 'soon'",
            "*test_module_limit timed out after 0.2 s*",
        ]
    )


def test_fixture_steps_have_the_limit_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def slow_setup():
            await asyncio.sleep(5)

        @pytest.fixture
        async def slow_teardown():
            yield
            await asyncio.sleep(5)

        async def test_setup(slow_setup):
            pass

        async def test_teardown(slow_teardown):
            pass
        """
    )
    result = pytester.runpytest("-o", "pulsar_timeout=0.2")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*fixture 'slow_setup' (setup) timed out after 0.2 s*",
            "*fixture 'slow_teardown' (teardown) timed out after 0.2 s*",
        ]
    )


def test_cancellation_swallowed_by_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def test_stubborn():
            for _ in range(2):
                try:
                    await asyncio.sleep(5)
                except asyncio.CancelledError:
                    pass
        """
    )
    start = time.monotonic()
    result = pytester.runpytest("--pulsar-timeout=0.1")
    assert time.monotonic() - start < 10
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_stubborn timed out after 0.1 s*"])


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_bad_timeout_option(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest(f"--pulsar-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pulsar: --pulsar-timeout / pulsar_timeout: *"])
