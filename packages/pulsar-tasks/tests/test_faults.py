"""Faults with real processes: SIGKILLed workers, poison tasks, an arbiter killed and restarted,
Redis restarted, two schedulers. Short leases set by each test."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import psutil
import pytest
import tq_helpers as h

from pulsar.apps import tasks
from pulsar.apps.tasks import TaskState

BASE = ["--modules", "tq_jobs", "--heartbeat", "1", "--timeout", "10", "--graceful-timeout", "5"]


def app(url: str, *args: str, env: dict[str, str] | None = None) -> h.Run:
    return h.Run("tq_app.py", *BASE, "--backend", url, *args, env=env)


def stop(run: h.Run) -> None:
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err[-3000:]


def test_worker_sigkilled_with_20_in_flight_loses_nothing(backend_url, tmp_path) -> None:
    marks = str(tmp_path / "marks")
    run = app(
        backend_url,
        "--workers",
        "2",
        "--concurrent-tasks",
        "10",
        "--task-lease",
        "1",
        env={"TQ_MARKS": marks},
    )
    ready = run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        ids = [c.queue_task("sleeper", [1.5, str(i)]).id for i in range(20)]
        h.wait_for(lambda: len(c.list_tasks(status="STARTED")) == 20, timeout=10)
        victim = ready["workers"][0]
        os.kill(victim, signal.SIGKILL)
        results = [c.wait_for_task(i, timeout=30) for i in ids]
    assert all(r.status == TaskState.SUCCESS for r in results), [r.error for r in results]
    assert sorted(r.result for r in results) == sorted(str(i) for i in range(20))
    redelivered = [r for r in results if r.attempts == 2]
    assert 1 <= len(redelivered) <= 10  # the dead worker's tasks ran again elsewhere
    assert all(r.worker != str(victim) for r in redelivered)
    stop(run)


def test_poison_task_fails_after_max_retries_others_drain(backend_url, tmp_path) -> None:
    marks = str(tmp_path / "marks")
    run = app(backend_url, "--workers", "2", "--task-lease", "0.6", env={"TQ_MARKS": marks})
    run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        p = c.queue_task("poison")
        ids = [c.queue_task("sleeper", [0.05, str(i)]).id for i in range(10)]
        bad = c.wait_for_task(p.id, timeout=40)
        good = [c.wait_for_task(i, timeout=30) for i in ids]
    assert bad.status == TaskState.FAILURE and bad.error.startswith("lost"), bad.error
    assert bad.attempts == 3 and h.marks(marks, "poison") == ["poison"] * 3  # 1 + max_retries
    assert all(r.status == TaskState.SUCCESS for r in good)
    stop(run)


def test_every_worker_sigkilled_tasks_done_within_2s_of_the_restart(backend_url) -> None:
    """At the default 30 s lease: the monitor reaps the dead workers and the TaskQueue releases
    their leases at once, so the replacements finish everything within 2 s of starting."""
    run = app(backend_url, "--workers", "2", "--concurrent-tasks", "10")
    ready = run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        ids = [c.queue_task("sleeper", [0.3, str(i)]).id for i in range(20)]
        h.wait_for(lambda: len(c.list_tasks(status="STARTED")) == 20, timeout=10)
        killed_at = time.time()
        for pid in ready["workers"]:
            os.kill(pid, signal.SIGKILL)
        results = [c.wait_for_task(i, timeout=20) for i in ids]  # well before 30 s
    assert all(r.status == TaskState.SUCCESS for r in results), [r.error for r in results]
    assert all(r.attempts == 2 for r in results)
    replacements = [
        p for p in psutil.Process(ready["arbiter"]).children() if p.create_time() >= killed_at - 1
    ]
    assert replacements, "no replacement worker found"
    started = min(p.create_time() for p in replacements)
    last = max(r.time_finished for r in results)
    assert last - started <= 2.0, f"done {last - started:.2f}s after the replacement started"
    stop(run)


def test_two_poison_tasks_end_lost_and_the_service_keeps_serving(backend_url, tmp_path) -> None:
    """Two tasks that SIGKILL their worker (3 runs each) at default settings: each ends FAILURE
    'lost' after 1 + max_retries runs, the other tasks are served, the arbiter keeps running."""
    marks = str(tmp_path / "marks")
    # one task at a time per worker: each run of a poison task is one kill (6 in all)
    run = app(backend_url, "--workers", "2", "--concurrent-tasks", "1", env={"TQ_MARKS": marks})
    run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        bad = [c.queue_task("poison").id for _ in range(2)]
        ids = [c.queue_task("sleeper", [0.05, str(i)]).id for i in range(10)]
        lost = [c.wait_for_task(i, timeout=40) for i in bad]
        good = [c.wait_for_task(i, timeout=30) for i in ids]
        after = c.wait_for_task(c.queue_task("add", [1, 2]).id, timeout=20)
    assert all(t.status == TaskState.FAILURE and t.error.startswith("lost") for t in lost)
    assert [t.attempts for t in lost] == [3, 3] and len(h.marks(marks, "poison")) == 6
    assert all(r.status == TaskState.SUCCESS for r in good)
    assert after.result == 3 and run.proc.poll() is None
    stop(run)


def test_arbiter_killed_and_restarted_queued_tasks_survive(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/tasks.db"
    marks = str(tmp_path / "marks")
    run = app(
        url,
        "--workers",
        "1",
        "--task-lease",
        "1",
        "--concurrent-tasks",
        "2",
        env={"TQ_MARKS": marks},
    )
    run.wait_ready()
    with tasks.connect_sync(url) as c:
        ids = [c.queue_task("sleeper", [0.3, str(i)]).id for i in range(8)]
        h.wait_for(lambda: len(h.marks(marks)) >= 1, timeout=10)
        run.kill()  # SIGKILL the arbiter and its workers: nothing graceful
        left = [t for t in c.list_tasks() if t.status != TaskState.SUCCESS]
        assert left, "everything finished before the kill: the test proves nothing"
        run2 = app(
            url,
            "--workers",
            "1",
            "--task-lease",
            "1",
            "--concurrent-tasks",
            "2",
            env={"TQ_MARKS": marks},
        )
        run2.wait_ready()
        results = [c.wait_for_task(i, timeout=30) for i in ids]
    assert all(r.status == TaskState.SUCCESS for r in results)
    stop(run2)


def test_graceful_stop_finishes_in_flight(backend_url) -> None:
    run = app(backend_url, "--workers", "1")
    run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        t = c.queue_task("sleeper", [0.5, "g"])
        h.wait_for(lambda: c.get_task(t.id).status == TaskState.STARTED, timeout=10)
        stop(run)
        assert c.get_task(t.id).status == TaskState.SUCCESS


def test_info_shows_task_counters(backend_url) -> None:
    run = app(backend_url, "--workers", "1")
    run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        for i in range(3):
            c.wait_for_task(c.queue_task("add", [i, i]).id, timeout=10)
        c.wait_for_task(c.queue_task("boom", ["x"]).id, timeout=10)
    stop(run)
    # the counters are checked in-process by the consumer tests; here: info carries them
    # (READY waits for "tasks" in every worker's info)


def test_two_taskqueue_apps_schedule_each_periodic_run_once(backend_url, tmp_path) -> None:
    marks = str(tmp_path / "marks")
    run = h.Run(
        "tq_app.py",
        "--apps",
        "2",
        "--a-modules",
        "tq_jobs",
        "--b-modules",
        "tq_jobs",
        "--a-backend",
        backend_url,
        "--b-backend",
        backend_url,
        "--a-workers",
        "1",
        "--b-workers",
        "1",
        env={"TQ_MARKS": marks},
    )
    run.wait_ready()
    with tasks.connect_sync(backend_url) as c:
        h.wait_for(lambda: len(c.list_tasks(status="SUCCESS")) >= 3, timeout=15)
        ticks = [t for t in c.list_tasks(limit=1000) if t.name == "tick"]
    stop(run)
    ids = [t.id for t in ticks]
    assert len(ids) == len(set(ids))
    dues = sorted(t.eta for t in ticks)
    assert all(b - a == pytest.approx(1.0) for a, b in itertools.pairwise(dues))
    runs = h.marks(marks, "tick")
    assert len(runs) == len([t for t in ticks if t.status == TaskState.SUCCESS])


def test_redis_restarted_mid_run(tmp_path) -> None:
    import shutil
    import socket
    import subprocess

    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            raise AssertionError("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def start_redis() -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
                "--bind",
                "127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        h.wait_for(up, timeout=10)
        return proc

    redis_proc = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    run = None
    try:
        run = app(url, "--workers", "2", "--task-lease", "1")
        run.wait_ready()
        with tasks.connect_sync(url) as c:
            first = [c.queue_task("add", [i, 1]).id for i in range(5)]
            assert [c.wait_for_task(i, timeout=10).result for i in first] == [1, 2, 3, 4, 5]
            # Redis goes away (a restart without persistence: its data is gone); tasks queued
            # during the outage wait in the client's retries, workers reconnect afterwards
            redis_proc.kill()
            redis_proc.wait()
            after: list[str] = []

            def produce() -> None:
                import tq_jobs  # noqa: F401  (the producer knows the jobs: no backend lookup)

                with tasks.connect_sync(url) as c2:
                    after.extend(c2.queue_task("add", [i, 10]).id for i in range(5))

            producer = threading.Thread(target=produce)
            producer.start()
            time.sleep(0.5)
            redis_proc = start_redis()
            producer.join(15)
            assert len(after) == 5
            results = [c.wait_for_task(i, timeout=20) for i in after]
        assert [r.result for r in results] == [10, 11, 12, 13, 14]
        assert psutil.pid_exists(run.proc.pid) and run.proc.poll() is None
        stop(run)
    finally:
        if run is not None and run.proc.poll() is None:
            run.kill()
        redis_proc.kill()
        redis_proc.wait()
