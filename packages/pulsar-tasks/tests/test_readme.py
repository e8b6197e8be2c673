"""The README quick start runs as written, from a fresh folder (its jobs.py and its commands),
and the worker's INFO lines show what it does."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import tq_helpers as h

README = os.path.join(os.path.dirname(h.HERE), "README.md")


def _quick_start() -> tuple[str, list[str]]:
    with open(README) as f:
        text = f.read()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shell = re.search(r"```bash\n(.*?)```", section, re.S)
    assert code and shell
    commands = [line.split("  #")[0].strip() for line in shell.group(1).splitlines()]
    return code.group(1), [c for c in commands if c]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PULSAR_BACKEND")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def test_readme_quick_start_runs_verbatim_from_a_fresh_folder(tmp_path) -> None:
    code, commands = _quick_start()
    assert code.startswith("# jobs.py")
    (tmp_path / "jobs.py").write_text(code)
    assert shutil.which("pulsar-tasks", path=_env()["PATH"]), "pulsar-tasks is not installed"
    worker_cmd = next(c for c in commands if c.startswith("pulsar-tasks worker"))
    worker = subprocess.Popen(
        "exec " + worker_cmd,  # the shell becomes the arbiter: SIGTERM goes to it
        shell=True,
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert worker.stdout is not None
        deadline = time.monotonic() + 60
        while sum("ready" in line for line in lines) < 2 and time.monotonic() < deadline:
            line = worker.stdout.readline()
            if not line:
                break
            lines.append(line)
        ready = [line for line in lines if " ready: backend sqlite:///tasks.db" in line]
        assert len(ready) == 2, "".join(lines)  # --workers 2
        assert "concurrency 20" in ready[0] and "images" in ready[0]
        outputs = {}
        for command in commands:
            if command.startswith("pulsar-tasks worker"):
                continue
            if "<ID>" in command:
                command = command.replace("<ID>", outputs["queue"].split()[1])
            out = subprocess.run(
                command,
                shell=True,
                cwd=tmp_path,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, (command, out.stdout, out.stderr)
            assert "Traceback" not in out.stderr, (command, out.stderr)
            outputs.setdefault(command.split()[1], out.stdout)
        assert "SUCCESS" in outputs["queue"] and re.search(r"result\s+3\b", outputs["queue"])
        assert "add" in outputs["jobs"] and "Resize" in outputs["jobs"]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            rest, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            rest, _ = worker.communicate()
    log = "".join(lines) + rest
    assert worker.returncode == 0, log[-3000:]
    # one INFO line per task received and succeeded (with its run time)
    assert re.search(r"task add\[\w+\] received", log), log[-3000:]
    assert re.search(r"task add\[\w+\] succeeded in \d+\.\d+s: 3", log), log[-3000:]
