"""HUP under load: workers are replaced one by one, no connection refused, no request lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import core_helpers as h
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ECHO = os.path.join(ROOT, "examples", "echo", "echo.py")


def test_hup_while_clients_are_connected(tmp_path) -> None:
    pidfile = tmp_path / "echo.pid"
    proc = subprocess.Popen(
        [
            sys.executable,
            ECHO,
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--pidfile",
            str(pidfile),
            "--graceful-timeout",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING "), proc.stderr.read()[-2000:]
        host, port = line.split()[1].rsplit(":", 1)
        h.wait_for(lambda: (tmp_path / "echo.pid.mailbox").exists())
        mailbox = (tmp_path / "echo.pid.mailbox").read_text().strip()

        def worker_pids() -> set[int]:
            info = h.guest_call(mailbox, "info")
            workers = next(iter(info["monitors"].values()))["workers"]
            return {w["pid"] for w in workers if w.get("state") == "RUNNING"}

        def pool(exclude: set[int] = frozenset()) -> set[int] | None:
            pids = worker_pids()
            return pids if len(pids) == 2 and not pids & exclude else None

        old = h.wait_for(pool)
        stop = threading.Event()
        results = {"ok": 0, "failed": []}
        persistent = socket.create_connection((host, int(port)))
        persistent.sendall(b"hello")
        assert persistent.recv(64) == b"hello"

        def client() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                payload = f"req-{i}".encode()
                try:
                    with socket.create_connection((host, int(port)), timeout=5) as sock:
                        sock.sendall(payload)
                        got = b""
                        while len(got) < len(payload):
                            chunk = sock.recv(64)
                            if not chunk:
                                break
                            got += chunk
                    if got == payload:
                        results["ok"] += 1
                    else:
                        results["failed"].append((i, got))
                except OSError as exc:
                    results["failed"].append((i, repr(exc)))

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGHUP)
        # a connection opened before the roll is still served while its old worker drains
        # (an idle connection would be closed after graceful_timeout: let it go now instead)
        time.sleep(0.2)
        persistent.sendall(b"still-there")
        assert persistent.recv(64) == b"still-there"
        persistent.close()
        # requests keep flowing through the whole roll
        new = h.wait_for(lambda: pool(old), timeout=30)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(10)
        assert results["failed"] == []
        assert results["ok"] > 20
        assert not new & old

        def old_gone() -> bool:
            return not any(
                psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in old
            )

        h.wait_for(old_gone, timeout=10)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.communicate()
