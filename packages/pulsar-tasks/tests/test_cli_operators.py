"""The operator's commands of ``pulsar-tasks`` (inspect, revoke, purge, retry, failed), run as
real processes against a real backend (every backend for the main path), with --json parsed
and the purge confirmation answered on a real terminal (pexpect)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pexpect
import pytest
import tq_helpers as h
import tq_jobs  # noqa: F401

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState
from pulsar.apps.tasks._cli import parse_when

ENV = {**os.environ, "PYTHONPATH": h.HERE}


cli = h.cli


def cli_json(*args: str) -> object:
    out = cli(*args, "--json")
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return json.loads(out.stdout)


def start_worker(url: str, lease: float = 1.5) -> subprocess.Popen:
    # a heartbeat every lease / 3 s (at most 5 s)
    return h.start_cli_worker(url, "--task-lease", str(lease), "--graceful-timeout", "3")


def test_operator_commands_against_a_running_worker(backend_url, tmp_path) -> None:
    url = backend_url
    flag = tmp_path / "fixed"
    worker = start_worker(url)
    try:
        with tasks.connect_sync(url) as c:
            bad = [c.queue_task("fails_until", [str(flag)]) for _ in range(2)]
            for t in bad:
                assert c.wait_for_task(t.id, timeout=30).status == TaskState.FAILURE
            slow = c.queue_task("sleeper", [30])
            # inspect: the worker shows the running task with its start time
            deadline = time.monotonic() + 15
            while True:
                workers = cli_json("inspect", "--backend", url)
                running = [r for w in workers for r in w["running"]]
                if any(r["id"] == slow.id for r in running):
                    break
                assert time.monotonic() < deadline, workers
                time.sleep(0.2)
            (w,) = workers
            assert w["pid"] != os.getpid() and w["concurrency"] >= 1 and "default" in w["queues"]
            (run,) = [r for r in running if r["id"] == slow.id]
            record = c.get_task(slow.id)
            assert run["name"] == "sleeper"
            assert run["started"] == pytest.approx(record.time_started, abs=0.01)
            assert 0 <= run["runtime"] < 30
            table = cli("inspect", "--backend", url)
            assert table.returncode == 0, table.stderr
            lines = table.stdout.splitlines()
            assert lines[0].split() == [
                "WORKER",
                "HOST",
                "PID",
                "QUEUES",
                "BUSY",
                "TASK",
                "JOB",
                "STARTED",
                "RUNTIME",
            ]
            assert any(slow.id in line and "sleeper" in line for line in lines[1:])

            # failed: the dead letters, with their errors
            dead = cli_json("failed", "--backend", url)
            assert {d["id"] for d in dead} == {t.id for t in bad}
            assert all("missing" in d["error"] and d["status"] == "FAILURE" for d in dead)
            assert {d["id"] for d in cli_json("failed", "--since", "1h", "--backend", url)} == {
                t.id for t in bad
            }
            future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
            assert cli_json("failed", "--since", future, "--backend", url) == []
            table = cli("failed", "--backend", url)
            assert table.stdout.splitlines()[0].split() == [
                "ID",
                "JOB",
                "QUEUE",
                "TRIES",
                "FINISHED",
                "ERROR",
            ]
            assert all(t.id in table.stdout for t in bad) and "ValueError: " in table.stdout

            # retry ID: the first failure runs again, now that its cause is fixed
            flag.write_text("ok")
            out = cli_json("retry", bad[0].id, "--backend", url)
            assert out == [{"id": bad[0].id, "requeued": True, "error": None}]
            done = c.wait_for_task(bad[0].id, timeout=30)
            assert done.status == TaskState.SUCCESS and done.result == "fixed"
            # a SUCCESS task and an unknown id are refused: exit 1, the others still done
            refused = cli("retry", bad[0].id, "nope", "--backend", url)
            assert refused.returncode == 1, refused.stderr
            assert "only FAILURE and REVOKED" in refused.stdout and "no such task" in refused.stdout
            # retry --failed: every remaining dead letter
            out = cli_json("retry", "--failed", "--backend", url)
            assert out == [{"id": bad[1].id, "requeued": True, "error": None}]
            assert c.wait_for_task(bad[1].id, timeout=30).status == TaskState.SUCCESS
            assert cli_json("failed", "--backend", url) == []
            assert cli_json("retry", "--failed", "--since", "10m", "--backend", url) == []

            # revoke: the running task is stopped; revoking it again is not done (exit 1)
            out = cli_json("revoke", slow.id, "--backend", url)
            assert out == [{"id": slow.id, "status": "STARTED", "done": True}]
            assert c.wait_for_task(slow.id, timeout=30).status == TaskState.REVOKED
            again = cli("revoke", slow.id, "nope", "--backend", url)
            assert again.returncode == 1
            assert "already REVOKED" in again.stdout and "not found" in again.stdout
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    # a stopped worker is gone from inspect
    assert cli_json("inspect", "--backend", url) == []
    table = cli("inspect", "--backend", url)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 1

    # purge (no worker now): --yes purges without asking; piped stdin is refused
    with tasks.connect_sync(url) as c:
        queued = [c.queue_task("add", [i, 1], queue="bulk") for i in range(3)]
        refused = cli("purge", "bulk", "--backend", url, stdin="y\n")
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert c.pending(["bulk"]) == 3
        assert cli_json("purge", "bulk", "--yes", "--backend", url) == {
            "queue": "bulk",
            "purged": 3,
        }
        assert c.pending(["bulk"]) == 0
        for t in queued:
            got = c.get_task(t.id)
            assert got.status == TaskState.REVOKED and got.error == "purged"
        out = cli("purge", "bulk", "--yes", "--backend", url)
        assert out.returncode == 0 and "purged 0 task(s)" in out.stdout


def test_a_killed_worker_leaves_inspect_at_once(tmp_path) -> None:
    """SIGKILL: the worker cannot remove its heartbeat, its monitor does (well before the
    record's 15 s expiry), and the replacement worker appears."""
    import signal

    url = f"sqlite:///{tmp_path}/t.db"
    worker = start_worker(url, lease=30)  # a heartbeat every 5 s, kept 15 s
    try:
        first = h.wait_for(lambda: cli_json("inspect", "--backend", url), timeout=30)
        (victim,) = first
        os.kill(victim["pid"], signal.SIGKILL)
        killed = time.monotonic()

        def replaced() -> object:
            workers = cli_json("inspect", "--backend", url)
            ids = [w["worker"] for w in workers]
            return victim["worker"] not in ids and workers

        (new,) = h.wait_for(replaced, timeout=30)
        assert time.monotonic() - killed < 10  # not the 15 s expiry
        assert new["pid"] != victim["pid"]
    finally:
        worker.terminate()
        worker.communicate(timeout=60)


def test_purge_asks_for_confirmation_on_a_terminal(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    with tasks.connect_sync(url) as c:
        ids = [c.queue_task("add", [i, 1]).id for i in range(2)]
    args = ["-m", "pulsar.apps.tasks", "purge", "default", "--backend", url]
    for answer, code in (("n", 1), ("", 1), ("y", 0)):
        child = pexpect.spawn(sys.executable, args, env=ENV, encoding="utf-8", timeout=30)
        child.expect(r"Purge 2 pending task\(s\) .* of queue 'default'\? .*\[y/N\] ")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == code, (answer, child.before)
        with tasks.connect_sync(url) as c:
            states = {c.get_task(i).status for i in ids}
        if code:
            assert "nothing purged" in child.before
            assert states == {TaskState.QUEUED}
        else:
            assert "purged 2 task(s) of queue 'default'" in child.before
            assert states == {TaskState.REVOKED}


def test_operator_commands_with_nothing_matching(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    headers = {
        "inspect": "WORKER HOST PID QUEUES BUSY TASK JOB STARTED RUNTIME",
        "failed": "ID JOB QUEUE TRIES FINISHED ERROR",
    }
    for command, header in headers.items():
        out = cli(command, "--backend", url)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        assert out.stdout.split() == header.split()
        assert cli_json(command, "--backend", url) == []
    out = cli("retry", "--failed", "--backend", url)
    assert out.returncode == 0 and out.stdout.split() == ["ID", "RESULT"], out.stderr
    assert cli_json("retry", "--failed", "--backend", url) == []
    out = cli("retry", "nope", "--backend", url, "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout) == [{"id": "nope", "requeued": False, "error": "no such task"}]
    out = cli("revoke", "nope", "--backend", url, "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout) == [{"id": "nope", "status": None, "done": False}]


def test_operator_usage_errors_exit_2_without_a_traceback(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    for args, message in (
        (["retry", "--backend", url], "task IDs or --failed"),
        (["retry", "x", "--failed", "--backend", url], "task IDs or --failed"),
        (["retry", "x", "--since", "1h", "--backend", url], "--since goes with --failed"),
        (["failed", "--since", "yesterday", "--backend", url], "is not a WHEN"),
        (["revoke", "--backend", url], "ID"),
        (["purge", "--backend", url], "QUEUE"),
        (["inspect", "--backend", "bogus://x"], "unknown task backend"),
    ):
        out = cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


def test_operator_help_explains_the_arguments() -> None:
    for command, words in {
        "inspect": ["--json", "heartbeat", "runtime", "--backend"],
        "revoke": ["ID", "--json", "lease renewal", "Exit 1"],
        "purge": ["QUEUE", "--yes", "REVOKED", "'purged'", "confirmation", "Running tasks"],
        "retry": ["ID", "--failed", "--since", "WHEN", "30m", "ISO", "UTC", "attempts"],
        "failed": ["--since", "WHEN", "--limit", "lost", "--json"],
    }.items():
        out = cli(command, "--help")
        assert out.returncode == 0, out.stderr
        for word in words:
            assert word in out.stdout, (command, word, out.stdout)
        assert "sqlite:///" in out.stdout


def test_when_syntax() -> None:
    now = 1_000_000.0
    assert parse_when("90s", now) == now - 90
    assert parse_when("30m", now) == now - 1800
    assert parse_when("1h30m", now) == now - 5400
    assert parse_when("2d", now) == now - 2 * 86400
    assert parse_when("1.5h", now) == now - 5400
    utc = dt.datetime(2026, 12, 3, 14, 0, tzinfo=dt.UTC).timestamp()
    assert parse_when("2026-12-03T14:00") == utc  # naive means UTC
    assert parse_when("2026-12-03T15:00+01:00") == utc
    assert parse_when("2026-12-03T14:00:00Z") == utc
    for bad in ("", "1y", "h", "yesterday", "-1h"):
        with pytest.raises(ValueError, match="not a WHEN"):
            parse_when(bad, now)
