"""Process hygiene with real signals sent to the whole process group (as systemd and ``timeout``
do): every child is reaped before the arbiter exits, an exit is logged only once reaped, and no
process is left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

import pulsar

HERE = os.path.dirname(os.path.abspath(__file__))
SUPERVISED = os.path.join(HERE, "scripts", "supervised.py")
SOCKET_APP = os.path.join(HERE, "scripts", "socket_app.py")

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")


class Group:
    """A command run as the leader of its own process group (``kill -SIG -<pgid>`` target),
    stdout and stderr collected line by line by reader threads."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pgid = self.proc.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self.left: dict[int, str] = {}
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def wait_line(self, pattern: str, *, stream: str = "err", count: int = 1, timeout=30) -> list:
        """The first ``count`` matches of ``pattern`` in the output so far (searched in the whole
        text: lines written by several processes at once may interleave)."""
        lines = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = list(re.finditer(pattern, "".join(lines), re.MULTILINE))
            if len(found) >= count:
                return found[:count]
            if self.proc.poll() is not None and not any(t.is_alive() for t in self._threads):
                break
            time.sleep(0.02)
        raise AssertionError(f"no {count} x {pattern!r} in output:\n{self.text()[-4000:]}")

    def killpg(self, sig: int) -> None:
        os.killpg(self.pgid, sig)

    def group(self) -> list[int]:
        """Pids still in the process group (not zombies)."""
        pids = []
        for p in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(p.pid) == self.pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    pids.append(p.pid)
            except (ProcessLookupError, PermissionError, psutil.Error):
                pass
        return pids

    def finish(self, timeout: float = 40) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.left = {}  # at once: an orphan still running shows here
        for pid in self.group():
            try:
                self.left[pid] = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                pass
        for t in self._threads:
            t.join(5)
        return code

    def text(self) -> str:
        return "".join(self.err)

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def groups():
    started: list[Group] = []
    yield started
    for g in started:
        if g.proc.poll() is None or g.group():
            g.kill()


def supervised(groups: list[Group], mode: str, **settings: object) -> Group:
    g = Group([SUPERVISED, mode] + [f"{k}={json.dumps(v)}" for k, v in settings.items()])
    groups.append(g)
    return g


def ready_pids(g: Group) -> list[int]:
    (m,) = g.wait_line(r"^READY (.*)$", stream="out")
    return list(json.loads(m.group(1))["pids"])


#: multiprocessing's own helpers (forkserver, resource tracker): they exit by themselves when the
#: arbiter's end of their pipe closes, a moment after the arbiter
HELPERS = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")


def assert_nothing_left(g: Group) -> None:
    """No actor outlives the arbiter (checked the moment it exited); multiprocessing's helpers
    follow it within a few seconds."""
    actors = {pid: cmd for pid, cmd in g.left.items() if not any(h in cmd for h in HELPERS)}
    assert actors == {}, f"processes left running after the arbiter exited: {actors}"
    deadline = time.monotonic() + 10
    while g.group() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert g.group() == [], f"multiprocessing helpers left running: {g.left}"


def assert_exits_after_reaping(g: Group, pids: list[int]) -> None:
    """Once the arbiter exited, nothing of its group runs (checked at once, no grace period),
    and each worker's exit was logged once, not before the worker was done."""
    assert_nothing_left(g)
    text = g.text()
    assert "arbiter stopped" in text, text[-3000:]
    stopped = text.rindex("arbiter stopped")
    for pid in pids:
        exits = [m.start() for m in re.finditer(rf"arbiter: actor .*pid {pid}\) exited", text)]
        assert len(exits) == 1, f"worker {pid} exit logged {len(exits)} times:\n{text[-3000:]}"
        assert exits[0] < stopped, text[-3000:]
        done = text.find(f"SYNC DONE {pid}")
        if done >= 0:
            assert exits[0] > done, f"exit of {pid} logged before it finished:\n{text[-3000:]}"


def test_group_term_busy_async_workers(groups) -> None:
    g = supervised(groups, "busy", workers=2, graceful_timeout=10)
    pids = ready_pids(g)
    g.killpg(signal.SIGTERM)
    assert g.finish() == pulsar.ExitCode.OK, g.text()[-3000:]
    assert_exits_after_reaping(g, pids)


def test_group_int_busy_async_workers(groups) -> None:
    g = supervised(groups, "busy", workers=2, graceful_timeout=10)
    pids = ready_pids(g)
    g.killpg(signal.SIGINT)
    assert g.finish() == pulsar.ExitCode.INTERRUPTED, g.text()[-3000:]
    assert_exits_after_reaping(g, pids)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_group_term_worker_busy_in_a_long_sync_call(groups, method: str) -> None:
    """The worker gets TERM in the middle of a 3 s blocking call: it finishes it, then stops;
    the arbiter waits for it (graceful_timeout is longer) and logs its exit only then.

    With ``forkserver`` the worker is the forkserver's child, and the group TERM kills the
    forkserver too (it reported the worker's exit as code 255 while the worker ran on)."""
    g = supervised(
        groups, "sync", workers=1, sync_seconds=3, graceful_timeout=20, start_method=method
    )
    pids = ready_pids(g)
    g.wait_line(rf"SYNC START {pids[0]}\b")
    g.killpg(signal.SIGTERM)
    assert g.finish() == pulsar.ExitCode.OK, g.text()[-3000:]
    assert f"SYNC DONE {pids[0]}" in g.text(), g.text()[-3000:]
    assert_exits_after_reaping(g, pids)


def test_term_to_the_arbiter_only_with_a_busy_worker(groups) -> None:
    g = supervised(groups, "sync", workers=1, sync_seconds=3, graceful_timeout=20)
    pids = ready_pids(g)
    g.wait_line(rf"SYNC START {pids[0]}\b")
    os.kill(g.proc.pid, signal.SIGTERM)
    assert g.finish() == pulsar.ExitCode.OK, g.text()[-3000:]
    assert_exits_after_reaping(g, pids)


def test_group_term_busy_worker_past_graceful_timeout_is_killed(groups) -> None:
    g = supervised(groups, "sync", workers=1, sync_seconds=60, graceful_timeout=1, timeout=0)
    pids = ready_pids(g)
    g.wait_line(rf"SYNC START {pids[0]}\b")
    g.killpg(signal.SIGTERM)
    assert g.finish() == pulsar.ExitCode.OK, g.text()[-3000:]
    assert "did not stop in time: SIGKILL" in g.text()
    assert "killed by SIGKILL" in g.text()
    assert_exits_after_reaping(g, pids)


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_group_int_worker_busy_in_a_long_sync_call(groups, method: str) -> None:
    g = supervised(
        groups,
        "sync",
        workers=2,
        sync_seconds=60,
        graceful_timeout=30,
        timeout=0,
        start_method=method,
    )
    pids = ready_pids(g)
    g.wait_line(r"SYNC START \d+", count=2)
    g.killpg(signal.SIGINT)
    assert g.finish() == pulsar.ExitCode.INTERRUPTED, g.text()[-3000:]
    assert_exits_after_reaping(g, pids)


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_second_sigint_kills_every_actor_at_once(groups, first: int) -> None:
    g = supervised(groups, "sync", workers=2, sync_seconds=60, graceful_timeout=30, timeout=0)
    pids = ready_pids(g)
    g.wait_line(r"SYNC START \d+", count=2)
    os.kill(g.proc.pid, first)
    g.wait_line(rf"received SIG{signal.Signals(first).name[3:]}")
    os.kill(g.proc.pid, signal.SIGINT)
    g.wait_line(r"fast stop requested, killing actors")
    code = g.finish()
    expected = pulsar.ExitCode.INTERRUPTED if first == signal.SIGINT else pulsar.ExitCode.OK
    assert code == expected, g.text()[-3000:]
    text = g.text()
    assert "did not stop in time" not in text  # killed by the second INT, not the timer
    assert text.count("killed by SIGKILL") == 2, text[-3000:]
    assert_exits_after_reaping(g, pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_group_signal_socket_server_with_workers(groups, sig: int) -> None:
    g = Group([SOCKET_APP, "--workers", "2", "--graceful-timeout", "10"])
    groups.append(g)
    (m,) = g.wait_line(r"^LISTENING (\S+)", stream="out")
    host, port = m.group(1).rsplit(":", 1)
    import socket

    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"hello")
        assert s.recv(100)
    deadline = time.monotonic() + 20
    while len(g.group()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [p for p in g.group() if p != g.proc.pid]
    assert len(pids) == 2
    g.killpg(sig)
    code = g.finish()
    assert code in (pulsar.ExitCode.OK, pulsar.ExitCode.INTERRUPTED), g.text()[-3000:]
    assert_nothing_left(g)
    assert "arbiter stopped" in g.text()
