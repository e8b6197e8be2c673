"""Task queues: pulsar-tasks (Redis, SQLite) vs RQ and arq — throughput, latency, reliability.

    hatch run bench tasks [--n 20000] [--latency 500] [--reliability 200] [--peers rq,arq]

Every system runs 2 worker processes on the local Redis (database 14, flushed before each run;
nothing else is touched); pulsar-tasks also runs on SQLite. Peers are installed in a separate
virtual environment (tools/bench/.venv-peers), never in the workspace environment.

(a) throughput: N no-op tasks queued (workers running), time until all are done;
(b) latency: sequential queue-and-wait round trips, p50/p99;
(c) reliability: tasks of 50 ms, every worker SIGKILLed midway and restarted; each run of a
    task appends its id to a file: completed once / duplicated / lost.
Celery and Dramatiq are not measured yet (see the pulsar-tasks README).
"""

from __future__ import annotations

import argparse
import json
import os
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
    Latency,
    PeerEnv,
    machine_info,
    managed_process,
    ratio,
    render_table,
)

REDIS_DB = 14
REDIS = f"redis://127.0.0.1:6379/{REDIS_DB}"

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
    max_jobs = 50
    poll_delay = 0.01
""".replace("%d", str(REDIS_DB))

# driver scripts: run by the system's own Python, print one JSON line
PULSAR_DRIVER = """
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import bench_jobs
from pulsar.apps import tasks
url, mode, n = sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    c = tasks.connect(url)
    if mode == "throughput":
        t0 = time.perf_counter()
        ids = []
        for k in range(0, n, 50):
            ids += [t.id for t in await asyncio.gather(
                *(c.queue_task("noop") for _ in range(min(50, n - k))))]
        pending = ids
        while pending:
            got = await asyncio.gather(*(c.get_task(i) for i in pending[:50]))
            done = {t.id for t in got if t is not None and t.done}
            if not done:
                await asyncio.sleep(0.01)
            pending = [i for i in pending if i not in done]
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
            await c.queue_task("work", i)
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
if mode == "throughput":
    t0 = time.perf_counter()
    jobs = [q.enqueue(bench_jobs.noop) for _ in range(n)]
    reg = q.finished_job_registry
    while reg.count < n:
        time.sleep(0.005)
    print(json.dumps({"seconds": time.perf_counter() - t0}))
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
    if mode == "throughput":
        t0 = time.perf_counter()
        jobs = [await pool.enqueue_job("noop") for _ in range(n)]
        for j in jobs:
            await j.result(timeout=600, poll_delay=0.01)
        print(json.dumps({"seconds": time.perf_counter() - t0}))
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
        out = subprocess.run(
            [self.python, str(self.dir / "driver.py"), str(self.dir), self.url, mode, str(n)],
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
            cwd=self.dir,
        )
        if out.returncode:
            raise BenchError(f"{self.name} driver failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


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
                "--concurrent-tasks",
                "50",
                "--task-lease",
                "2",
                "--schedule-periodic",
                "false",
            ]
            if False
            else [
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
                "--concurrent-tasks",
                "50",
                "--task-lease",
                "2",
            ]
        ]


class Rq(System):
    def worker_cmds(self) -> list[list[str]]:
        rq = str(Path(self.python).parent / "rq")
        return [[rq, "worker", "-q", "--url", self.url, "bench"] for _ in range(2)]


class Arq(System):
    def worker_cmds(self) -> list[list[str]]:
        arq = str(Path(self.python).parent / "arq")
        return [[arq, "bench_jobs.WorkerSettings"] for _ in range(2)]


def flush() -> None:
    import redis

    redis.Redis(db=REDIS_DB).flushdb()


def start_workers(system: System, env: dict[str, str]) -> list[Any]:
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
    time.sleep(2.0)  # let the workers connect
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
    # reliability: queue, start workers, SIGKILL them all midway, restart, wait
    reset(system, tmp)
    runs = tmp / f"runs-{system.dir.name}"
    runs.write_text("")
    env["BENCH_RUNS"] = str(runs)
    system.drive("reliability", args.reliability, env)
    running = start_workers(system, env)
    deadline = time.monotonic() + 30
    while len(runs.read_text().split()) < args.reliability // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_workers(running)
    for ctx, _ in running:
        ctx.__exit__(None, None, None)
    running = start_workers(system, env)
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        if len(set(runs.read_text().split())) >= args.reliability:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    stop_workers(running)
    seen = runs.read_text().split()
    counts = {i: seen.count(str(i)) for i in range(args.reliability)}
    row["once"] = sum(1 for c in counts.values() if c == 1)
    row["dup"] = sum(1 for c in counts.values() if c > 1)
    row["lost"] = sum(1 for c in counts.values() if c == 0)
    return row


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
    parser.add_argument("--peers", default="rq,arq")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    flush()
    tmp = Path(tempfile.mkdtemp(prefix="pulsar-bench-tasks-"))
    systems: list[System] = [
        Pulsar("pulsar-tasks (redis)", sys.executable, PULSAR_JOBS, PULSAR_DRIVER, REDIS),
        Pulsar(
            "pulsar-tasks (sqlite)",
            sys.executable,
            PULSAR_JOBS,
            PULSAR_DRIVER,
            f"sqlite:///{tmp}/pulsar.db",
        ),
    ]
    peers = [p for p in args.peers.split(",") if p]
    if peers:
        env = PeerEnv().install(*[{"rq": "rq>=1.16", "arq": "arq>=0.26"}[p] for p in peers])
        if "rq" in peers:
            systems.append(Rq("rq", str(env.python), RQ_JOBS, RQ_DRIVER, REDIS))
        if "arq" in peers:
            systems.append(Arq("arq", str(env.python), ARQ_JOBS, ARQ_DRIVER, REDIS))
    rows = []
    results = {}
    for system in systems:
        system.prepare(tmp)
        print(f"running {system.name}...", file=sys.stderr, flush=True)
        results[system.name] = bench(system, args, tmp)
    best_peer_tp = max(
        (r["throughput"] for n, r in results.items() if "pulsar" not in n), default=0
    )
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['throughput']:,.0f}/s",
                ratio(r["throughput"], best_peer_tp),
                f"{r['latency'].p50 / 1000:.2f} ms",
                f"{r['latency'].p99 / 1000:.2f} ms",
                r["once"],
                r["dup"],
                r["lost"],
            ]
        )
    flush()
    info = machine_info()
    print(f"{info['date']} · {info['nproc']} cores · {info['python']} · {info['cpu']}")
    print(
        f"(a) {args.n} no-op tasks, (b) {args.latency} round trips, "
        f"(c) {args.reliability} x 50 ms tasks, all workers SIGKILLed midway; 2 workers each"
    )
    print(
        render_table(
            ["system", "throughput", "vs best peer", "p50", "p99", "once", "dup", "lost"],
            rows,
            markdown=args.markdown,
        )
    )
    return 0
