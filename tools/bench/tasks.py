"""Task queues: pulsar-tasks (Redis, SQLite, PostgreSQL) vs Celery, RQ, Dramatiq, arq, Huey and
Procrastinate.

    hatch run bench tasks [--n 20000] [--latency 500] [--reliability 200]
                          [--backlog 20000] [--backlog-small 2000]
                          [--peers celery,rq,dramatiq,arq,huey,procrastinate]
                          [--pulsar redis,sqlite,postgres] [--budget 3600]
                          [--chains 1000] [--chords 20] [--workflows-only] [--baseline REV]

Every system runs 2 worker processes on the local Redis (database 14, flushed before each run;
nothing else is touched); pulsar-tasks also runs on SQLite, and pulsar-tasks (postgres) and
Procrastinate, its PostgreSQL peer, on the local PostgreSQL (127.0.0.1:5432, user postgres,
trust auth) in a database of their own, ``pulsar_bench``, created afresh before each run and
dropped at the end. Peers are installed in a separate virtual environment
(tools/bench/.venv-peers), never in the workspace environment.

(a) throughput: N no-op tasks queued (workers running), time until all are done;
(b) latency: sequential queue-and-wait round trips, p50/p99;
(c) reliability: tasks of 50 ms, every worker SIGKILLed midway and restarted; each run of a
    task appends its id to a file: completed once / duplicated / lost, and the seconds from the
    restart (the workers launched again) until every task has run;
(d) backlog: B no-op tasks queued with no worker running, then the workers started; the drain
    rate is B over the time from the first task done to the last (worker boot excluded), at
    ``--backlog`` (20,000) and ``--backlog-small`` (2,000) queued tasks;
(e) workflows (pulsar-tasks on Redis and Celery's canvas, same Redis, same 2 workers):
    ``--chains`` chains of 3 no-op steps, then ``--chords`` chords of 100 no-op members and a
    sum callback, queued at once (50 in flight), each waited for: workflows done per second,
    and pulsar-tasks' ratio to Celery (``--workflows-only`` runs this cell alone).

``--baseline REV`` also runs pulsar-tasks as it was at git revision REV (its packages exported
and installed into ``tools/bench/.venv-baseline-<sha>``, see ``_common.baseline_python``) on the
same backends, as ``pulsar-tasks@<sha> (backend)`` in the same run, with one target per backend
and cell: today's throughput and drain over the baseline's >= 1.0, p50 <= 1.0.

Every system runs at its defaults, 2 worker processes each, a Redis result backend where
results are optional: Celery ``-c 2`` (prefork); Dramatiq ``--processes 2`` (its default 8
threads) with the Results middleware; arq (its defaults); Huey ``RedisHuey(notify_result=True)``
with ``-k process -w 2``; Procrastinate (its defaults: one job at a time per worker,
LISTEN/NOTIFY on; it keeps no results, so its drivers read the job's status: a 0.5 ms poll for
the round trip, the count of succeeded jobs for the drain; a dead worker's jobs stay ``doing``
until someone retries stalled jobs, which its defaults do not); pulsar-tasks at its defaults
(10 concurrent tasks per worker, the 30 s lease: a dead worker's tasks come back when its
monitor reaps it). Huey stores no None result, so its no-op returns 1. Every process started
is ended by its PID (its process group) and the whole run has a time budget (``--budget``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    Deadline,
    Latency,
    PeerEnv,
    Target,
    baseline_python,
    machine_info,
    managed_process,
    ratio,
    render_table,
)

REDIS_DB = 14  # dedicated to this benchmark: flushed before and after each system

PEER_REQUIREMENTS = {
    "celery": "celery[redis]>=5.3,<5.6",  # 5.6.3: chains of 3 hang on .get() here (2026-12-04)
    "rq": "rq>=1.16",
    "dramatiq": "dramatiq[redis]>=1.16",
    "arq": "arq>=0.26",
    "huey": "huey>=3.0",
}
REDIS = f"redis://127.0.0.1:6379/{REDIS_DB}"
PG_DB = "pulsar_bench"  # dedicated to this benchmark: created afresh for each run, then dropped
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
PEER_REQUIREMENTS["procrastinate"] = "procrastinate>=3.0"

PROCRASTINATE_JOBS = """
import asyncio, os
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo="%s"))

@app.task(name="noop")
async def noop():
    return None

@app.task(name="work")
async def work(i):
    await asyncio.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")
""".replace("%s", POSTGRES)

PULSAR_JOBS = """
import asyncio, os
from pulsar.apps import tasks

@tasks.job()
async def noop():
    return None

@tasks.job()
async def work(i):
    await asyncio.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")

@tasks.job()
async def step(prev=None):
    return 1

@tasks.job()
async def tsum(values):
    return sum(values)
"""

RQ_JOBS = """
import os, time

def noop():
    return None

def work(i):
    time.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")
"""

ARQ_JOBS = """
import asyncio, os
from arq.connections import RedisSettings

async def noop(ctx):
    return None

async def work(ctx, i):
    await asyncio.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")

class WorkerSettings:
    functions = [noop, work]
    redis_settings = RedisSettings(database=%d)
""".replace("%d", str(REDIS_DB))

HUEY_JOBS = """
import os, time
from huey import RedisHuey

huey = RedisHuey("bench", url="redis://127.0.0.1:6379/%d", notify_result=True)

@huey.task()
def noop():
    return 1  # huey stores no None result

@huey.task()
def work(i):
    time.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")
""".replace("%d", str(REDIS_DB))

CELERY_JOBS = """
import os, time
from celery import Celery

URL = "redis://127.0.0.1:6379/%d"
app = Celery("bench_jobs", broker=URL, backend=URL)
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)

@app.task
def noop():
    return None

@app.task
def work(i):
    time.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")

@app.task
def step(prev=None):
    return 1

@app.task
def tsum(values):
    return sum(values)
""".replace("%d", str(REDIS_DB))

DRAMATIQ_JOBS = """
import os, time
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = "redis://127.0.0.1:6379/%d"
broker = RedisBroker(url=URL)
results = RedisBackend(url=URL)
broker.add_middleware(Results(backend=results))
dramatiq.set_broker(broker)

@dramatiq.actor(store_results=True)
def noop():
    return None

@dramatiq.actor
def work(i):
    time.sleep(0.05)
    with open(os.environ["BENCH_RUNS"], "a") as f:
        f.write(f"{i}\\n")
""".replace("%d", str(REDIS_DB))

# driver scripts: run by the system's own Python, print one JSON line
PULSAR_DRIVER = """
import asyncio, collections, json, sys, time
sys.path.insert(0, sys.argv[1])
import bench_jobs
from pulsar.apps import tasks
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    c = tasks.connect(url)
    if mode in ("throughput", "backlog"):
        t0 = time.perf_counter()
        ids = []
        for k in range(0, n, 50):
            ids += [t.id for t in await asyncio.gather(
                *(c.queue_task("noop") for _ in range(min(50, n - k))))]
        if mode == "backlog":  # queued: the bench starts the workers now
            print("QUEUED", flush=True)
            sys.stdin.readline()
        first = None
        # the oldest 50 read at a time, those not done yet kept in front: O(50) per read (a
        # list rebuilt per read cost O(n) each, ~0.5 s of this driver's CPU at 20k)
        pending = collections.deque(ids)
        while pending:
            head = [pending.popleft() for _ in range(min(50, len(pending)))]
            got = await asyncio.gather(*(c.get_task(i) for i in head))
            done = {t.id for t in got if t is not None and t.done}
            if done and first is None:
                first = time.perf_counter()
            if not done:
                await asyncio.sleep(0.01)
            pending.extendleft(reversed([i for i in head if i not in done]))
        end = time.perf_counter()
        print(json.dumps({"seconds": end - t0, "drain": end - (first or t0)}))
    elif mode in ("chains", "chords"):
        from pulsar.apps.tasks import chain, chord
        s = bench_jobs.step.s
        def flow():
            if mode == "chains":
                return chain(s(), s(), s())
            return chord([s() for _ in range(100)], bench_jobs.tsum.s())
        want = 1 if mode == "chains" else 100  # the last step's result, or the sum
        t0 = time.perf_counter()
        async def one():
            record = await c.queue_workflow(flow())
            done = await c.wait_for_task(record.id, timeout=600)
            assert done.result == want, (done.status, done.error)
        for k in range(0, n, 50):
            await asyncio.gather(*(one() for _ in range(min(50, n - k))))
        print(json.dumps({"seconds": time.perf_counter() - t0}))
    elif mode == "latency":
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            t = await c.queue_task("noop")
            await c.wait_for_task(t.id, timeout=30)
            out.append(time.perf_counter_ns() - t0)
        print(json.dumps({"samples": out}))
    else:
        for i in range(n):
            await c.queue_task("work", [i])
        print(json.dumps({}))
    await c.close()
asyncio.run(main())
"""

RQ_DRIVER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from redis import Redis
from rq import Queue
import bench_jobs
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
r = Redis.from_url(url)
q = Queue("bench", connection=r)
if mode in ("throughput", "backlog"):
    t0 = time.perf_counter()
    jobs = [q.enqueue(bench_jobs.noop) for _ in range(n)]
    if mode == "backlog":
        print("QUEUED", flush=True)
        sys.stdin.readline()
    reg = q.finished_job_registry
    first = None
    while True:
        count = reg.count
        if count and first is None:
            first = time.perf_counter()
        if count >= n:
            break
        time.sleep(0.005)
    end = time.perf_counter()
    print(json.dumps({"seconds": end - t0, "drain": end - (first or t0)}))
elif mode == "latency":
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        job = q.enqueue(bench_jobs.noop)
        job.latest_result(timeout=30)
        out.append(time.perf_counter_ns() - t0)
    print(json.dumps({"samples": out}))
else:
    for i in range(n):
        q.enqueue(bench_jobs.work, i)
    print(json.dumps({}))
"""

ARQ_DRIVER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from arq import create_pool
from arq.connections import RedisSettings
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    pool = await create_pool(RedisSettings(database=%d))
    if mode in ("throughput", "backlog"):
        t0 = time.perf_counter()
        jobs = [await pool.enqueue_job("noop") for _ in range(n)]
        if mode == "backlog":
            print("QUEUED", flush=True)
            sys.stdin.readline()
        await jobs[0].result(timeout=600, poll_delay=0.001)  # arq runs them in order
        first = time.perf_counter()
        for j in jobs:
            await j.result(timeout=600, poll_delay=0.01)
        end = time.perf_counter()
        print(json.dumps({"seconds": end - t0, "drain": end - first}))
    elif mode == "latency":
        out = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            j = await pool.enqueue_job("noop")
            await j.result(timeout=30, poll_delay=0.001)
            out.append(time.perf_counter_ns() - t0)
        print(json.dumps({"samples": out}))
    else:
        for i in range(n):
            await pool.enqueue_job("work", i)
        print(json.dumps({}))
    await pool.aclose()
asyncio.run(main())
""".replace("%d", str(REDIS_DB))


CELERY_DRIVER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from redis import Redis
import bench_jobs
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
r = Redis.from_url(url)
if mode in ("throughput", "backlog"):
    t0 = time.perf_counter()
    keys = ["celery-task-meta-" + bench_jobs.noop.delay().id for _ in range(n)]
    if mode == "backlog":
        print("QUEUED", flush=True)
        sys.stdin.readline()
    first = None
    while keys:
        found = []
        for k in range(0, len(keys), 1000):
            found += r.mget(keys[k : k + 1000])
        left = [key for key, v in zip(keys, found) if v is None]
        if len(left) < len(keys) and first is None:
            first = time.perf_counter()
        keys = left
        if keys:
            time.sleep(0.01)
    end = time.perf_counter()
    print(json.dumps({"seconds": end - t0, "drain": end - (first or t0)}))
elif mode in ("chains", "chords"):
    from celery import chain, chord
    s = bench_jobs.step.s
    want = 1 if mode == "chains" else 100  # the last step's result, or the sum
    t0 = time.perf_counter()
    for k in range(0, n, 50):  # 50 in flight, as the pulsar-tasks driver
        if mode == "chains":
            results = [chain(s(), s(), s()).delay() for _ in range(min(50, n - k))]
        else:
            results = [chord([s() for _ in range(100)])(bench_jobs.tsum.s())
                       for _ in range(min(50, n - k))]
        for res in results:
            value = res.get(timeout=600)
            assert value == want, value
    print(json.dumps({"seconds": time.perf_counter() - t0}))
elif mode == "latency":
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        bench_jobs.noop.delay().get(timeout=30)
        out.append(time.perf_counter_ns() - t0)
    print(json.dumps({"samples": out}))
else:
    for i in range(n):
        bench_jobs.work.delay(i)
    print(json.dumps({}))
"""

DRAMATIQ_DRIVER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from redis import Redis
import bench_jobs
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
r = Redis.from_url(url)
if mode in ("throughput", "backlog"):
    t0 = time.perf_counter()
    msgs = [bench_jobs.noop.send() for _ in range(n)]
    keys = [bench_jobs.results.build_message_key(m) for m in msgs]
    if mode == "backlog":
        print("QUEUED", flush=True)
        sys.stdin.readline()
    first = None
    while keys:
        found = []
        for k in range(0, len(keys), 1000):
            pipe = r.pipeline(transaction=False)
            for key in keys[k : k + 1000]:
                pipe.exists(key)
            found += pipe.execute()
        left = [key for key, v in zip(keys, found) if not v]
        if len(left) < len(keys) and first is None:
            first = time.perf_counter()
        keys = left
        if keys:
            time.sleep(0.01)
    end = time.perf_counter()
    print(json.dumps({"seconds": end - t0, "drain": end - (first or t0)}))
elif mode == "latency":
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        bench_jobs.noop.send().get_result(block=True, timeout=30000)
        out.append(time.perf_counter_ns() - t0)
    print(json.dumps({"samples": out}))
else:
    for i in range(n):
        bench_jobs.work.send(i)
    print(json.dumps({}))
"""

HUEY_DRIVER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import bench_jobs
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
huey = bench_jobs.huey
if mode in ("throughput", "backlog"):
    t0 = time.perf_counter()
    results = [bench_jobs.noop() for _ in range(n)]
    if mode == "backlog":
        print("QUEUED", flush=True)
        sys.stdin.readline()
    first = None
    while True:
        count = huey.storage.result_store_size()
        if count and first is None:
            first = time.perf_counter()
        if count >= n:
            break
        time.sleep(0.01)
    end = time.perf_counter()
    print(json.dumps({"seconds": end - t0, "drain": end - (first or t0)}))
elif mode == "latency":
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        bench_jobs.noop().get(blocking=True, timeout=30)
        out.append(time.perf_counter_ns() - t0)
    print(json.dumps({"samples": out}))
else:
    for i in range(n):
        bench_jobs.work(i)
    print(json.dumps({}))
"""


PROCRASTINATE_DRIVER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import bench_jobs
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
app = bench_jobs.app
DONE = "SELECT count(*) AS c FROM procrastinate_jobs WHERE status = 'succeeded'"

async def main():
    async with app.open_async():
        q = app.connector.execute_query_one_async
        if mode in ("throughput", "backlog"):
            t0 = time.perf_counter()
            for k in range(0, n, 1000):
                await bench_jobs.noop.batch_defer_async(*[{} for _ in range(min(1000, n - k))])
            if mode == "backlog":  # queued: the bench starts the workers now
                print("QUEUED", flush=True)
                sys.stdin.readline()
            first = None
            while True:
                count = (await q(DONE))["c"]
                if count and first is None:
                    first = time.perf_counter()
                if count >= n:
                    break
                await asyncio.sleep(0.005)
            end = time.perf_counter()
            print(json.dumps({"seconds": end - t0, "drain": end - (first or t0)}))
        elif mode == "latency":
            out = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                job_id = await bench_jobs.noop.defer_async()
                while (await q("SELECT status FROM procrastinate_jobs WHERE id = %(id)s",
                               id=job_id))["status"] != "succeeded":
                    await asyncio.sleep(0.0005)
                out.append(time.perf_counter_ns() - t0)
            print(json.dumps({"samples": out}))
        else:
            for i in range(n):
                await bench_jobs.work.defer_async(i=i)
            print(json.dumps({}))
asyncio.run(main())
"""


BUDGET = Deadline(3600.0)


class System:
    """One queue under test: how to start its 2 workers and drive it."""

    def __init__(self, name: str, python: str, jobs: str, driver: str, url: str) -> None:
        self.name, self.python, self.jobs_src, self.driver_src, self.url = (
            name,
            python,
            jobs,
            driver,
            url,
        )

    def prepare(self, tmp: Path) -> None:
        self.dir = tmp / self.name.replace(" ", "_").replace("(", "").replace(")", "")
        self.dir.mkdir()
        (self.dir / "bench_jobs.py").write_text(textwrap.dedent(self.jobs_src))
        (self.dir / "driver.py").write_text(textwrap.dedent(self.driver_src))

    def worker_cmds(self) -> list[list[str]]:
        raise NotImplementedError

    def drive(self, mode: str, n: int, env: dict[str, str]) -> dict[str, Any]:
        BUDGET.check(f"{self.name} {mode}")
        out = subprocess.run(
            [self.python, str(self.dir / "driver.py"), str(self.dir), self.url, mode, str(n)],
            capture_output=True,
            text=True,
            timeout=max(1.0, min(900.0, BUDGET.remaining())),
            env=env,
            cwd=self.dir,
        )
        if out.returncode:
            raise BenchError(f"{self.name} driver failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def drive_backlog(self, n: int, env: dict[str, str], start: Any) -> dict[str, Any]:
        """Queue ``n`` no-op tasks with no worker running, then ``start()`` the workers and
        let the driver time the drain; returns the driver's JSON and ``start()``'s value."""
        BUDGET.check(f"{self.name} backlog")
        cmd = [self.python, str(self.dir / "driver.py"), str(self.dir), self.url, "backlog"]
        with managed_process(
            [*cmd, str(n)],
            cwd=self.dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            grace=1.0,
        ) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline()
            if not line.startswith("QUEUED"):
                raise BenchError(f"{self.name} backlog driver: {proc.stderr.read()[-2000:]}")
            started = start()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=max(1.0, min(900.0, BUDGET.remaining())))
            if proc.returncode:
                raise BenchError(f"{self.name} backlog driver failed: {err[-2000:]}")
        return {**json.loads(out.strip().splitlines()[-1]), "started": started}


class Pulsar(System):
    def worker_cmds(self) -> list[list[str]]:
        return [
            [
                self.python,
                "-m",
                "pulsar.apps.tasks",
                "worker",
                "--backend",
                self.url,
                "--modules",
                "bench_jobs",
                "--workers",
                "2",
            ]
        ]


class Rq(System):
    def worker_cmds(self) -> list[list[str]]:
        rq = str(Path(self.python).parent / "rq")
        return [[rq, "worker", "-q", "--url", self.url, "bench"] for _ in range(2)]


class Celery(System):
    def worker_cmds(self) -> list[list[str]]:
        celery = str(Path(self.python).parent / "celery")
        opts = ["-c", "2", "-P", "prefork", "-l", "WARNING", "--without-gossip", "--without-mingle"]
        return [[celery, "-A", "bench_jobs", "worker", *opts, "--without-heartbeat"]]


class Dramatiq(System):
    def worker_cmds(self) -> list[list[str]]:
        dramatiq = str(Path(self.python).parent / "dramatiq")
        return [[dramatiq, "bench_jobs", "--processes", "2"]]


class Huey(System):
    def worker_cmds(self) -> list[list[str]]:
        consumer = str(Path(self.python).parent / "huey_consumer")
        return [[consumer, "bench_jobs.huey", "-k", "process", "-w", "2", "-q"]]


class Arq(System):
    def worker_cmds(self) -> list[list[str]]:
        arq = str(Path(self.python).parent / "arq")
        return [[arq, "bench_jobs.WorkerSettings"] for _ in range(2)]


class Procrastinate(System):
    def worker_cmds(self) -> list[list[str]]:
        exe = str(Path(self.python).parent / "procrastinate")
        return [[exe, "--app=bench_jobs.app", "worker"] for _ in range(2)]

    def apply_schema(self) -> None:
        exe = str(Path(self.python).parent / "procrastinate")
        out = subprocess.run(
            [exe, "--app=bench_jobs.app", "schema", "--apply"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.dir,
            env={**os.environ, "PYTHONPATH": str(self.dir)},
        )
        if out.returncode:
            raise BenchError(f"procrastinate schema --apply failed: {out.stderr[-2000:]}")


def flush() -> None:
    import redis

    redis.Redis(db=REDIS_DB).flushdb()


def recreate_pg_database(drop_only: bool = False) -> None:
    """The benchmark's own PostgreSQL database, empty (or gone with ``drop_only``)."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            if not drop_only:
                conn.execute(f"CREATE DATABASE {PG_DB}")
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL on 127.0.0.1:5432: {exc}") from None


def start_workers(system: System, env: dict[str, str], settle: float = 2.0) -> list[Any]:
    ctxs = [
        managed_process(
            cmd,
            cwd=system.dir,
            env={**env, "PYTHONPATH": str(system.dir)},
            stderr=subprocess.DEVNULL,
            grace=3.0,
        )
        for cmd in system.worker_cmds()
    ]
    procs = [c.__enter__() for c in ctxs]
    time.sleep(settle)  # let the workers connect
    return list(zip(ctxs, procs, strict=True))


def stop_workers(running: list[Any]) -> None:
    for ctx, _ in running:
        ctx.__exit__(None, None, None)


def kill_workers(running: list[Any]) -> None:
    import psutil

    for _, proc in running:
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def reset(system: System, tmp: Path) -> None:
    flush()
    if system.url.startswith("sqlite"):
        for f in tmp.glob("pulsar.db*"):
            f.unlink()
    if system.url.startswith("postgresql"):
        recreate_pg_database()
        if isinstance(system, Procrastinate):
            system.apply_schema()


def bench(system: System, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    env = dict(os.environ)
    row: dict[str, Any] = {}
    reset(system, tmp)
    running = start_workers(system, env)
    try:
        res = system.drive("throughput", args.n, env)
        row["throughput"] = args.n / res["seconds"]
        res = system.drive("latency", args.latency, env)
        row["latency"] = Latency.from_ns(res["samples"])
    finally:
        stop_workers(running)
    # backlog: queued first, then the workers started; drain from the first task done
    for size, key in ((args.backlog, "backlog"), (args.backlog_small, "backlog_small")):
        if not size:
            continue
        reset(system, tmp)
        started: list[Any] = []
        try:
            res = system.drive_backlog(
                size,
                env,
                lambda started=started: started.extend(start_workers(system, env, settle=0.0)),
            )
        finally:
            stop_workers(started)
        row[key] = size / res["drain"]
    # reliability: queue, start workers, SIGKILL them all midway, restart, wait
    reset(system, tmp)
    runs = tmp / f"runs-{system.dir.name}"
    runs.write_text("")
    env["BENCH_RUNS"] = str(runs)
    system.drive("reliability", args.reliability, env)
    running = start_workers(system, env)
    try:
        deadline = time.monotonic() + 30
        while len(runs.read_text().split()) < args.reliability // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        kill_workers(running)  # SIGKILL: every worker and its children, by PID
    finally:
        stop_workers(running)
    restarted = time.monotonic()
    running = start_workers(system, env, settle=0.0)
    row["restart"] = None
    try:
        deadline = time.monotonic() + min(args.settle, BUDGET.remaining())
        while time.monotonic() < deadline:
            if len(set(runs.read_text().split())) >= args.reliability:
                row["restart"] = time.monotonic() - restarted  # launch to the last task done
                break
            time.sleep(0.01)
        time.sleep(1.0)
    finally:
        stop_workers(running)
    seen = runs.read_text().split()
    counts = {i: seen.count(str(i)) for i in range(args.reliability)}
    row["once"] = sum(1 for c in counts.values() if c == 1)
    row["dup"] = sum(1 for c in counts.values() if c > 1)
    row["lost"] = sum(1 for c in counts.values() if c == 0)
    return row


def bench_workflows(system: System, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """(e): chains of 3 and chords of 100 per second, 50 in flight, each waited for."""
    env = dict(os.environ)
    row: dict[str, Any] = {}
    reset(system, tmp)
    running = start_workers(system, env)
    try:
        if args.chains:
            row["chains"] = args.chains / system.drive("chains", args.chains, env)["seconds"]
        if args.chords:
            row["chords"] = args.chords / system.drive("chords", args.chords, env)["seconds"]
    finally:
        stop_workers(running)
    return row


def print_workflows(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    """The table of (e): workflows per second and pulsar-tasks' ratio to Celery's canvas."""
    celery = results.get("celery", {})
    rows = []
    for name, r in results.items():
        row = [name]
        for key in ("chains", "chords"):
            value = r.get(key)
            row.append(f"{value:,.1f}/s" if value else "-")
            row.append(ratio(value, celery[key]) if value and celery.get(key) else "-")
        rows.append(row)
    print(
        f"(e) {args.chains} chains of 3 no-op steps, {args.chords} chords of 100 no-op members "
        f"+ a sum callback, 50 in flight, on Redis; 2 workers each, defaults"
    )
    headers = ["system", "chains of 3", "vs celery", "chords of 100", "vs celery"]
    print(render_table(headers, rows, markdown=args.markdown))


def main(argv: list[str]) -> int:
    """Run the benchmark; prints a table (``--markdown`` for the README)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--latency", type=int, default=500)
    parser.add_argument("--reliability", type=int, default=200)
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds to wait for redeliveries after the restart",
    )
    parser.add_argument("--backlog", type=int, default=20000, help="(d): tasks queued first")
    parser.add_argument("--backlog-small", type=int, default=2000, help="(d) at a small backlog")
    parser.add_argument("--peers", default="celery,rq,dramatiq,arq,huey,procrastinate")
    parser.add_argument(
        "--pulsar", default="redis,sqlite,postgres", help="pulsar-tasks backends to run"
    )
    parser.add_argument(
        "--budget", type=float, default=3600.0, help="seconds for the whole run (then it stops)"
    )
    parser.add_argument("--chains", type=int, default=1000, help="(e): chains of 3 steps")
    parser.add_argument("--chords", type=int, default=20, help="(e): chords of 100 members")
    parser.add_argument(
        "--workflows-only", action="store_true", help="run (e) alone (pulsar on Redis, Celery)"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REV",
        help="also run pulsar-tasks as it was at git revision REV (same backends), as "
        "'pulsar-tasks@<sha> (backend)': today's cells over its must be >= 1.0",
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    global BUDGET
    BUDGET = Deadline(args.budget)
    flush()
    tmp = Path(tempfile.mkdtemp(prefix="pulsar-bench-tasks-"))
    backends = {
        "redis": REDIS,
        "sqlite": f"sqlite:///{tmp}/pulsar.db",
        "postgres": POSTGRES,
    }
    systems: list[System] = [
        Pulsar(f"pulsar-tasks ({b})", sys.executable, PULSAR_JOBS, PULSAR_DRIVER, backends[b])
        for b in args.pulsar.split(",")
        if b
    ]
    if args.baseline:
        label, old_python = baseline_python(
            args.baseline, ("pulsar-core", "pulsar-tasks[redis,postgres]")
        )
        systems += [
            Pulsar(
                f"pulsar-tasks{label} ({b})", old_python, PULSAR_JOBS, PULSAR_DRIVER, backends[b]
            )
            for b in args.pulsar.split(",")
            if b
        ]
    peers = [p for p in args.peers.split(",") if p]
    if peers:
        env = PeerEnv().install(*[PEER_REQUIREMENTS[p] for p in peers])
        if "celery" in peers:
            systems.append(Celery("celery", str(env.python), CELERY_JOBS, CELERY_DRIVER, REDIS))
        if "rq" in peers:
            systems.append(Rq("rq", str(env.python), RQ_JOBS, RQ_DRIVER, REDIS))
        if "dramatiq" in peers:
            systems.append(
                Dramatiq("dramatiq", str(env.python), DRAMATIQ_JOBS, DRAMATIQ_DRIVER, REDIS)
            )
        if "arq" in peers:
            systems.append(Arq("arq", str(env.python), ARQ_JOBS, ARQ_DRIVER, REDIS))
        if "huey" in peers:
            systems.append(Huey("huey", str(env.python), HUEY_JOBS, HUEY_DRIVER, REDIS))
        if "procrastinate" in peers:
            systems.append(
                Procrastinate(
                    "procrastinate",
                    str(env.python),
                    PROCRASTINATE_JOBS,
                    PROCRASTINATE_DRIVER,
                    POSTGRES,
                )
            )
    # (e) workflows: pulsar-tasks on Redis and Celery's canvas
    flows: dict[str, dict[str, Any]] = {}
    if args.chains or args.chords:
        for system in systems:
            if system.url != REDIS or not isinstance(system, Pulsar | Celery):
                continue
            if "@" in system.name:  # a baseline may predate workflows
                continue
            system.prepare(tmp)
            print(f"running {system.name} workflows...", file=sys.stderr, flush=True)
            try:
                flows[system.name] = bench_workflows(system, args, tmp)
            except (BenchError, subprocess.TimeoutExpired) as exc:
                print(f"{system.name} workflows failed: {exc}", file=sys.stderr, flush=True)
            print(f"  {system.name}: {flows.get(system.name)}", file=sys.stderr, flush=True)
            shutil.rmtree(system.dir, ignore_errors=True)
    if args.workflows_only:
        flush()
        shutil.rmtree(tmp, ignore_errors=True)
        print_workflows(flows, args)
        return 0
    rows = []
    results = {}
    for system in systems:
        system.prepare(tmp)
        print(f"running {system.name}...", file=sys.stderr, flush=True)
        try:
            results[system.name] = bench(system, args, tmp)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            print(f"{system.name} failed: {exc}", file=sys.stderr, flush=True)
        print(f"  {system.name}: {results.get(system.name)}", file=sys.stderr, flush=True)
    peer_results = {n: r for n, r in results.items() if "pulsar" not in n}
    best_peer_tp = max((r["throughput"] for r in peer_results.values()), default=0)
    best_peer_backlog = max((r.get("backlog", 0) for r in peer_results.values()), default=0)
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['throughput']:,.0f}/s",
                ratio(r["throughput"], best_peer_tp),
                f"{r['latency'].p50 / 1000:.2f} ms",
                f"{r['latency'].p99 / 1000:.2f} ms",
                f"{r['backlog']:,.0f}/s" if r.get("backlog") else "-",
                ratio(r["backlog"], best_peer_backlog) if r.get("backlog") else "-",
                f"{r['backlog_small']:,.0f}/s" if r.get("backlog_small") else "-",
                r["once"],
                r["dup"],
                r["lost"],
                f"{r['restart']:.2f} s" if r.get("restart") is not None else "> settle",
            ]
        )
    flush()
    if any(system.url.startswith("postgresql") for system in systems):
        recreate_pg_database(drop_only=True)
    # leave nothing behind: the systems' files, and the wake-up sockets of the SQLite workers
    # SIGKILLed in (c)
    from pulsar.apps.tasks._sqlite import _Wake

    _Wake.sweep(_Wake(backends["sqlite"][len("sqlite:///") :]).dir)
    shutil.rmtree(tmp, ignore_errors=True)
    info = machine_info()
    print(f"{info['date']} · {info['nproc']} cores · {info['python']} · {info['cpu']}")
    print(
        f"(a) {args.n} no-op tasks, (b) {args.latency} round trips, "
        f"(c) {args.reliability} x 50 ms tasks, all workers SIGKILLed midway, restart to all done, "
        f"(d) drain of {args.backlog} (and {args.backlog_small}) queued before the workers "
        f"start; 2 workers each, defaults"
    )
    headers = ["system", "throughput", "vs best peer", "p50", "p99", "drain (d)"]
    headers += ["vs best peer", "drain small", "once", "dup", "lost", "restart->done"]
    print(render_table(headers, rows, markdown=args.markdown))
    if flows:
        print_workflows(flows, args)
    if peer_results:
        best_p50 = min(r["latency"].p50 for r in peer_results.values())
        for name, r in results.items():
            if "pulsar" not in name or "@" in name:  # (a baseline is compared below)
                continue
            tp = r["throughput"] / best_peer_tp
            print(Target(f"{name} throughput vs best peer", tp, 2.5, False))
            print(Target(f"{name} p50 vs best peer", r["latency"].p50 / best_p50, 0.5, True))
            if r.get("backlog") and best_peer_backlog:
                limit = 1.5 if "sqlite" in name else 2.5
                drain = r["backlog"] / best_peer_backlog
                print(Target(f"{name} backlog drain vs best peer", drain, limit, False))
            print(f"{'PASS' if r['lost'] == 0 else 'MISS'}  {name} lost: {r['lost']}")
    for name, r in results.items():
        if "pulsar" not in name:
            continue
        if r.get("backlog") and r.get("backlog_small"):
            flat = r["backlog"] / r["backlog_small"]
            print(Target(f"{name} drain at the large backlog vs the small", flat, 0.9, False))
        restart = r.get("restart")
        ok = restart is not None and restart <= 2.0
        print(f"{'PASS' if ok else 'MISS'}  {name} all done {restart} s after the restart")
    # --baseline: today's pulsar-tasks against the same at REV, per backend ("no slower")
    for name, old in results.items():
        if "@" not in name:
            continue
        today = re.sub(r"@\w+", "", name)
        new = results.get(today)
        if new is None:
            continue
        label = f"{today} vs {name.split()[0]}"
        print(Target(f"{label} throughput", new["throughput"] / old["throughput"], 1.0, False))
        if new.get("backlog") and old.get("backlog"):
            print(Target(f"{label} backlog drain", new["backlog"] / old["backlog"], 1.0, False))
        p50 = new["latency"].p50 / old["latency"].p50
        print(Target(f"{label} p50", p50, 1.0, True))
    # the PostgreSQL backend against its PostgreSQL peer, on the same server
    pg, peer = results.get("pulsar-tasks (postgres)"), results.get("procrastinate")
    if pg is not None and peer is not None:
        name = "pulsar-tasks (postgres)"
        tp = pg["throughput"] / peer["throughput"]
        print(Target(f"{name} throughput vs procrastinate", tp, 2, False))
        if pg.get("backlog") and peer.get("backlog"):
            drain = pg["backlog"] / peer["backlog"]
            print(Target(f"{name} backlog drain vs procrastinate", drain, 2, False))
        p50 = pg["latency"].p50 / peer["latency"].p50
        print(Target(f"{name} p50 vs procrastinate", p50, 0.5, True))
    return 0
