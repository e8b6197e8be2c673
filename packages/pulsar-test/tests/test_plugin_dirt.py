"""A test that leaves its loop dirty fails: leaked tasks, coroutines never awaited, loop errors."""

from __future__ import annotations

import pytest

LEAKY = """
import asyncio
import pytest

async def forever():
    await asyncio.sleep(3600)

async def test_leaks():
    asyncio.create_task(forever(), name="leaky-task")
    await asyncio.sleep(0)

async def test_next_test_is_clean():
    assert asyncio.all_tasks() == {asyncio.current_task()}
"""


def test_leaked_task_fails_the_test_and_is_cancelled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_leaks _*",
            "pulsar: test_leaky.py::test_leaks left the event loop dirty "
            "(@pytest.mark.allow_leaks accepts it)",
            "1 task(s) created by the test still pending after its teardown (now cancelled):",
            "  <Task pending name='leaky-task' coro=<forever() running at *test_leaky.py:5>*",
            "    created at (most recent call last):",
            '      File "*test_leaky.py", line 8, in test_leaks',
            '        asyncio.create_task(forever(), name="leaky-task")',
            "    pending at (most recent call last):",
            '      File "*test_leaky.py", line 5, in forever',
            "FAILED test_leaky.py::test_leaks - Failed: pulsar: *",
        ]
    )
    # reported once, as the test failing (not as a teardown error as well)
    result.stdout.no_fnmatch_line("*ERROR at teardown*")


def test_allow_leaks_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        async def forever():
            await asyncio.sleep(3600)

        @pytest.mark.allow_leaks
        async def test_leaks_on_purpose():
            asyncio.create_task(forever())
            forever()
        """
    )
    result = pytester.runpytest("-W", "ignore::RuntimeWarning")
    result.assert_outcomes(passed=1)


def test_tasks_cancelled_in_teardown_are_not_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def background():
            task = asyncio.create_task(asyncio.sleep(3600))
            yield task
            task.cancel()  # not awaited: it ends on the next loop turn

        @pytest.fixture(scope="module")
        async def server():
            # a module fixture's tasks outlive each test: they are not the test's leaks
            task = asyncio.create_task(asyncio.sleep(3600))
            yield
            task.cancel()

        async def test_one(background, server):
            assert not background.done()

        async def test_two(server):
            pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_fixture_leaks_are_the_test_s(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def sloppy():
            asyncio.create_task(asyncio.sleep(3600), name="fixture-task")

        async def test_uses_sloppy(sloppy):
            pass

        def test_sync_with_sloppy(sloppy):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*name='fixture-task'*"])


def test_never_awaited_coroutine_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def work():
            return 1

        async def test_forgot_await():
            work()
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "1 coroutine(s) never awaited:",
            "  coroutine 'work' was never awaited",
            "    created at (most recent call last):",
            '      File "*test_never_awaited_coroutine_fails.py", line 7, in test_forgot_await',
        ]
    )


def test_loop_errors_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        def boom():
            raise ZeroDivisionError("in a callback")

        async def test_callback_error():
            asyncio.get_running_loop().call_soon(boom)
            await asyncio.sleep(0.01)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "1 error(s) reported to the loop's exception handler:",
            "  Exception in callback boom()*",
            "*ZeroDivisionError: in a callback",
        ]
    )


def test_dirt_after_a_failure_is_a_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def test_fails_and_leaks():
            asyncio.create_task(asyncio.sleep(3600), name="left-behind")
            assert False, "the real failure"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: the real failure*", "*pulsar: dirty loop*", "*name='left-behind'*"]
    )


def test_dirt_with_a_teardown_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        async def broken():
            yield
            raise ValueError("teardown failed")

        async def test_leaks(broken):
            asyncio.create_task(asyncio.sleep(3600), name="left-behind")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ValueError: teardown failed*", "*pulsar dirty loop*", "*name='left-behind'*"]
    )


def test_function_scope_loop_closes_leaks_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest("--pulsar-loop-scope=function")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*name='leaky-task'*"])


def test_xfail_keeps_pytest_semantics(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(reason="known", strict=True)
        async def test_expected_failure():
            assert False

        @pytest.mark.skip(reason="not today")
        async def test_skipped():
            pass
        """
    )
    pytester.runpytest().assert_outcomes(xfailed=1, skipped=1)
