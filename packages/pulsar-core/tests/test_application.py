"""Applications, the command line and operations, driven as real processes with real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import core_helpers as h
import psutil
import pytest

import pulsar

APP = os.path.join(h.SCRIPTS, "app.py")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, APP, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def markers(directory) -> list[str]:
    return sorted(name.rsplit("-", 1)[0] for name in os.listdir(directory))


def test_help_lists_settings_by_section_with_defaults() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for section in ("Worker Processes", "Server Mechanics", "Logging"):
        assert section in out.stdout
    assert "--workers" in out.stdout and "--graceful-timeout" in out.stdout
    assert "PULSAR_WORKERS" in out.stdout
    # an application that is not a server has no server settings (bind, TLS, keep-alive...)
    assert "Server Socket" not in out.stdout
    for flag in ("--bind", "--cert-file", "--keep-alive", "--access-log", "--max-requests"):
        assert flag + " " not in out.stdout and flag + "]" not in out.stdout, flag


def test_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"app.py {pulsar.__version__}"


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--workers", "abc"], {}, "--workers: invalid value 'abc'"),
        (["--graceful-timeout", "-1"], {}, "--graceful-timeout"),
        (["--bind", "127.0.0.1:8000"], {}, "unrecognized arguments: --bind"),
        (["--timeout", "-3"], {}, "--timeout"),
        ([], {"PULSAR_WORKERS": "many"}, "PULSAR_WORKERS"),
        (["--nope"], {}, "--nope"),
    ],
)
def test_bad_values_stop_before_anything_starts(args, env, needle, tmp_path) -> None:
    out = run_cli(*args, env={"APP_MARKERS": str(tmp_path), **env})
    assert out.returncode == pulsar.ExitCode.CONFIG
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
    assert os.listdir(tmp_path) == []  # no hook ran: nothing was started


def test_unknown_setting_in_config_file(tmp_path) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 2\nworkerz = 3\n")
    out = run_cli("-c", str(conf))
    assert out.returncode == 2
    assert "workerz" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_layering_file_env_cli(tmp_path) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text("workers = 3\ntimeout = 40\ngraceful_timeout = 7\n")
    env = {"PULSAR_WORKERS": "2", "PULSAR_TIMEOUT": "50"}
    run = h.ScriptRun("app.py", "-c", str(conf), "--timeout", "60", env=env)
    ready = run.wait_ready()
    demo = ready["monitors"]["demo"]
    assert len(demo["pids"]) == 2  # env beats the file
    assert demo["timeout"] == 60  # the command line beats env and file
    info = h.guest_call(ready["address"], "config", "get", "graceful_timeout")
    assert info == 7  # the file beats the default
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish()[0] == 0


def test_hooks_and_worker_info(tmp_path) -> None:
    run = h.ScriptRun("app.py", "--workers", "2", env={"APP_MARKERS": str(tmp_path)})
    ready = run.wait_ready()
    demo = ready["monitors"]["demo"]
    assert demo["demo"] == demo["pids"]  # worker_info hook ran in each worker
    assert markers(tmp_path) == ["monitor_start-demo"] + ["worker_start-demo"] * 2
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err[-2000:]
    assert markers(tmp_path) == sorted(
        ["monitor_start-demo", "monitor_stopping-demo"]
        + ["worker_start-demo"] * 2
        + ["worker_stopping-demo"] * 2
    )
    # the hooks ran where they should: monitor hooks in the arbiter, worker hooks in workers
    for name in os.listdir(tmp_path):
        pid = int(name.rsplit("-", 1)[1])
        expected = [ready["arbiter"]] if name.startswith("monitor") else demo["pids"]
        assert pid in expected


def test_workers_zero_runs_inside_the_arbiter(tmp_path) -> None:
    run = h.ScriptRun("app.py", "--workers", "0", env={"APP_MARKERS": str(tmp_path)})
    ready = run.wait_ready()
    assert ready["monitors"] == {}
    started = [n for n in os.listdir(tmp_path) if n.startswith("worker_start")]
    assert started == [f"worker_start-demo-{ready['arbiter']}"]
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish()[0] == 0
    assert f"worker_stopping-demo-{ready['arbiter']}" in os.listdir(tmp_path)


def test_multiapp_prefixed_settings() -> None:
    run = h.ScriptRun("app.py", "multi", "--a-workers", "1", "--b-workers", "2", "--b-timeout", "9")
    ready = run.wait_ready()
    assert len(ready["monitors"]["a"]["pids"]) == 1
    assert len(ready["monitors"]["b"]["pids"]) == 2
    assert ready["monitors"]["b"]["timeout"] == 9 and ready["monitors"]["a"]["timeout"] == 30
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish()[0] == 0


def test_graceful_stop_waits_for_in_flight_work(tmp_path) -> None:
    env = {"APP_MARKERS": str(tmp_path), "APP_STOP_DELAY": "0.5"}
    run = h.ScriptRun("app.py", "--workers", "1", "--graceful-timeout", "10", env=env)
    run.wait_ready()
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err[-2000:]
    assert "worker_stopping-demo" in markers(tmp_path)  # finished its 0.5 s of work


def test_graceful_timeout_kills_a_slow_worker(tmp_path) -> None:
    env = {"APP_MARKERS": str(tmp_path), "APP_STOP_DELAY": "30"}
    run = h.ScriptRun("app.py", "--workers", "1", "--graceful-timeout", "1", env=env)
    pids = run.wait_ready()["monitors"]["demo"]["pids"]
    start = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0
    assert time.monotonic() - start < 10
    assert "did not stop in time: SIGKILL" in err
    assert "worker_stopping-demo" not in markers(tmp_path)
    assert not any(psutil.pid_exists(p) for p in pids)


def test_ttin_ttou() -> None:
    run = h.ScriptRun("app.py", "--workers", "2")
    ready = run.wait_ready()
    address = ready["address"]

    def workers() -> int:
        info = h.guest_call(address, "info")
        demo = info["monitors"]["demo"]
        running = [w for w in demo["workers"] if w.get("state") == "RUNNING"]
        return demo["workers_target"] if len(running) == demo["workers_target"] else -1

    run.proc.send_signal(signal.SIGTTIN)
    h.wait_for(lambda: workers() == 3)
    run.proc.send_signal(signal.SIGTTOU)
    h.wait_for(lambda: workers() == 2)
    run.proc.send_signal(signal.SIGTTOU)
    h.wait_for(lambda: workers() == 1)
    run.proc.send_signal(signal.SIGTTOU)  # never below one worker
    time.sleep(0.5)
    assert workers() == 1
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0 and "keeping at least one worker" in err


def test_hup_reloads_config_and_rolls_workers(tmp_path) -> None:
    conf = tmp_path / "conf.py"
    conf.write_text("timeout = 40\n")
    run = h.ScriptRun("app.py", "--workers", "2", "-c", str(conf))
    ready = run.wait_ready()
    old = set(ready["monitors"]["demo"]["pids"])
    address = ready["address"]
    conf.write_text("timeout = 45\n")
    run.proc.send_signal(signal.SIGHUP)

    def rolled():
        info = h.guest_call(address, "info")
        workers = info["monitors"]["demo"]["workers"]
        pids = {w["pid"] for w in workers if w.get("state") == "RUNNING"}
        return pids if len(pids) == 2 and not pids & old else None

    new = h.wait_for(rolled, timeout=30)
    assert not new & old
    info = h.guest_call(address, "info")
    assert info["monitors"]["demo"]["restarts"] == 0  # a roll is not a failure
    # the new workers run with the reloaded configuration
    for worker in info["monitors"]["demo"]["workers"]:
        assert h.guest_call(address, "config", "get", "timeout", target=worker["aid"]) == 45
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err[-2000:]
    assert not any(psutil.pid_exists(p) for p in old | new)


def test_pidfile_live_stale_and_removed(tmp_path) -> None:
    pidfile = tmp_path / "app.pid"
    run = h.ScriptRun("app.py", "--workers", "1", "--pidfile", str(pidfile))
    ready = run.wait_ready()
    assert int(pidfile.read_text()) == ready["arbiter"]
    assert (tmp_path / "app.pid.mailbox").read_text().strip() == ready["address"]
    second = run_cli("--workers", "1", "--pidfile", str(pidfile))
    assert second.returncode == pulsar.ExitCode.BOOT_ERROR
    assert f"held by running process {ready['arbiter']}" in second.stderr
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish()[0] == 0
    assert not pidfile.exists()
    # a stale pidfile (dead process) is replaced
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    run = h.ScriptRun("app.py", "--workers", "1", "--pidfile", str(pidfile))
    ready = run.wait_ready()
    assert int(pidfile.read_text()) == ready["arbiter"]
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0 and "replacing stale pidfile" in err


def test_daemon(tmp_path) -> None:
    pidfile = tmp_path / "d.pid"
    log = tmp_path / "d.log"
    out = run_cli(
        "--workers", "1", "--daemon", "--pidfile", str(pidfile), "--error-logfile", str(log)
    )
    assert out.returncode == 0  # the launcher returns at once
    pid = int(h.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
    proc = psutil.Process(pid)
    assert os.getsid(pid) != os.getsid(0)  # detached: a session of its own (setsid)
    assert psutil.Process(pid).terminal() is None
    address = (tmp_path / "d.pid.mailbox").read_text().strip()
    info = h.wait_for(
        lambda: (i := h.guest_call(address, "info"))["monitors"]["demo"]["workers"] and i
    )
    workers = [w["pid"] for w in info["monitors"]["demo"]["workers"]]
    os.kill(pid, signal.SIGTERM)
    h.wait_for(lambda: not psutil.pid_exists(pid) or proc.status() == psutil.STATUS_ZOMBIE)
    h.wait_for(lambda: not any(psutil.pid_exists(p) for p in workers))
    assert not pidfile.exists()
    # --daemon keeps its logs: the error log file has the arbiter's and the worker's lines
    text = log.read_text()
    assert f"demo: worker {info['monitors']['demo']['workers'][0]['aid']} started" in text
    assert "arbiter stopped (exit code 0)" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_workers_switch_user() -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")

    async def main(arbiter):
        proxy = await pulsar.spawn(name="unprivileged", user="nobody", group=nobody.pw_gid)
        return await pulsar.send(proxy, "run", _ids)

    assert h.run_arbiter(main) == (nobody.pw_uid, nobody.pw_gid)


def _ids(actor):
    return os.getuid(), os.getgid()


def test_log_config_file(tmp_path) -> None:
    log = tmp_path / "pulsar.log"
    conf = tmp_path / "logging.json"
    conf.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"f": {"format": "CUSTOM %(process)d %(name)s %(message)s"}},
                "handlers": {
                    "file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "f"}
                },
                "root": {"level": "INFO", "handlers": ["file"]},
            }
        )
    )
    run = h.ScriptRun("app.py", "--workers", "1", "--log-config", str(conf))
    run.wait_ready()
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish()[0] == 0
    text = log.read_text()
    assert "CUSTOM" in text and "arbiter stopped" in text


def test_reload_restarts_on_source_change(tmp_path) -> None:
    module = tmp_path / "reloadme.py"
    module.write_text("VALUE = 1\n")
    script = tmp_path / "reloading.py"
    script.write_text(
        "import asyncio, os, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import pulsar, reloadme\n"
        "async def ready(arbiter):\n"
        "    print('READY', reloadme.VALUE, os.getpid(), flush=True)\n"
        "if __name__ == '__main__':\n"
        "    sys.exit(pulsar.arbiter(start=ready, reload=True, log_level='info').start())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = proc.stdout.readline().split()
        assert first[:2] == ["READY", "1"]
        time.sleep(1.1)  # mtime resolution
        module.write_text("VALUE = 2\n")
        second = proc.stdout.readline().split()
        assert second[:2] == ["READY", "2"]
        assert second[2] == first[2]  # re-executed in place (same pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "reloading" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
