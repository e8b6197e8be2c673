"""pulsar.apps.socket: real sockets on 127.0.0.1 port 0, real processes and threads."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import psutil
import pytest
import socket_helpers as sh

import pulsar
from pulsar.apps import socket as ps
from pulsar.apps.socket import SocketServer, UdpServer

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "socket_app.py")


# ------------------------------------------------------------------------------------ helpers


def serve(app: Any, main: Any, *, timeout: float = 40, **params: Any) -> Any:
    """Run an arbiter with ``app`` in this process; once every worker serves, ``await main(arbiter,
    app)`` on the arbiter's loop, then stop. Returns main's value; asserts a clean exit."""
    result: dict[str, Any] = {}

    async def start(arbiter: Any) -> None:
        async def go() -> None:
            try:
                await asyncio.wait_for(serving(arbiter, app), 20)
                result["value"] = await asyncio.wait_for(main(arbiter, app), timeout)
            except BaseException as exc:
                result["error"] = exc
            finally:
                arbiter.stop()

        arbiter.extra["main"] = asyncio.ensure_future(go())

    params.setdefault("log_level", "warning")
    arbiter = pulsar.arbiter(start=start, **params)
    app.add_to(arbiter)
    code = arbiter.start(install_signals=False)
    if "error" in result:
        raise result["error"]
    assert code == 0
    return result.get("value")


async def server_infos(arbiter: Any, app: Any) -> list[dict[str, Any]]:
    """The ``server`` info of every worker of ``app`` (the arbiter's with ``workers=0``)."""
    monitor = arbiter.monitors.get(app.name)
    if monitor is None:
        info = arbiter.info_dict()
        return [{**info["server"], "pid": info["pid"]}] if "server" in info else []
    infos = []
    for handle in monitor.live_workers():
        if not handle.running:
            continue
        try:
            info = await arbiter.send(handle.aid, "info")
        except pulsar.PulsarError:
            continue
        if "server" in info:
            infos.append({**info["server"], "pid": info["pid"], "aid": handle.aid})
    return infos


async def serving(arbiter: Any, app: Any) -> list[dict[str, Any]]:
    """Wait until every worker of ``app`` serves."""
    target = int(app.cfg.get("workers") or 0) or 1
    while True:
        infos = await server_infos(arbiter, app)
        if len(infos) >= target and all(i["state"] == "serving" for i in infos):
            return infos
        await asyncio.sleep(0.05)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate.__name__}")
        await asyncio.sleep(0.05)


def echo_app(**params: Any) -> SocketServer:
    params.setdefault("bind", "127.0.0.1:0")
    params.setdefault("name", "echo")
    return SocketServer(callable=sh.EchoProtocol, **params)


async def spread(arbiter: Any, app: Any, address: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Open batches of concurrent connections until every worker has accepted some."""
    deadline = time.monotonic() + 15
    while True:
        writers = []
        for _ in range(20):
            reader, writer = await sh.open_connection(address, **kwargs)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writers.append(writer)
        infos = await server_infos(arbiter, app)
        for writer in writers:
            writer.close()
        if all(i["accepted"] > 0 for i in infos) or time.monotonic() > deadline:
            return infos


# --------------------------------------------------------------------------------- the tests


def test_public_surface() -> None:
    assert set(ps.__all__) >= {"SocketServer", "UdpServer", "BindError", "WorkerServer"}
    for name in ps.__all__:
        assert getattr(ps, name).__module__.startswith("pulsar.apps.socket")
    import pulsar.apps

    assert not hasattr(pulsar.apps, "__file__") or pulsar.apps.__file__ is None  # namespace


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_echo_two_process_workers(start_method: str) -> None:
    """The arbiter binds; both process workers accept on the shared socket, with every start
    method (spawn/forkserver pickle the listening socket with the application)."""
    app = echo_app(workers=2, start_method=start_method)

    async def main(arbiter: Any, app: Any) -> None:
        (address,) = app.addresses
        assert address.startswith("127.0.0.1:") and not address.endswith(":0")
        results = await asyncio.gather(*(sh.echo(address, b"x%d" % i) for i in range(30)))
        assert results == [b"x%d" % i for i in range(30)]
        infos = await spread(arbiter, app, address)
        assert len(infos) == 2
        assert len({i["pid"] for i in infos}) == 2 and os.getpid() not in {i["pid"] for i in infos}
        assert all(i["accepted"] > 0 for i in infos), infos
        assert sum(i["accepted"] for i in infos) >= 50
        assert all(i["addresses"] == [address] for i in infos)

    serve(app, main)


def test_echo_thread_workers() -> None:
    app = echo_app(workers=2, concurrency="thread")

    async def main(arbiter: Any, app: Any) -> None:
        infos = await spread(arbiter, app, app.addresses[0])
        assert len(infos) == 2 and {i["pid"] for i in infos} == {os.getpid()}
        assert sum(i["accepted"] for i in infos) >= 20

    serve(app, main)
    assert app.listeners == []  # closed by monitor_stopping


def test_workers_zero_serves_in_the_arbiter() -> None:
    app = echo_app(workers=0)

    async def main(arbiter: Any, app: Any) -> None:
        address = app.addresses[0]
        assert await sh.served_by(address) == os.getpid()
        assert await sh.echo(address, b"in the arbiter") == b"in the arbiter"
        info = await pulsar.send("arbiter", "info")
        assert info["server"]["accepted"] == 2
        assert info["server"]["addresses"] == [address]

    serve(app, main)


def test_unix_socket_replaces_a_stale_file_and_is_removed(tmp_path: Any) -> None:
    path = str(tmp_path / "echo.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # a dead server's file: bound, never listened, closed without unlink
    stale.close()
    assert os.path.exists(path)
    app = echo_app(workers=2, bind=f"unix:{path}")

    async def main(arbiter: Any, app: Any) -> None:
        assert app.addresses == [f"unix:{path}"]
        for i in range(5):
            assert await sh.echo(app.addresses[0], b"u%d" % i) == b"u%d" % i

    serve(app, main)
    assert not os.path.exists(path)


def test_unix_socket_in_use_or_not_a_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "live.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    try:
        with pytest.raises(ps.BindError, match="another server is listening"):
            ps.bind_listeners([f"unix:{path}"])
    finally:
        live.close()
    regular = tmp_path / "file"
    regular.write_text("data")
    with pytest.raises(ps.BindError, match="not a socket"):
        ps.bind_listeners([f"unix:{regular}"])
    assert regular.read_text() == "data"


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_bind() -> None:
    app = echo_app(workers=1, bind="[::1]:0")

    async def main(arbiter: Any, app: Any) -> None:
        (address,) = app.addresses
        assert address.startswith("[::1]:")
        assert await sh.echo(address, b"six") == b"six"

    serve(app, main)


def test_several_binds() -> None:
    app = echo_app(workers=2, bind=["127.0.0.1:0", "127.0.0.1:0"])

    async def main(arbiter: Any, app: Any) -> None:
        assert len(app.addresses) == 2 and app.addresses[0] != app.addresses[1]
        for address in app.addresses:
            assert await sh.echo(address, address.encode()) == address.encode()
        infos = await server_infos(arbiter, app)
        assert all(i["addresses"] == app.addresses for i in infos)

    serve(app, main)


def test_tls_echo(tmp_path: Any) -> None:
    files = sh.make_cert(str(tmp_path))
    if files is None:
        pytest.skip("neither the openssl CLI nor the cryptography package is available")
    cert, key = files
    app = echo_app(workers=2, cert_file=cert, key_file=key)

    async def main(arbiter: Any, app: Any) -> None:
        address = app.addresses[0]
        ctx = sh.client_ssl(cert)
        for i in range(5):
            assert await sh.echo(address, b"secret %d" % i, ssl=ctx) == b"secret %d" % i
        infos = await server_infos(arbiter, app)
        assert all(i["tls"] for i in infos)
        # a plain-text client gets nothing echoed
        reader, writer = await sh.open_connection(address)
        writer.write(b"plain\r\n\r\n")
        data = await asyncio.wait_for(reader.read(100), 5)
        assert b"plain" not in data
        writer.close()

    serve(app, main)


def test_bad_tls_files_are_a_boot_error(tmp_path: Any) -> None:
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate")
    app = echo_app(workers=1, cert_file=str(bad))
    arbiter = pulsar.arbiter(log_level="critical")
    app.add_to(arbiter)
    assert arbiter.start(install_signals=False) == pulsar.ExitCode.BOOT_ERROR


@pytest.mark.parametrize("io", ["asyncio", "uvloop"])
def test_tcp_nodelay_on_accepted_sockets(io: str) -> None:
    if io == "uvloop":
        pytest.importorskip("uvloop")
    app = echo_app(workers=1, io=io)

    async def main(arbiter: Any, app: Any) -> None:
        reader, writer = await sh.open_connection(app.addresses[0])
        writer.write(b"hi")
        await reader.readexactly(2)
        (info,) = await server_infos(arbiter, app)
        flags = await arbiter.send(info["aid"], "run", sh.nodelay_of_connections)
        writer.close()
        assert flags and all(flags), flags

    serve(app, main)


def test_keep_alive_closes_idle_connections_and_serves_others() -> None:
    app = echo_app(workers=1, keep_alive=0.5)

    async def main(arbiter: Any, app: Any) -> None:
        address = app.addresses[0]
        idle_reader, idle_writer = await sh.open_connection(address)  # sends nothing
        reader, writer = await sh.open_connection(address)
        start = time.monotonic()
        closed = asyncio.ensure_future(idle_reader.read())
        closed_at = None
        while time.monotonic() - start < 1.6:
            writer.write(b"busy")
            assert await asyncio.wait_for(reader.readexactly(4), 2) == b"busy"
            if closed_at is None and closed.done():
                assert closed.result() == b""
                closed_at = time.monotonic() - start
            await asyncio.sleep(0.05)
        assert closed_at is not None and 0.4 <= closed_at < 1.6, closed_at
        writer.write(b"still")  # the active connection was never idle: still served
        assert await reader.readexactly(5) == b"still"
        (info,) = await server_infos(arbiter, app)
        assert info["idle_closed"] == 1 and info["connections"] == 1
        idle_writer.close()
        writer.close()

    serve(app, main)


def test_worker_server_keep_alive_override() -> None:
    """A subclass may turn the socket layer's idle timer off whatever the setting says."""

    class NoIdle(SocketServer):
        def create_worker_server(self, worker: Any) -> ps.WorkerServer:
            return ps.WorkerServer(
                str(self.name), worker, self.listeners, self.protocol_factory(worker), self.cfg,
                keep_alive=0,
            )  # fmt: skip

    app = NoIdle(callable=sh.EchoProtocol, name="noidle", bind="127.0.0.1:0", workers=0,
                 keep_alive=0.2)  # fmt: skip

    async def main(arbiter: Any, app: Any) -> None:
        reader, writer = await sh.open_connection(app.addresses[0])
        await asyncio.sleep(0.6)
        writer.write(b"alive")
        assert await reader.readexactly(5) == b"alive"
        (info,) = await server_infos(arbiter, app)
        assert info["idle_closed"] == 0 and info["keep_alive"] == 0
        writer.close()

    serve(app, main)


def test_counters_in_info() -> None:
    app = echo_app(workers=1)

    async def main(arbiter: Any, app: Any) -> None:
        address = app.addresses[0]
        held = [await sh.open_connection(address) for _ in range(3)]
        for reader, writer in held:
            writer.write(b"x")
            await reader.readexactly(1)
        for _ in range(4):
            await sh.echo(address)

        async def three_open() -> bool:
            (info,) = await server_infos(arbiter, app)
            return info["connections"] == 3  # type: ignore[no-any-return]

        await until(three_open)  # the 4 short connections are closed
        (info,) = await server_infos(arbiter, app)
        assert info["accepted"] == 7 and info["requests"] == 7
        assert info["accepting"] and info["max_requests"] == 0
        for _, writer in held:
            writer.close()

        async def closed() -> bool:
            (info,) = await server_infos(arbiter, app)
            return info["connections"] == 0  # type: ignore[no-any-return]

        await until(closed)

    serve(app, main)


def test_max_requests_recycles_without_dropping_capacity() -> None:
    """After max_requests connections the worker asks to be recycled: its replacement starts
    before it stops, and no connection is refused meanwhile."""
    # forkserver: a worker forked from this process (where the test's clients run) would inherit
    # the client ends of open connections and keep them open after the client closes them
    app = echo_app(workers=1, max_requests=4, graceful_timeout=5, start_method="forkserver")

    async def main(arbiter: Any, app: Any) -> None:
        monitor = arbiter.monitors[app.name]
        samples: list[int] = []

        async def sample() -> None:
            while True:
                samples.append(sum(1 for h in monitor.workers.values() if h.alive))
                await asyncio.sleep(0.005)

        sampler = asyncio.ensure_future(sample())
        pids = []
        for _ in range(14):
            pids.append(await asyncio.wait_for(sh.served_by(app.addresses[0]), 10))
        sampler.cancel()
        distinct = list(dict.fromkeys(pids))
        assert len(distinct) >= 3, pids
        for pid in distinct:  # each worker served exactly max_requests connections
            assert pids.count(pid) == 4 or pid == distinct[-1]
        assert min(samples) >= 1 and max(samples) >= 2  # the new worker ran beside the old

        async def old_gone() -> bool:
            return not any(psutil.pid_exists(p) and _alive(p) for p in distinct[:-1])

        await until(old_gone)

    serve(app, main)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_max_requests_jitter() -> None:
    app = echo_app(workers=2, max_requests=100, max_requests_jitter=50)

    async def main(arbiter: Any, app: Any) -> None:
        infos = await server_infos(arbiter, app)
        assert all(100 <= i["max_requests"] <= 150 for i in infos), infos

    serve(app, main)


def test_reuse_port() -> None:
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")
    app = echo_app(workers=2, reuse_port=True)

    async def main(arbiter: Any, app: Any) -> None:
        infos = await spread(arbiter, app, app.addresses[0])
        assert all(i["accepted"] > 0 for i in infos), infos

    serve(app, main)


# ---------------------------------------------------------------------------------------- UDP


@pytest.mark.parametrize("reuse_port", [False, True])
def test_udp_echo(reuse_port: bool) -> None:
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")
    app = UdpServer(
        callable=sh.UdpEcho, name="udp", bind="127.0.0.1:0", workers=2, reuse_port=reuse_port
    )

    async def main(arbiter: Any, app: Any) -> None:
        host, port = sh.split_address(app.addresses[0])
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                replies.put_nowait(data)

        pids = set()
        for _ in range(40):  # several source ports, so SO_REUSEPORT hashes them apart
            transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
            transport.sendto(b"dgram")
            reply = await asyncio.wait_for(replies.get(), 5)
            pid, _, data = reply.partition(b":")
            assert data == b"dgram"
            pids.add(int(pid))
            transport.close()
        infos = await server_infos(arbiter, app)
        assert sum(i["datagrams"] for i in infos) == 40
        assert pids <= {i["pid"] for i in infos}

    serve(app, main)


def test_udp_refuses_unix() -> None:
    with pytest.raises(ps.BindError, match="unix sockets are for TCP"):
        ps.bind_listeners(["unix:/tmp/nope.sock"], kind="udp")


# ----------------------------------------------------------------------- bad input and faults


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("workers", [0, 2])
def test_busy_port_is_a_boot_error_before_any_worker(workers: int, caplog: Any) -> None:
    busy = _busy_port()
    try:
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        app = echo_app(workers=workers, bind=address)
        arbiter = pulsar.arbiter(log_level="warning")
        app.add_to(arbiter)
        assert arbiter.start(install_signals=False) == pulsar.ExitCode.BOOT_ERROR
        assert not arbiter.handles and not arbiter.exited  # no worker was ever spawned
        assert f"cannot bind {address}" in caplog.text
        assert "in use" in caplog.text.lower()
    finally:
        busy.close()


def test_all_or_nothing_bind() -> None:
    busy = _busy_port()
    try:
        with pytest.raises(ps.BindError):
            ps.bind_listeners(["127.0.0.1:0", f"127.0.0.1:{busy.getsockname()[1]}"])
    finally:
        busy.close()


class Run:
    """scripts/socket_app.py as a real process (killed with its children at the end)."""

    def __init__(self, *args: str) -> None:
        self.name = "pst" + uuid.uuid4().hex[:8]
        self.proc = subprocess.Popen(
            [sys.executable, SCRIPT, "--process-name", self.name, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def listening(self, timeout: float = 20) -> list[str]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("LISTENING "):
                return line.split()[1:]
            if not line:
                break
        self.kill()
        raise AssertionError(f"never listened: {self.proc.communicate()[1][-3000:]}")

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.proc.returncode, err

    def leftovers(self) -> list[int]:
        out = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if self.name in " ".join(proc.info["cmdline"] or ()) and _alive(proc.pid):
                    out.append(proc.pid)
            except psutil.Error:
                continue
        return out

    def kill(self) -> None:
        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
        except psutil.NoSuchProcess:
            pass
        self.proc.kill()
        self.proc.communicate()


@pytest.mark.parametrize(
    "bind, message",
    [
        ("BUSY", "in use"),
        ("192.0.2.1:0", "cannot assign requested address"),
        ("no-such-host.invalid:0", "cannot resolve"),
    ],
)
def test_cli_bind_errors_exit_boot_error(bind: str, message: str) -> None:
    busy = _busy_port()
    try:
        if bind == "BUSY":
            bind = f"127.0.0.1:{busy.getsockname()[1]}"
        run = Run("--bind", bind, "--workers", "2")
        code, err = run.finish()
    finally:
        busy.close()
    assert code == pulsar.ExitCode.BOOT_ERROR, err
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"cannot bind {bind}" in errors[0], err
    assert message in errors[0].lower()
    assert "Traceback" not in err
    assert run.leftovers() == []


def test_cli_malformed_address_is_a_config_error() -> None:
    run = Run("--bind", "127.0.0.1:99999")
    code, err = run.finish()
    assert code == pulsar.ExitCode.CONFIG
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "bind" in line and "99999 out of range" in line


async def test_sigterm_finishes_in_flight_connections() -> None:
    run = Run("--bind", "127.0.0.1:0", "--workers", "2", "--graceful-timeout", "10")
    try:
        (address,) = run.listening()

        await asyncio.sleep(0.5)  # let the workers start
        reader, writer = await sh.open_connection(address)
        writer.write(b"sleep:1.5")
        await asyncio.sleep(0.3)
        start = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        data = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        elapsed = time.monotonic() - start
        await writer.wait_closed()  # closed before run.finish() blocks the loop
        assert data == b"slept\n"
        assert 0.8 < elapsed < 5
        code, err = run.finish(timeout=15)
        assert code == 0, err
        assert run.leftovers() == []
    finally:
        if run.proc.poll() is None:
            run.kill()


async def test_sigterm_closes_connections_still_open_after_graceful_timeout() -> None:
    run = Run("--bind", "127.0.0.1:0", "--workers", "1", "--graceful-timeout", "2")
    try:
        (address,) = run.listening()

        await asyncio.sleep(0.5)
        reader, writer = await sh.open_connection(address)
        writer.write(b"sleep:60")
        await asyncio.sleep(0.3)
        start = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        elapsed = time.monotonic() - start
        await writer.wait_closed()  # closed before run.finish() blocks the loop
        assert data == b""  # closed by the server
        assert 1.0 < elapsed < 2.5, elapsed
        code, err = run.finish(timeout=15)
        assert code == 0, err
        assert "still open at the end of the graceful stop" in err
        assert "SIGKILL" not in err
    finally:
        if run.proc.poll() is None:
            run.kill()


def test_nodelay_left_to_uvloop() -> None:
    """uvloop turns TCP_NODELAY on for every TCP transport it makes: the worker does not ask
    again (three system calls per connection); other transports get it from the worker."""
    from pulsar.apps.socket._worker import _wants_nodelay

    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:

        async def transport_types() -> list[type]:
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            sock = transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            transport.close()
            server.close()
            return [type(transport)]

        (tcp,) = loop.run_until_complete(transport_types())
    finally:
        loop.close()
    assert not _wants_nodelay(tcp)
    assert _wants_nodelay(asyncio.Transport)


def test_banner_urls(tmp_path: Any) -> None:
    """Every bound address as a URL: the scheme of the server, its TLS form, ``unix:``."""

    class Http(SocketServer):
        url_scheme = "http"

    plain = Http(callable=asyncio.Protocol, bind=["127.0.0.1:0", f"unix:{tmp_path}/s.sock"])
    plain.bind()
    try:
        port = plain.addresses[0].rsplit(":", 1)[1]
        assert plain.urls() == [f"http://127.0.0.1:{port}", f"unix:{tmp_path}/s.sock"]
        line = plain.banner()[0]
        assert line.startswith(f"pulsar {pulsar.__version__}: http running on http://127.0.0.1:")
        assert f"(1 worker x process, 4 threads each; arbiter pid {os.getpid()})" in line
    finally:
        plain.close_listeners()
    files = sh.make_cert(str(tmp_path))
    if files is None:
        pytest.skip("no way to make a certificate")
    tls = Http(callable=asyncio.Protocol, bind="127.0.0.1:0", cert_file=files[0], key_file=files[1])
    tls.bind()
    try:
        assert tls.urls()[0].startswith("https://127.0.0.1:")
    finally:
        tls.close_listeners()
    tcp = SocketServer(callable=asyncio.Protocol, bind="[::1]:0", workers=0, thread_workers=1)
    try:
        tcp.bind()
    except ps.BindError:
        pytest.skip("no IPv6")
    try:
        assert tcp.urls()[0].startswith("tcp://[::1]:")
        assert "(in the arbiter, 1 thread each;" in tcp.banner()[0]
    finally:
        tcp.close_listeners()
