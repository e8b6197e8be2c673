"""``async def`` tests and async fixtures run on the pulsar loop without marks."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestAssertRewriteWarning")


def test_async_pass_and_fail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def test_pass():
            await asyncio.sleep(0)

        async def test_fail():
            await asyncio.sleep(0)
            value = 1
            assert value == 2
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*def test_fail():*", "*assert value == 2", "E*assert 1 == 2"])
    # the traceback shows the test, not the loop or the plugin
    result.stdout.no_fnmatch_line("*base_events.py*")
    result.stdout.no_fnmatch_line("*pulsar/apps/test/*")


def test_sync_tests_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        def test_no_loop_running():
            with pytest.raises(RuntimeError):
                asyncio.get_running_loop()

        def test_asyncio_run_still_works():
            async def main():
                return 42
            assert asyncio.run(main()) == 42

        def test_sync_failure():
            assert 1 == 2
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.no_fnmatch_line("*pulsar:*")


def test_session_loop_shared_by_every_scope(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import asyncio
        import pytest

        @pytest.fixture(scope="session")
        async def session_loop():
            return asyncio.get_running_loop()
        """
    )
    pytester.makepyfile(
        test_one="""
        import asyncio
        import pytest

        @pytest.fixture(scope="module")
        async def module_loop():
            yield asyncio.get_running_loop()

        @pytest.fixture
        async def function_loop():
            return asyncio.get_running_loop()

        class TestClass:
            @pytest.fixture(scope="class")
            async def class_loop(self):
                return asyncio.get_running_loop()

            async def test_in_class(self, class_loop, session_loop):
                assert asyncio.get_running_loop() is class_loop is session_loop

        async def test_all_scopes(session_loop, module_loop, function_loop, pulsar_loop):
            loop = asyncio.get_running_loop()
            assert loop is session_loop is module_loop is function_loop is pulsar_loop

        def test_sync_test_with_async_fixture(function_loop, pulsar_loop):
            assert function_loop is pulsar_loop
            assert not pulsar_loop.is_running()
        """,
        test_two="""
        import asyncio

        async def test_other_module(session_loop, pulsar_loop):
            assert asyncio.get_running_loop() is session_loop is pulsar_loop
        """,
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["pulsar: io=asyncio, loop scope=session, timeout=60s"])


def test_function_loop_scope_gives_each_test_a_new_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        LOOPS = []

        @pytest.fixture
        async def function_loop():
            yield asyncio.get_running_loop()

        async def test_one(function_loop, pulsar_loop):
            assert asyncio.get_running_loop() is function_loop is pulsar_loop
            LOOPS.append(pulsar_loop)

        async def test_two(function_loop):
            assert asyncio.get_running_loop() is function_loop
            LOOPS.append(function_loop)

        def test_loops_were_closed():
            assert len(LOOPS) == 2
            assert LOOPS[0] is not LOOPS[1]
            assert all(loop.is_closed() for loop in LOOPS)
        """
    )
    result = pytester.runpytest("--pulsar-loop-scope=function")
    result.assert_outcomes(passed=3)


def test_function_loop_scope_refuses_wider_async_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="module")
        async def shared():
            return 1

        @pytest.fixture(scope="module")
        def sync_shared():
            return 2

        async def test_uses_shared(shared):
            pass

        async def test_sync_module_fixture_is_fine(sync_shared):
            assert sync_shared == 2
        """
    )
    result = pytester.runpytest("-o", "pulsar_loop_scope=function")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*async fixture 'shared' has scope 'module', but --pulsar-loop-scope=function gives "
            "each test its own loop*"
        ]
    )


def test_async_generator_fixture_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        EVENTS = []

        @pytest.fixture(scope="module")
        async def resource():
            EVENTS.append("module setup")
            yield "module"
            await asyncio.sleep(0)
            EVENTS.append("module teardown")

        @pytest.fixture
        async def per_test(resource):
            loop = asyncio.get_running_loop()
            EVENTS.append("setup")
            yield resource
            assert asyncio.get_running_loop() is loop
            EVENTS.append("teardown")

        async def test_first(per_test):
            assert per_test == "module"
            assert EVENTS == ["module setup", "setup"]

        async def test_second(per_test):
            assert EVENTS == ["module setup", "setup", "teardown", "setup"]
        """,
    )
    pytester.makepyfile(
        test_z_last="""
        from test_async_generator_fixture_teardown import EVENTS

        def test_after():
            assert EVENTS[-2:] == ["teardown", "module teardown"]
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_fixture_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def breaks_in_teardown():
            yield 1
            raise RuntimeError("teardown went wrong")

        @pytest.fixture
        async def breaks_in_setup():
            raise KeyError("setup went wrong")

        @pytest.fixture
        async def never_yields():
            if False:
                yield

        @pytest.fixture
        async def yields_twice():
            yield 1
            yield 2

        async def test_teardown_error(breaks_in_teardown):
            assert breaks_in_teardown == 1

        async def test_setup_error(breaks_in_setup):
            pass

        async def test_never_yields(never_yields):
            pass

        async def test_yields_twice(yields_twice):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, errors=4)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_teardown_error*",
            '*raise RuntimeError("teardown went wrong")',
            "E*RuntimeError: teardown went wrong",
            "*ERROR at setup of test_setup_error*",
            "E*KeyError: 'setup went wrong'",
            "*never_yields did not yield a value*",
            "*async fixture 'yields_twice' has more than one 'yield'*",
        ]
    )


def test_context_variables_flow_from_function_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import contextvars
        import pytest

        USER = contextvars.ContextVar("user", default=None)

        @pytest.fixture
        async def login():
            USER.set("alice")
            yield
            assert USER.get() == "alice"

        async def test_sees_it(login):
            assert USER.get() == "alice"

        async def test_fresh_context():
            assert USER.get() is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_class_fixtures_bind_to_the_test_instance(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        class TestMethods:
            @pytest.fixture
            async def me(self):
                self.seen = True
                yield self

            async def test_same_instance(self, me):
                assert me is self and self.seen
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_getfixturevalue_of_async_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def value():
            return 3

        def test_from_sync_code(request):
            assert request.getfixturevalue("value") == 3

        async def test_from_async_code(request):
            request.getfixturevalue("value")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the pulsar test loop is already running*getfixturevalue*"])
    result.stdout.no_fnmatch_line("*never awaited*")


def test_async_generator_test_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        async def test_agen():
            yield 1
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*an async generator function cannot be a test*"])


def test_uvloop_and_bad_io(pytester: pytest.Pytester) -> None:
    pytest.importorskip("uvloop")
    pytester.makepyfile(
        """
        import asyncio

        async def test_loop_kind():
            assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        """
    )
    pytester.runpytest("--pulsar-io=uvloop").assert_outcomes(passed=1)
    result = pytester.runpytest("-o", "pulsar_io=tokio")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pulsar_io*invalid value 'tokio'*"])


def test_readme_example(pytester: pytest.Pytester) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("## Example", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    pytester.makepyfile(test_readme=example)
    for io in ("asyncio", "auto"):
        pytester.runpytest(f"--pulsar-io={io}").assert_outcomes(passed=1)
