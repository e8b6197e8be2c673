"""The ``arbiter``, ``spawn`` and ``run_server`` fixtures, in a pytest run of their own.

These runs fork actor processes from the pytest process, so they use ``runpytest_subprocess``.
The inner tests write the pids of what they started to a file; the outer test checks with psutil
that none of them outlived the run.
"""

from __future__ import annotations

import json

import psutil
import pytest

HELPERS = '''
import asyncio
import json
import os
import socket

import pulsar


def record(kind, pid):
    with open(os.environ["PIDS_FILE"], "a") as f:
        f.write(json.dumps([kind, pid]) + "\\n")


def whoami(actor):
    actor.extra["who"] = (actor.name, os.getpid())


@pulsar.command()
def getpid(request):
    return os.getpid()


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class TinyApp(pulsar.Application):
    """Binds a socket in the arbiter (monitor_start); every worker accepts on it."""

    def __init__(self, **params):
        super().__init__(**params)
        self.sock = None

    @property
    def addresses(self):
        return [] if self.sock is None else ["%s:%d" % self.sock.getsockname()[:2]]

    def monitor_start(self, monitor):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.setblocking(False)

    def monitor_stopping(self, monitor):
        self.sock.close()

    async def worker_start(self, worker):
        if self.sock is None:  # workers=0: serve from the arbiter
            self.monitor_start(None)
        record("worker", os.getpid())

        async def handle(reader, writer):
            writer.write(("hello from %d" % os.getpid()).encode())
            await writer.drain()
            writer.close()

        worker.extra["server"] = await asyncio.start_server(handle, sock=self.sock)

    async def worker_stopping(self, worker):
        worker.extra["server"].close()


class BrokenApp(pulsar.Application):
    def monitor_start(self, monitor):
        raise OSError("cannot bind: address already in use (on purpose)")
'''


def _pids(pytester: pytest.Pytester) -> list[tuple[str, int]]:
    path = pytester.path / "pids.jsonl"
    if not path.exists():
        return []
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]  # type: ignore[misc]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(helpers_fx=HELPERS)
    pytester.syspathinsert()
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


@pytest.fixture(autouse=True)
def _pids_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIDS_FILE", str(pytester.path / "pids.jsonl"))


def test_arbiter_runs_for_the_test_and_leaves_no_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_arb="""
        import os
        import psutil
        import pulsar
        import pytest
        from helpers_fx import record, whoami

        async def test_running(arbiter):
            assert isinstance(arbiter, pulsar.Arbiter)
            assert arbiter.is_running()
            assert pulsar.get_actor() is arbiter
            assert pulsar.get_arbiter() is arbiter
            assert await pulsar.send("arbiter", "ping") == "pong"
            assert arbiter.cfg.get("start_method") == "fork"
            assert arbiter.cfg.get("log_level") == "warning"
            for i in range(3):
                proxy = await arbiter.spawn(name=f"child{i}", start=whoami)
                record("actor", arbiter.handles[proxy.aid].pid)
            assert len(psutil.Process().children()) == 3

        def test_nothing_left():
            assert psutil.Process().children() == []
            assert pulsar.get_actor() is None
            assert pulsar.get_arbiter().state == pulsar.ActorState.CLOSED

        @pytest.mark.arbiter_settings(log_level="error", start_method="spawn")
        async def test_settings(arbiter):
            assert arbiter.cfg.get("log_level") == "error"
            assert arbiter.cfg.get("start_method") == "spawn"

        async def test_again(arbiter):
            assert arbiter.is_running()
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=4)
    pids = _pids(pytester)
    assert len(pids) == 3
    assert not [pid for _, pid in pids if _alive(pid)]


def test_start_method_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sm="""
        import pulsar
        from helpers_fx import getpid, whoami

        async def test_spawned(spawn, arbiter):
            assert arbiter.cfg.get("start_method") == "forkserver"
            proxy = await spawn(name="fs", start=whoami)  # imports helpers_fx in the child
            assert await pulsar.send(proxy, "getpid") != __import__("os").getpid()
        """
    )
    _run(pytester, "--pulsar-start-method", "forkserver").assert_outcomes(passed=1)
    result = _run(pytester, "--pulsar-start-method", "vfork")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_spawn_stops_its_actors_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_spawn="""
        import os
        import psutil
        import pulsar
        from helpers_fx import getpid, record, whoami

        async def test_spawn(spawn, arbiter):
            one = await spawn(name="one", start=whoami)
            assert isinstance(one, pulsar.ActorProxy)
            assert await pulsar.send(one, "ping") == "pong"
            pid = await pulsar.send(one, "getpid")
            assert pid != os.getpid()
            record("actor", pid)
            # one the test stops itself: teardown copes with it being gone
            three = await spawn(name="three")
            record("actor", await pulsar.send(three, "getpid"))
            assert await arbiter.kill_actor(three.aid)
            assert [c.pid for c in psutil.Process().children()] == [pid]

        def test_gone():
            assert psutil.Process().children() == []
        """
    )
    _run(pytester).assert_outcomes(passed=2)
    pids = _pids(pytester)
    assert len(pids) == 2
    assert not [pid for _, pid in pids if _alive(pid)]


def test_spawn_thread_actor(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_thread="""
        async def test_thread(spawn):
            proxy = await spawn(name="two", concurrency="thread")
            assert await proxy.send("ping") == "pong"
        """
    )
    for _ in range(5):
        _run(pytester).assert_outcomes(passed=1)


def test_run_server_socket_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_server="""
        import asyncio
        import psutil
        from pulsar.apps.socket import SocketServer
        from helpers_fx import Echo

        async def test_echo(run_server, arbiter):
            app = SocketServer(callable=Echo, workers=2)   # bind left at its default
            addresses = await run_server(app)
            assert len(addresses) == 1
            host, port = addresses[0].rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) > 0
            assert len(app.monitor.workers) == 2
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writer.close()
            await writer.wait_closed()
            with open("port.txt", "w") as f:
                f.write(port)

        async def test_port_closed_after_teardown():
            port = int(open("port.txt").read())
            try:
                await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                pass
            else:
                raise AssertionError("the server still listens")
            assert psutil.Process().children() == []
        """
    )
    _run(pytester).assert_outcomes(passed=2)


def test_run_server_any_application(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_app="""
        import asyncio
        import pytest
        import pulsar
        from helpers_fx import BrokenApp, TinyApp

        async def hello(address):
            host, port = address.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            data = await reader.read()
            writer.close()
            return data

        async def test_workers(run_server):
            addresses = await run_server(TinyApp(workers=2))
            assert (await hello(addresses[0])).startswith(b"hello from")

        async def test_in_the_arbiter(run_server):
            addresses = await run_server(TinyApp(name="tiny0", workers=0))
            assert await hello(addresses[0]) == f"hello from {__import__('os').getpid()}".encode()

        async def test_start_fails(run_server):
            with pytest.raises(OSError, match="on purpose"):
                await run_server(BrokenApp(workers=1))
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=3)
    workers = [pid for kind, pid in _pids(pytester) if kind == "worker"]
    assert len(workers) == 3
    assert not [pid for pid in workers if _alive(pid)]


def test_fixtures_work_in_workers(pytester: pytest.Pytester) -> None:
    # the same fixtures inside a --pulsar-workers run: an arbiter in a worker process
    for name in ("a", "b"):
        pytester.makepyfile(
            **{
                f"test_{name}": """
                import os
                import psutil
                import pulsar
                from helpers_fx import getpid, record

                async def test_spawn(spawn):
                    proxy = await spawn(name="inner")
                    pid = await pulsar.send(proxy, "getpid")
                    record("actor", pid)
                    assert psutil.Process(pid).ppid() == os.getpid()

                def test_clean():
                    assert psutil.Process().children() == []
                """
            }
        )
    result = _run(pytester, "--pulsar-workers", "2")
    result.assert_outcomes(passed=4)
    pids = _pids(pytester)
    assert len(pids) == 2
    assert not [pid for _, pid in pids if _alive(pid)]
