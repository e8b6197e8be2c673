"""Asynchronous scripts: ``pulsar-shell script.py [args]``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from shell_helpers import wait_gone

TIMEOUT = 60


def run_shell(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulsar.apps.shell", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def write(tmp_path: Path, source: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_script_awaits_on_a_running_arbiter_and_exits_with_its_status(tmp_path, shell_env) -> None:
    script = write(
        tmp_path,
        """
        import sys
        proxy = await spawn(name="scripted")
        info = await send(proxy, "info")
        print("pong:", await send(proxy, "ping"), "args:", sys.argv[1:], "name:", __name__)
        print("pid:", info["pid"], "running:", arbiter.is_running())
        sys.exit(3)
        """,
    )
    result = run_shell(script, "a", "--b", env=shell_env)
    assert result.returncode == 3, result.stderr
    assert "pong: pong args: ['a', '--b'] name: __main__" in result.stdout
    pid = int(result.stdout.split("pid:")[1].split()[0])
    assert "running: True" in result.stdout
    assert wait_gone([pid]) == []


def test_script_without_exit_returns_zero(tmp_path, shell_env) -> None:
    script = write(tmp_path, "await asyncio.sleep(0.01)\nprint('done')\n")
    result = run_shell("--io", "asyncio", script, env=shell_env)
    assert (result.returncode, result.stdout.strip()) == (0, "done"), result.stderr


def test_script_exception_prints_traceback_and_exits_1(tmp_path, shell_env) -> None:
    script = write(
        tmp_path,
        """
        async def fail():
            raise RuntimeError("script failed")
        await fail()
        """,
    )
    result = run_shell(script, env=shell_env)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: script failed" in result.stderr
    assert 'script.py", line 4' in result.stderr
    assert "_script.py" not in result.stderr


def test_script_syntax_error_and_missing_file(tmp_path, shell_env) -> None:
    result = run_shell(write(tmp_path, "def broken(:\n"), env=shell_env)
    assert result.returncode == 1 and "SyntaxError" in result.stderr
    result = run_shell(str(tmp_path / "missing.py"), env=shell_env)
    assert result.returncode == 2 and "can't open file" in result.stderr


def test_script_with_imports_and_message_exit(tmp_path, shell_env) -> None:
    script = write(tmp_path, "import sys\nsys.exit(json.dumps('bye'))\n")
    result = run_shell("--imports", "json", script, env=shell_env)
    assert result.returncode == 1
    assert result.stderr.strip().endswith('"bye"')


def test_script_attached_to_a_running_application(tmp_path, shell_env, running_app) -> None:
    script = write(
        tmp_path,
        """
        info = await send("arbiter", "info")
        print(len(info["monitors"]["demo"]["workers"]), type(arbiter).__name__)
        """,
    )
    result = run_shell("--attach", running_app["pidfile"], script, env=shell_env)
    assert (result.returncode, result.stdout.split()) == (0, ["2", "RemoteActor"]), result.stderr
    assert running_app["proc"].poll() is None


def test_console_script_imports_modules_of_the_current_folder(tmp_path) -> None:
    """``pulsar-shell --imports jobs`` in the folder holding ``jobs.py`` (as ``python -m``)."""
    import os
    import subprocess
    import sys

    (tmp_path / "jobs.py").write_text("VALUE = 42\n")
    script = os.path.join(os.path.dirname(sys.executable), "pulsar-shell")
    result = subprocess.run(
        [script, "--imports", "jobs"],
        input='print("JOBS", jobs.VALUE)\n',
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "JOBS 42" in result.stdout
    assert "cannot import" not in result.stderr
