"""``--pulsar-workers``: the scheduler (no I/O), then real runs over forked worker actors.

The runs fork processes, so they go through ``runpytest_subprocess``.
"""

from __future__ import annotations

import pytest

from pulsar.apps.test._dist import Scheduler, group_by_file

# --------------------------------------------------------------------------- the scheduler


class _Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def test_group_by_file_keeps_first_appearance_order() -> None:
    items = [_Item(n) for n in ("b.py::t1", "a.py::t1", "b.py::C::t2", "a.py::t2", "c.py")]
    assert group_by_file(items) == [[0, 2], [1, 3], [4]]  # type: ignore[arg-type]


def test_scheduler_hands_out_files_in_order() -> None:
    s = Scheduler([[0, 1], [2], [3, 4, 5]])
    assert (s.total_files, s.total_items) == (3, 6)
    assert s.next_for("w0") == [0, 1]
    assert s.next_for("w1") == [2]
    s.reported("w0", 0)
    assert s.files_done == 0
    s.reported("w0", 1)
    s.reported("w1", 2)
    assert (s.files_done, s.items_done) == (2, 3)
    assert s.next_for("w1") == [3, 4, 5]
    assert s.next_for("w0") is None
    assert not s.finished
    for index in (3, 4, 5):
        s.reported("w1", index)
    assert s.finished and s.files_done == 3


def test_scheduler_refuses_reports_out_of_turn() -> None:
    s = Scheduler([[0, 1]])
    s.next_for("w0")
    with pytest.raises(ValueError, match="out of turn"):
        s.reported("w0", 1)
    with pytest.raises(ValueError):
        s.reported("w9", 0)


def test_scheduler_requeues_a_lost_workers_tests_first() -> None:
    s = Scheduler([[0, 1, 2], [3, 4], [5]])
    s.next_for("w0")
    s.next_for("w0")  # w0 prefetched the second file
    s.reported("w0", 0)
    crash = s.lost("w0")
    assert (crash.crashed, crash.requeued) == (1, 3)
    # the rest of each file goes back, in order, before the untouched files
    assert list(s.queue) == [[2], [3, 4], [5]]
    assert s.items_done == 2
    assert s.next_for("w1") == [2]
    s.reported("w1", 2)
    assert s.files_done == 1


def test_scheduler_lost_between_tests_and_close() -> None:
    s = Scheduler([[0], [1]])
    crash = s.lost("w0")
    assert (crash.crashed, crash.requeued) == (None, 0)
    s.close()
    assert s.next_for("w0") is None
    assert Scheduler([]).finished


# --------------------------------------------------------------------------- real runs

FILES = {
    "test_one": """
        import asyncio
        import pytest

        async def test_async():
            await asyncio.sleep(0.01)

        def test_sync():
            pass

        @pytest.mark.skip(reason="on purpose")
        def test_skipped():
            pass

        def test_fails():
            assert 1 + 1 == 3
        """,
    "test_two": """
        import pytest

        @pytest.mark.parametrize("n", range(5))
        def test_param(n):
            assert n < 4

        @pytest.mark.xfail(reason="known", strict=True)
        def test_xfail():
            assert False
        """,
    "test_three": """
        import asyncio

        class TestGroup:
            async def test_a(self):
                await asyncio.sleep(0)

            def test_b(self):
                pass
        """,
}


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_results_of_several_files(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**FILES)
    result = _run(pytester, "--pulsar-workers", "2", "-rA")
    result.assert_outcomes(passed=8, failed=2, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "collected 12 items",
            "[[]pulsar[]] 12 tests in 3 files on 2 workers",
            "*pulsar workers*",
            "[[]pulsar[]] 3/3 files, 2 workers started, 0 crashed, *s",
            "*short test summary info*",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "*_ test_fails _*",
            "E       assert (1 + 1) == 3",
            "PASSED test_three.py::TestGroup::test_a",
            "FAILED test_one.py::test_fails - assert (1 + 1) == 3",
            "FAILED test_two.py::test_param[[]4[]] - assert 4 < 4",
            "SKIPPED [[]1[]] test_one.py:*: on purpose",
            "XFAIL test_two.py::test_xfail - known",
        ]
    )
    # the serial run agrees
    serial = _run(pytester)
    serial.assert_outcomes(passed=8, failed=2, skipped=1, xfailed=1)


def test_all_passing_exits_zero(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**FILES)
    result = _run(pytester, "--pulsar-workers", "3", "-k", "not fails and not param")
    result.assert_outcomes(passed=4, skipped=1, xfailed=1, deselected=6)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["[[]pulsar[]] 6 tests in 3 files on 3 workers"])


def test_verbose_shows_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**FILES)
    result = _run(pytester, "--pulsar-workers", "2", "-v")
    result.stdout.fnmatch_lines_random(
        [
            "test_one.py::test_async PASSED*",
            "test_two.py::test_param[[]4[]] FAILED*",
            "test_three.py::TestGroup::test_b PASSED*",
        ]
    )


def test_fixture_scopes_per_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # module fixtures: set up once per file and torn down when the file is done, in the
    # worker that ran it; session fixtures: once per worker, torn down at its end
    pytester.makeconftest(
        """
        import os
        import pytest

        def log(line):
            with open(os.path.join(os.environ["LOG_DIR"], f"{os.getpid()}.log"), "a") as f:
                f.write(line + "\\n")

        @pytest.fixture(scope="session")
        async def session_resource():
            log("session up")
            yield os.getpid()
            log("session down")

        @pytest.fixture(scope="module")
        async def module_resource(request):
            log(f"module up {request.module.__name__}")
            yield
            log(f"module down {request.module.__name__}")
        """
    )
    for i in range(4):
        pytester.makepyfile(
            **{
                f"test_m{i}": """
                import os

                async def test_a(session_resource, module_resource):
                    assert session_resource == os.getpid()

                def test_b(module_resource):
                    pass
                """
            }
        )
    logs = pytester.mkdir("logs")
    monkeypatch.setenv("LOG_DIR", str(logs))
    result = _run(pytester, "--pulsar-workers", "2")
    result.assert_outcomes(passed=8)
    per_worker = [p.read_text().splitlines() for p in logs.iterdir()]
    assert 1 <= len(per_worker) <= 2
    for lines in per_worker:
        assert lines[0] == "session up" and lines[-1] == "session down"
        body = lines[1:-1]
        assert len(body) % 2 == 0
        for up, down in zip(body[::2], body[1::2], strict=True):
            assert up.replace("up", "down") == down
    assert sum(len(lines) - 2 for lines in per_worker) == 8


def test_worker_killed_mid_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **FILES,
        test_kill="""
        import os
        import sys

        def test_before():
            pass

        def test_killed():
            print("about to die", file=sys.stderr)
            os.kill(os.getpid(), 9)

        def test_after():
            pass

        def test_after_too():
            pass
        """,
    )
    result = _run(pytester, "--pulsar-workers", "2")
    result.assert_outcomes(passed=11, failed=3, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_killed _*",
            "worker w* (pid *) crashed while running this test: killed by SIGKILL",
            "2 test(s) it still had were given to another worker",
            "*[[]pulsar[]] 4/4 files, * started, 1 crashed*",
            "FAILED test_kill.py::test_killed - worker w* (pid *) crashed while runnin*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_worker_exits_in_tests(pytester: pytest.Pytester) -> None:
    # every test kills its worker: each is reported, the run still ends
    pytester.makepyfile(
        test_exit="""
        import os
        import pytest

        @pytest.mark.parametrize("code", [3, 4, 5])
        def test_exit(code):
            os._exit(code)

        def test_fine():
            pass
        """
    )
    result = _run(pytester, "--pulsar-workers", "2")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*crashed while running this test: exit code 3",
            "*crashed while running this test: exit code 4",
            "*crashed while running this test: exit code 5",
        ]
    )


def test_module_that_fails_to_import(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **FILES,
        test_broken="""
        import no_such_module_here

        def test_never():
            pass
        """,
    )
    result = _run(pytester, "--pulsar-workers", "2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_broken.py*",
            "*ModuleNotFoundError: No module named 'no_such_module_here'",
            "*Interrupted: 1 error during collection*",
        ]
    )
    result.assert_outcomes(errors=1)
    result = _run(pytester, "--pulsar-workers", "2", "--continue-on-collection-errors")
    result.assert_outcomes(passed=8, failed=2, skipped=1, xfailed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_exitfirst_stops_handing_out_files(pytester: pytest.Pytester) -> None:
    for i in range(6):
        pytester.makepyfile(**{f"test_x{i}": "def test_fail():\n    assert False\n"})
    result = _run(pytester, "--pulsar-workers", "2", "-x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*stopping after * failures*"])
    outcomes = result.parseoutcomes()
    assert 1 <= outcomes["failed"] <= 2  # the other worker's running test may finish


def test_warnings_reach_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_warn="""
        import warnings

        def test_warns():
            warnings.warn("careful now", UserWarning)
        """,
        test_other="def test_ok():\n    pass\n",
    )
    result = _run(pytester, "--pulsar-workers", "2")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*warnings summary*", "test_warn.py::test_warns", "*careful now*"])


def test_dirty_loop_and_timeouts_in_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_dirty="""
        import asyncio
        import pytest

        async def test_leaks():
            asyncio.get_running_loop().create_task(asyncio.sleep(10))

        @pytest.mark.timeout_async(0.2)
        async def test_hangs():
            await asyncio.sleep(10)
        """,
        test_other="def test_ok():\n    pass\n",
    )
    result = _run(pytester, "--pulsar-workers", "2")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random(
        ["*left the event loop dirty*", "*test_hangs timed out after 0.2 s*"]
    )


def test_collect_only_and_no_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**FILES)
    result = _run(pytester, "--pulsar-workers", "2", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert "[pulsar]" not in result.stdout.str()
    result = _run(pytester, "--pulsar-workers", "2", "-k", "nothing_matches")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pulsar-workers", "many"], "*--pulsar-workers: expected a number of workers*"),
        (["--pulsar-workers", "-1"], "*--pulsar-workers must be 0 (off) or more*"),
        (["--pulsar-workers", "2", "--pdb"], "*--pdb cannot be used with --pulsar-workers*"),
    ],
)
def test_bad_options(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = _run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_workers_zero_and_auto(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**FILES)
    result = _run(pytester, "--pulsar-workers", "0")
    assert "[pulsar]" not in result.stdout.str()
    result.assert_outcomes(passed=8, failed=2, skipped=1, xfailed=1)
    result = _run(pytester, "--pulsar-workers", "auto")
    result.assert_outcomes(passed=8, failed=2, skipped=1, xfailed=1)


def test_still_refuses_tests_pytest_asyncio_claims(pytester: pytest.Pytester) -> None:
    # the same stand-in for pytest-asyncio as test_plugin_compat.py uses
    pytester.makeconftest(
        """
        import pytest

        def pytest_addoption(parser):
            parser.addini("asyncio_mode", "fake pytest-asyncio", default="strict")
            parser.addoption("--asyncio-mode", dest="asyncio_mode", default=None)

        def pytest_configure(config):
            config.addinivalue_line("markers", "asyncio: fake pytest-asyncio mark")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_claimed():
            pass
        """
    )
    result = _run(pytester, "--pulsar-workers", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-asyncio claims these too*", "*test_claimed*"])
    result = _run(pytester, "--pulsar-workers", "2", "-o", "asyncio_mode=auto")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
