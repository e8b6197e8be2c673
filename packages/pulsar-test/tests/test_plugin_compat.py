"""The plugin beside pytest and other plugins: collection errors, unittest, anyio, asyncio."""

from __future__ import annotations

import pytest

# A stand-in for pytest-asyncio: what the plugin looks at is pytest-asyncio's ini key
# ``asyncio_mode``, its ``--asyncio-mode`` option, its ``asyncio`` mark and the attribute its
# ``pytest_asyncio.fixture`` decorator sets. (Checked by hand against pytest-asyncio 1.5 in a
# throwaway venv; the workspace does not install it.)
FAKE_PYTEST_ASYNCIO = """
import pytest

def pytest_addoption(parser):
    parser.addini("asyncio_mode", "fake pytest-asyncio", default="strict")
    parser.addoption("--asyncio-mode", dest="asyncio_mode", default=None)

def pytest_configure(config):
    config.addinivalue_line("markers", "asyncio: fake pytest-asyncio mark")

def asyncio_fixture(func):
    func._force_asyncio_fixture = True
    return pytest.fixture(func)
"""


def test_import_error_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_broken="""
        import no_such_module_here

        async def test_never_runs():
            pass
        """,
        test_fine="""
        async def test_runs():
            pass
        """,
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_broken.py*",
            "*ModuleNotFoundError: No module named 'no_such_module_here'",
            "*Interrupted: 1 error during collection*",
        ]
    )


def test_unittest_async_cases_are_left_to_unittest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import unittest

        class Case(unittest.IsolatedAsyncioTestCase):
            async def asyncSetUp(self):
                self.loop = asyncio.get_running_loop()

            async def test_own_loop(self):
                assert asyncio.get_running_loop() is self.loop
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_anyio_tests_are_left_to_anyio(pytester: pytest.Pytester) -> None:
    pytest.importorskip("anyio")
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.fixture
        async def shared_loop():
            return asyncio.get_running_loop()

        @pytest.mark.anyio
        async def test_anyio(shared_loop):
            # the fixture ran on anyio's loop, like the test
            assert asyncio.get_running_loop() is shared_loop

        async def test_pulsar(shared_loop, pulsar_loop):
            assert asyncio.get_running_loop() is shared_loop is pulsar_loop
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_pytest_asyncio_auto_mode_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_PYTEST_ASYNCIO)
    pytester.makepyfile("async def test_x(): pass")
    for args in (["-o", "asyncio_mode=auto"], ["--asyncio-mode=auto"]):
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [
                "ERROR: pulsar-test and pytest-asyncio (asyncio_mode=auto) would both run every "
                "async test. Pick one: keep pulsar-test with '-p no:asyncio', or keep "
                "pytest-asyncio with '-p no:pulsar'."
            ]
        )


def test_pytest_asyncio_claims_are_refused_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_PYTEST_ASYNCIO)
    pytester.makepyfile(
        test_plain="""
        async def test_plain():
            pass
        """,
    )
    # strict mode without asyncio marks: the two plugins get along
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.makepyfile(
        test_claimed="""
        import pytest
        from conftest import asyncio_fixture

        @asyncio_fixture
        async def claimed():
            return 1

        @pytest.mark.asyncio
        async def test_marked():
            pass

        async def test_uses_claimed_fixture(claimed):
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: pulsar-test runs async tests and fixtures on the pulsar loop, and "
            "pytest-asyncio claims these too:",
            "  test_claimed.py::test_marked (marked asyncio)",
            "  test_claimed.py::test_uses_claimed_fixture (pytest_asyncio.fixture 'claimed')",
            "Pick one: *",
        ]
    )


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("async def test_x(): pass")
    result = pytester.runpytest("-p", "no:pulsar")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_keyboard_interrupt_in_an_async_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        async def test_interrupted():
            asyncio.create_task(asyncio.sleep(3600))
            raise KeyboardInterrupt

        async def test_not_reached():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*", "*no tests ran*"])
    output = result.stdout.str() + result.stderr.str()
    assert "Event loop stopped" not in output
    assert "never retrieved" not in output
