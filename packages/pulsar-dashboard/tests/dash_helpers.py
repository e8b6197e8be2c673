"""Helpers of the pulsar-dashboard tests: real processes started and stopped by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOKEN = "s3cret-token"


@dataclass
class Proc:
    """A child process whose output is collected by a thread."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def start_reader(self) -> None:
        def read() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                self.lines.append(line)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                m = rx.search(line)
                if m:
                    return m
            seen = 0
            if self.popen.poll() is not None and not any(rx.search(x) for x in self.lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not seen; output:\n{''.join(self.lines)}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def spawn(args: list[str], *, cwd: Path = HERE, env: dict[str, str] | None = None) -> Proc:
    """Start ``python args...`` with its stdout and stderr collected."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PULSAR_")}
    full_env.update(PYTHONUNBUFFERED="1", **(env or {}))
    popen = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        start_new_session=True,
    )
    proc = Proc(popen)
    proc.start_reader()
    return proc


def eventually(check: Callable[[], Any], timeout: float = 10, interval: float = 0.1) -> Any:
    """Call ``check`` until it returns a true value (returned) or ``timeout`` passes (the last
    AssertionError, or one saying it never held, is raised)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"{check} never held within {timeout}s")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def attach(pidfile: Path | str, *extra: str, env: dict[str, str] | None = None) -> Proc:
    """``pulsar-dashboard --attach PIDFILE --bind 127.0.0.1:0 EXTRA...`` (a free port)."""
    args = ["-m", "pulsar.apps.dashboard", "--attach", str(pidfile), "--bind", "127.0.0.1:0"]
    return spawn([*args, *extra], env=env)


def metrics(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed with prometheus_client's parser: (sample name, labels) -> value."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def state(url: str) -> dict[str, Any]:
    """``/api/state``: the dashboard's snapshot."""
    import httpx

    r = httpx.get(f"{url}/api/state", timeout=10)
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]
