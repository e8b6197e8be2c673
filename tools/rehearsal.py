#!/usr/bin/env python3
"""Release rehearsal: publish every package to a real local index, then install each alone.

``hatch run release-rehearsal`` (CI runs it on every submission) does what a release does, on a
real package index instead of PyPI:

1. copies ``packages/`` and the root ``pyproject.toml`` into a temporary directory outside the
   workspace; when the version has no dated CHANGELOG section yet (an unreleased tree), the
   copy's ``## Unreleased`` sections are dated as that version, as ``bump`` would;
2. builds every sdist and wheel there (``release.build``: isolated builds, ``twine check``);
3. starts pypiserver on 127.0.0.1 (a free port, an htpasswd user with a random password, its own
   temporary folder, no fallback to another index) and uploads every package with
   ``release.publish``, i.e. ``twine upload --repository-url`` as the release workflow does
   against PyPI; then checks that a second upload of the same version is refused, both by
   ``publish``'s look-up of the index and by the index itself (HTTP 409 through twine);
4. for each package, a fresh venv installs it **by name** with ``pip install --index-url <local>
   --extra-index-url <the usual index> NAME`` and checks that the installed pulsar distributions
   are exactly that package and the pulsar packages its metadata requires (recursively, no
   extras), that each came from the local index at the released version, that
   ``pulsar.__version__`` is that version, and that the README's quick-start example runs and
   does what the README says (servers are started on a free port, asked what the README asks,
   and stopped by PID);
5. stops the index (by PID, also on failure) and removes the temporary directory.

Exit status 0 when every check passed, 1 otherwise (each failure on one line).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import release  # tools/release.py, next to this file
from release import ReleaseError

__all__ = [
    "LocalIndex",
    "QUICK_STARTS",
    "claims_to_checks",
    "code_blocks",
    "expected_pulsar_closure",
    "installation_problems",
    "main",
    "readme_section",
    "rehearse",
]

DEFAULT_ROOT = release.DEFAULT_ROOT
DEFAULT_EXTRA_INDEX = "https://pypi.org/simple/"
COPY_IGNORE = shutil.ignore_patterns(
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info", "dist", "build"
)
START_TIMEOUT = 60.0  # seconds for a server (the index, a README example) to answer
STOP_TIMEOUT = 30.0  # seconds for it to exit after SIGTERM
RUN_TIMEOUT = 300.0  # seconds for one command (a pip install, an example run)


def log(message: str) -> None:
    """One line of progress on stdout."""
    print(f"rehearsal: {message}", flush=True)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -------------------------------------------------------------------------------- processes


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc: subprocess.Popen[bytes], what: str, timeout: float = STOP_TIMEOUT) -> int:
    """Stop ``proc`` (started in a session of its own) by its PID: SIGTERM, then SIGKILL.

    Waits, with a deadline, for every process of its group to be gone too (a server's workers).

    Returns:
        Its exit status (negative: the signal that ended it).

    Raises:
        ReleaseError: when it had to be killed or left processes behind.
    """
    problems = []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"{what} (pid {proc.pid}) ignored SIGTERM for {timeout:.0f} s")
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(proc.pid):
        problems.append(f"{what} (pid {proc.pid}) left processes behind after it exited")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if problems:
        raise ReleaseError("; ".join(problems))
    return int(proc.returncode)


def http_request(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns status, headers (lower-case names) and body, errors included."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def wait_until_serving(
    proc: subprocess.Popen[bytes], url: str, what: str, output: Path, timeout: float = START_TIMEOUT
) -> None:
    """Poll ``url`` until any HTTP answer comes back; fail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ReleaseError(
                f"{what} exited with status {proc.returncode} before serving {url}:\n"
                + _tail(output)
            )
        try:
            http_request(url, timeout=2)
            return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise ReleaseError(f"{what} does not answer on {url} after {timeout:.0f} s")
        time.sleep(0.1)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def background(
    cmd: Sequence[str | Path], *, cwd: Path, env: dict[str, str], output: Path, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` in a session of its own, output to ``output``; stopped by PID on exit."""
    print(f"$ {' '.join(map(str, cmd))} &", flush=True)
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            stop_process(proc, what)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
    check: bool = True,
    shown: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (no stdin, output captured, killed past ``timeout``)."""
    shown = shown or " ".join(shlex.quote(str(c)) for c in cmd)
    print(f"$ {shown}", flush=True)
    with subprocess.Popen(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ReleaseError(f"timed out after {timeout:.0f} s: {shown}") from None
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise ReleaseError(f"exit status {result.returncode}: {shown}\n{(stdout + stderr).strip()}")
    return result


# ------------------------------------------------------------------------------------- index


class LocalIndex:
    """pypiserver on 127.0.0.1 in ``workdir``: uploads need the htpasswd user, downloads do not.

    No fallback: a package it does not have is a 404, so that pip's ``--extra-index-url`` is the
    only other source. Used as a context manager; stopped by PID on exit, also on failure.
    """

    username = "rehearsal"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.packages = workdir / "packages"
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "pypiserver.log"

    @property
    def upload_url(self) -> str:
        """The endpoint given to ``twine upload --repository-url``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def simple_url(self) -> str:
        """The PEP 503 simple index given to ``pip install --index-url``."""
        return f"http://127.0.0.1:{self.port}/simple/"

    @property
    def credentials(self) -> dict[str, str]:
        """twine's environment variables for this index."""
        return {"TWINE_USERNAME": self.username, "TWINE_PASSWORD": self.password}

    def _write_htpasswd(self) -> Path:
        try:
            with warnings.catch_warnings():  # passlib imports the deprecated crypt module
                warnings.simplefilter("ignore", DeprecationWarning)
                from passlib.apache import HtpasswdFile
        except ImportError:
            raise ReleaseError(
                "passlib is missing (pypiserver[passlib]): run `hatch run release-rehearsal`"
            ) from None
        path = self.workdir / "htpasswd"
        htpasswd = HtpasswdFile(str(path), new=True)
        htpasswd.set_password(self.username, self.password)
        htpasswd.save()
        path.chmod(0o600)
        return path

    def start(self) -> None:
        """Start the server on a free port and wait until it answers (three ports tried)."""
        self.packages.mkdir(parents=True, exist_ok=True)
        htpasswd = self._write_htpasswd()
        for attempt in range(3):
            self.port = free_port()
            cmd = [
                sys.executable,
                "-m",
                "pypiserver",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--passwords",
                str(htpasswd),
                "--authenticate",
                "update",
                "--disable-fallback",
                str(self.packages),
            ]
            print(f"$ {' '.join(cmd)} &", flush=True)
            with self.log.open("ab") as out:
                self.process = subprocess.Popen(
                    cmd,
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_until_serving(self.process, self.simple_url, "pypiserver", self.log)
            except ReleaseError:
                in_use = "Address already in use" in _tail(self.log)
                self.stop()
                if in_use and attempt < 2:
                    continue  # another process took the port in between: take another one
                raise
            except BaseException:  # Ctrl-C while waiting: never leave the server behind
                self.stop()
                raise
            log(f"index: pypiserver (pid {self.process.pid}) serves {self.simple_url}")
            return

    def stop(self) -> None:
        """Stop the server by its PID (idempotent)."""
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc, "pypiserver")
            log(f"index: pypiserver (pid {proc.pid}) stopped")

    def __enter__(self) -> LocalIndex:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------ README


def readme_section(text: str, heading: str) -> str:
    """The body of the Markdown section titled ``heading`` (any level), up to the next one."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*?)\s*$", line)
        if m and m[2] == heading:
            level = len(m[1])
            body = []
            in_code = False
            for following in lines[i + 1 :]:
                if following.startswith("```"):
                    in_code = not in_code
                n = re.match(r"^(#+)\s", following)
                if n and not in_code and len(n[1]) <= level:
                    break
                body.append(following)
            return "\n".join(body) + "\n"
    raise ReleaseError(f"no section {heading!r}")


def code_blocks(text: str, language: str | None = None) -> list[str]:
    """The fenced code blocks of ``text`` (only those of ``language`` when given)."""
    blocks = re.findall(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S)
    return [code for lang, code in blocks if language is None or lang == language]


CLAIM_RE = re.compile(r"^(?P<indent>\s*)(?P<expr>\S.*?)\s+#\s*(?P<claim>\S.*?)\s*$")


def _claim_is_checkable(claim: str) -> bool:
    try:
        ast.literal_eval(claim)
        return True
    except (ValueError, SyntaxError):
        pass
    try:
        node = ast.parse(claim, mode="eval").body
    except SyntaxError:
        return False
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.keywords:
        return False
    try:
        for arg in node.args:
            ast.literal_eval(arg)
    except ValueError:
        return False
    return True


def claims_to_checks(code: str) -> tuple[str, int]:
    """Turn each ``<expression>  # <value>`` line of README code into a check of that value.

    ``<value>`` is a Python literal (``# 3``, ``# 'pong'``) or an exception written as a call
    with literal arguments (``# ServerError(-32001, 'division by zero', {'a': 1})``: the class
    name and the ``code, message, data`` or ``args``). Other comments are left as they are.

    Returns:
        The code (calling ``_claim(value, text, line)``) and how many checks it holds.
    """
    out = []
    count = 0
    for number, line in enumerate(code.splitlines(), 1):
        m = CLAIM_RE.match(line)
        if m and _claim_is_checkable(m["claim"]):
            try:
                ast.parse(m["expr"], mode="eval")
            except SyntaxError:
                out.append(line)
                continue
            out.append(f"{m['indent']}_claim({m['expr']}, {m['claim']!r}, {number})")
            count += 1
        else:
            out.append(line)
    return "\n".join(out) + "\n", count


CLAIM_PRELUDE = r"""
import ast as _ast


def _claim(value, text, line):
    try:
        expected = _ast.literal_eval(text)
    except ValueError:
        call = _ast.parse(text, mode="eval").body
        args = tuple(_ast.literal_eval(a) for a in call.args)
        got = (
            (value.code, value.message, value.data)
            if all(hasattr(value, k) for k in ("code", "message", "data"))
            else getattr(value, "args", None)
        )
        if type(value).__name__ != call.func.id or got != args:
            raise SystemExit(f"README line {line}: got {value!r}, the README says {text}")
    else:
        if value != expected:
            raise SystemExit(f"README line {line}: got {value!r}, the README says {text}")
    print(f"README line {line}: {text} as the README says")
"""


def run_top_level_await(code: str) -> str:
    """A script running ``code`` whose top level may ``await`` (README snippets often do)."""
    return (
        CLAIM_PRELUDE
        + "\nimport asyncio as _asyncio\n"
        + f"_CODE = {code!r}\n"
        + "_compiled = compile(_CODE, 'README', 'exec', flags=_ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)\n"
        + "_result = eval(_compiled, {'__name__': '__main__', '_claim': _claim})\n"
        + "if _result is not None:\n"
        + "    _asyncio.run(_result)\n"
    )


# -------------------------------------------------------------------------------- quick starts


@dataclass
class Venv:
    """A fresh virtual environment holding one package installed from the index."""

    root: Path
    work: Path  # a scratch folder outside the workspace, the examples' working directory
    version: str = ""  # the released version

    @property
    def bin(self) -> Path:
        """The venv's scripts folder."""
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    @property
    def env(self) -> dict[str, str]:
        """The environment of a shell with the venv activated (no PYTHONPATH).

        ``TMPDIR`` is a folder of the rehearsal's own (mailbox folders, sockets), removed with it.
        """
        env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
        tmp = self.work / "tmp"
        tmp.mkdir(exist_ok=True)
        env["TMPDIR"] = str(tmp)
        env["VIRTUAL_ENV"] = str(self.root)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        return env


@dataclass(frozen=True)
class QuickStart:
    """Where a package's README quick start is and how to run it and check what it says."""

    section: str
    run: Callable[[Venv, str], list[str]]  # (venv, section text) -> what it checked
    summary: str = ""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ReleaseError(message)


def _one_block(section: str, language: str, what: str, index: int = 0) -> str:
    blocks = code_blocks(section, language)
    _expect(len(blocks) > index, f"README section {what!r} lost its ```{language} block")
    return blocks[index]


def _quick_start_core(venv: Venv, section: str) -> list[str]:
    code = _one_block(section, "python", "Example")
    claims = re.findall(r"print\(.*\)\s*#\s*(.+?)\s*$", code, re.M)
    _expect(bool(claims), "README Example: no `print(...)  # output` line to check")
    (venv.work / "example.py").write_text(code, encoding="utf-8")
    result = run([venv.python, "example.py"], cwd=venv.work, env=venv.env, timeout=120)
    lines = result.stdout.splitlines()
    for claim in claims:
        _expect(claim in lines, f"README Example printed {lines!r}, the README says {claim!r}")
    return [f"`python example.py` printed {claims!r} and exited 0"]


def _serve_hello(venv: Venv, cmd: Sequence[str | Path], port: int, body_expected: bytes) -> str:
    """Start ``cmd`` serving the hello world on ``port``, GET /, check it, stop it by PID."""
    url = f"http://127.0.0.1:{port}/"
    shown = " ".join(Path(c).name if isinstance(c, Path) else c for c in cmd)
    output = venv.work / "hello.log"
    with background(cmd, cwd=venv.work, env=venv.env, output=output, what=shown) as proc:
        wait_until_serving(proc, url, shown, output)
        status, headers, body = http_request(url)
        _expect(status == 200, f"`{shown}`: GET {url}: status {status}, not 200")
        _expect(body == body_expected, f"GET {url}: body {body!r}, not {body_expected!r}")
        _expect(
            headers.get("content-type") == "text/plain",
            f"GET {url}: Content-Type {headers.get('content-type')!r}, not 'text/plain'",
        )
        code_at_stop = stop_process(proc, shown)
    _expect(
        code_at_stop == 0,
        f"`{shown}` exited with {code_at_stop} after SIGTERM, not 0\n" + _tail(output),
    )
    return f"`{shown}` answered GET / with 200 {body_expected!r} and exited 0 on SIGTERM"


def _quick_start_wsgi(venv: Venv, section: str) -> list[str]:
    code = _one_block(section, "python", "Usage")
    m = re.search(r'^\s*data\s*=\s*(b"[^"\n]*")', code, re.M)
    _expect(m is not None, 'README Usage: no `data = b"..."` line telling the response body')
    assert m is not None
    body_expected = ast.literal_eval(m[1])
    _expect("127.0.0.1:8060" in section, "README Usage no longer names 127.0.0.1:8060")
    (venv.work / "hello.py").write_text(code, encoding="utf-8")
    port = free_port()
    bind = ["--bind", f"127.0.0.1:{port}"]
    done = [_serve_hello(venv, [venv.python, "hello.py", *bind], port, body_expected)]
    # the gunicorn-style launcher of the same section, on the same callable
    launcher = _one_block(section, "bash", "Usage").splitlines()[0].split()
    _expect(launcher[:1] == ["pulsar-wsgi"], "README Usage: the launcher line is not first")
    port = free_port()
    bind = ["--bind", f"127.0.0.1:{port}"]
    done.append(_serve_hello(venv, ["pulsar-wsgi", "hello:hello", *bind], port, body_expected))
    return done


def _quick_start_rpc(venv: Venv, section: str) -> list[str]:
    server = _one_block(section, "python", "Server")
    readme = (venv.work / "README.md").read_text(encoding="utf-8")
    client = _one_block(readme_section(readme, "Client"), "python", "Client")
    _expect("http://127.0.0.1:8060/" in client, "README Client no longer uses :8060")
    (venv.work / "server.py").write_text(server, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    checked, count = claims_to_checks(client.replace("http://127.0.0.1:8060/", url))
    _expect(count > 0, "README Client: no `call  # result` line to check")
    (venv.work / "client.py").write_text(run_top_level_await(checked), encoding="utf-8")
    output = venv.work / "server.log"
    cmd: list[str | Path] = [venv.python, "server.py", "--bind", f"127.0.0.1:{port}"]
    with background(cmd, cwd=venv.work, env=venv.env, output=output, what="server.py") as proc:
        wait_until_serving(proc, url, "server.py", output)
        result = run([venv.python, "client.py"], cwd=venv.work, env=venv.env, timeout=120)
        code_at_stop = stop_process(proc, "server.py")
    _expect(code_at_stop == 0, f"server.py exited with {code_at_stop} after SIGTERM, not 0")
    return [
        f"`python server.py` served the README Client code: {count} results as the README says",
        *[line for line in result.stdout.splitlines() if "as the README says" in line],
    ]


def _quick_start_tasks(venv: Venv, section: str) -> list[str]:
    code = _one_block(section, "python", "Quick start")
    first = code.splitlines()[0]
    m = re.fullmatch(r"#\s*(\w+)\.py", first.strip())
    _expect(m is not None, "README Quick start: the python block no longer starts `# name.py`")
    assert m is not None
    (venv.work / f"{m[1]}.py").write_text(code, encoding="utf-8")
    commands = []
    env = venv.env
    for line in _one_block(section, "bash", "Quick start").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if m := re.fullmatch(r"export (\w+)=(\S*)", line):
            env[m[1]] = shlex.split(m[2])[0] if m[2] else ""  # as a shell would, for what follows
        elif line:
            commands.append(shlex.split(line))
    workers = [c for c in commands if c[:2] == ["pulsar-tasks", "worker"]]
    _expect(len(workers) == 1, "README Quick start: expected one `pulsar-tasks worker` line")
    output = venv.work / "worker.log"
    done: list[str] = []
    with background(workers[0], cwd=venv.work, env=env, output=output, what="worker") as proc:
        backend = workers[0][workers[0].index("--backend") + 1]
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # the worker publishes its jobs once it runs
            if proc.poll() is not None:
                raise ReleaseError(
                    f"`{shlex.join(workers[0])}` exited with {proc.returncode}:\n" + _tail(output)
                )
            jobs = run(
                ["pulsar-tasks", "jobs", "--backend", backend], cwd=venv.work, env=env, check=False
            )
            if jobs.returncode == 0 and re.search(r"^add\s", jobs.stdout, re.M):
                break
            _expect(
                time.monotonic() < deadline,
                "the worker published no job in time:\n" + _tail(output),
            )
            time.sleep(0.5)
        task_id: str | None = None
        for cmd in commands:
            if cmd is workers[0]:
                continue
            if "<ID>" in cmd:
                if task_id is None:
                    raise ReleaseError("README: `status <ID>` before any queued task")
                cmd = [task_id if c == "<ID>" else c for c in cmd]
            result = run(cmd, cwd=venv.work, env=env)
            out = result.stdout
            if cmd[1] == "queue":
                id_line = re.search(r"^id\s+(\S+)", out, re.M)
                _expect(id_line is not None, f"`{shlex.join(cmd)}` printed no task id:\n{out}")
                assert id_line is not None
                task_id = id_line[1]
                _expect(
                    bool(re.search(r"^status\s+SUCCESS$", out, re.M)),
                    f"`{shlex.join(cmd)}`: the task did not succeed:\n{out}",
                )
                _expect(
                    bool(re.search(r"^result\s+3$", out, re.M)),
                    f"`{shlex.join(cmd)}`: add(a=1, b=2) is not 3:\n{out}",
                )
                done.append(f"`{shlex.join(cmd)}` waited for the task: SUCCESS, result 3")
            elif cmd[1] == "status" and task_id in cmd:
                _expect(
                    bool(re.search(r"^status\s+SUCCESS$", out, re.M)),
                    f"`{shlex.join(cmd)}` does not show the task's SUCCESS:\n{out}",
                )
                done.append("`pulsar-tasks status <ID>` shows the task, SUCCESS")
            elif cmd[1] == "status":
                _expect(
                    task_id is not None and task_id in out and "SUCCESS" in out,
                    f"`{shlex.join(cmd)}`: no row of the task:\n{out}",
                )
                done.append("`pulsar-tasks status` lists the task as SUCCESS")
            elif cmd[1] == "jobs":
                for name in ("add", "fetch", "cleanup"):
                    _expect(
                        bool(re.search(rf"^{name}\s", out, re.M)),
                        f"`{shlex.join(cmd)}` does not list the job {name}:\n{out}",
                    )
                _expect("*/5 * * * *" in out, f"`{shlex.join(cmd)}`: no cron of cleanup:\n{out}")
                done.append("`pulsar-tasks jobs` lists add, fetch and cleanup with its cron")
        code_at_stop = stop_process(proc, "worker")
    _expect(code_at_stop == 0, f"the worker exited with {code_at_stop} after SIGTERM, not 0")
    return [f"`{shlex.join(workers[0])}` ran and stopped cleanly on SIGTERM", *done]


def _quick_start_dashboard(venv: Venv, section: str) -> list[str]:
    """``hello.py`` served by ``pulsar-wsgi ... --dashboard`` (the first bash block), then by
    ``pulsar-wsgi ... --pidfile app.pid`` with ``pulsar-dashboard --attach app.pid`` (the
    second), each on free ports: ``/metrics`` has the claimed line and the actors page both
    workers, and every process exits 0 on SIGTERM."""
    code = _one_block(section, "python", "Quick start")
    first = code.splitlines()[0].strip()
    _expect(
        first == "# hello.py", "README Quick start: the python block no longer starts `# hello.py`"
    )
    (venv.work / "hello.py").write_text(code, encoding="utf-8")

    def commands_of(block: str) -> list[list[str]]:
        lines = [
            re.sub(r"\s+#.*$", "", line).strip().removesuffix("&").strip()
            for line in block.splitlines()
        ]
        return [shlex.split(line) for line in lines if line]

    beside = _one_block(section, "bash", "Quick start")
    commands = commands_of(beside)
    _expect(
        len(commands) == 2
        and commands[0][:1] == ["pulsar-wsgi"]
        and commands[0][-1:] == ["--dashboard"]
        and commands[1][:1] == ["curl"],
        "README Quick start: expected `pulsar-wsgi ... --dashboard`, then `curl .../metrics`",
    )
    m = re.search(r"#\s*(pulsar_workers\{.*)$", beside, re.M)
    _expect(
        m is not None, "README Quick start: no `# pulsar_workers{...} N` claim on the curl line"
    )
    assert m is not None
    claim = m[1].strip()
    app_port, dash_port = free_port(), free_port()
    app_cmd = [*commands[0], f"127.0.0.1:{dash_port}", "--bind", f"127.0.0.1:{app_port}"]
    app_log = venv.work / "app-dashboard.log"
    with background(app_cmd, cwd=venv.work, env=venv.env, output=app_log, what="app") as app:
        wait_until_serving(app, f"http://127.0.0.1:{app_port}/", "pulsar-wsgi", app_log)
        _check_dashboard(app, f"http://127.0.0.1:{dash_port}", claim, app_log)
        app_code = stop_process(app, "pulsar-wsgi --dashboard")
    _expect(app_code == 0, f"pulsar-wsgi --dashboard exited with {app_code} on SIGTERM, not 0")
    done = [
        f"`pulsar-wsgi hello:hello --workers 2 --dashboard`: /metrics has {claim!r}, / shows "
        "both workers; exited 0 on SIGTERM"
    ]

    commands = commands_of(_one_block(section, "bash", "Quick start (attach)", index=1))
    _expect(
        len(commands) == 2
        and commands[0][:1] == ["pulsar-wsgi"]
        and commands[1][:1] == ["pulsar-dashboard"]
        and "--pidfile" in commands[0]
        and "--attach" in commands[1],
        "README Quick start: expected `pulsar-wsgi ... --pidfile`, `pulsar-dashboard --attach`",
    )
    app_port, dash_port = free_port(), free_port()
    app_cmd = [*commands[0], "--bind", f"127.0.0.1:{app_port}"]
    dash_cmd = [*commands[1], "--bind", f"127.0.0.1:{dash_port}", "--interval", "0.3"]
    app_log, dash_log = venv.work / "app.log", venv.work / "dashboard.log"
    with background(app_cmd, cwd=venv.work, env=venv.env, output=app_log, what="app") as app:
        wait_until_serving(app, f"http://127.0.0.1:{app_port}/", "pulsar-wsgi", app_log)
        with background(
            dash_cmd, cwd=venv.work, env=venv.env, output=dash_log, what="dashboard"
        ) as dash:
            _check_dashboard(dash, f"http://127.0.0.1:{dash_port}", claim, dash_log)
            dash_code = stop_process(dash, "pulsar-dashboard")
        app_code = stop_process(app, "pulsar-wsgi")
    _expect(dash_code == 0, f"pulsar-dashboard exited with {dash_code} after SIGTERM, not 0")
    _expect(app_code == 0, f"pulsar-wsgi exited with {app_code} after SIGTERM, not 0")
    return [
        *done,
        f"`pulsar-dashboard --attach app.pid` of `pulsar-wsgi hello:hello`: /metrics has "
        f"{claim!r}, / shows both workers; both exited 0 on SIGTERM",
    ]


def _check_dashboard(proc: subprocess.Popen[bytes], url: str, claim: str, log: Path) -> None:
    """The dashboard at ``url`` (served by ``proc``) serves ``claim`` as a line of /metrics
    (within the start timeout) and its actors page shows the application's 2 workers (beside
    a dashboard's own, when it runs in the same arbiter)."""
    wait_until_serving(proc, url + "/metrics", "the dashboard", log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        status, _, body = http_request(url + "/metrics")
        text = body.decode("utf-8", "replace")
        if status == 200 and claim in text.splitlines():
            break
        _expect(
            time.monotonic() < deadline,
            f"GET /metrics never showed {claim!r}:\n{text[-2000:]}\n" + _tail(log),
        )
        time.sleep(0.3)
    status, _, body = http_request(url + "/")
    page = body.decode("utf-8", "replace")
    rows = re.findall(r'<tr [^>]*data-kind="worker">(.*?)</tr>', page)
    _expect(
        status == 200 and sum("<td>wsgi-worker</td>" in row for row in rows) == 2,
        f"GET / of the dashboard: {status}, not the tree with the 2 wsgi workers",
    )


def _quick_start_shell(venv: Venv, section: str) -> list[str]:
    transcript = _one_block(section, "console", "Asynchronous scripts")
    lines = transcript.splitlines()
    done = []
    i = 0
    while i < len(lines):
        line = lines[i]
        _expect(line.startswith("$ "), f"README transcript: {line!r} is not a `$ ` command")
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            body.append(lines[i])
            i += 1
        command = line[2:].strip()
        if m := re.fullmatch(r"cat (\S+)", command):
            (venv.work / m[1]).write_text("\n".join(body) + "\n", encoding="utf-8")
            continue
        want_status = command.endswith("; echo $?")
        command = command.removesuffix("; echo $?").strip()
        expected = list(body)
        status = int(expected.pop()) if want_status else 0
        result = run(shlex.split(command), cwd=venv.work, env=venv.env, check=False, timeout=120)
        got = result.stdout.splitlines()
        _expect(
            result.returncode == status and got == expected,
            f"`{command}`: exit status {result.returncode} and output {got!r}; the README "
            f"says {status} and {expected!r}\n{result.stderr}",
        )
        done.append(f"`{command}` printed {expected!r} and exited {status}")
    _expect(bool(done), "README transcript ran no command")
    return done


def _quick_start_console(venv: Venv, section: str) -> list[str]:
    """The README's console session, typed into ``pulsar-shell`` in a pseudo-terminal."""
    import pexpect

    lines = _one_block(section, "console", "The console").splitlines()
    _expect(bool(lines) and lines[0].startswith("$ "), "README console: no `$ ` command first")
    command = shlex.split(re.sub(r"\s+#.*$", "", lines[0][2:]))
    first = next((i for i, line in enumerate(lines) if line.startswith(">>> ")), len(lines))
    banner = lines[1:first]
    _expect(len(banner) >= 2, "README console: expected the banner, then `>>> ` statements")
    version = venv.version
    inputrc = venv.work / "inputrc"
    inputrc.write_text("set enable-bracketed-paste off\nset bell-style none\n", encoding="utf-8")
    env = {**venv.env, "XDG_DATA_HOME": str(venv.work / "data"), "INPUTRC": str(inputrc)}
    env["TERM"] = "xterm"
    print(f"$ {shlex.join(command)}  (in a pseudo-terminal)", flush=True)
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(venv.work),
        env=env,
        encoding="utf-8",
        timeout=START_TIMEOUT,
        dimensions=(40, 200),
    )
    done = []
    try:
        child.expect_exact(">>> ")
        got = [line.strip() for line in str(child.before).replace("\r", "").split("\n") if line]
        shape = (
            rf"pulsar-shell {re.escape(version)} \(pulsar {re.escape(version)}, "
            r"Python \S+, loop: \w+\)"
        )
        got = got[-len(banner) :]
        _expect(
            len(got) == len(banner)
            and re.fullmatch(shape, got[0]) is not None
            and re.fullmatch(r"arbiter pid \d+, mailbox \S+", got[1]) is not None
            and got[2:] == banner[2:],
            f"pulsar-shell banner {got!r}, the README shows {banner!r}",
        )
        done.append(f"`{shlex.join(command)}` greets as the README shows: {got[0]!r}")
        statements: list[tuple[str, list[str]]] = []
        for line in lines[first:]:
            if line.startswith(">>> "):
                statements.append((line[4:], []))
            else:
                statements[-1][1].append(line)
        timer_fired = False
        for statement, expected in statements:
            child.sendline(statement)
            child.expect_exact(">>> ")
            output = str(child.before).replace("\r", "").split("\n")[1:]  # past the echo
            timer_fired |= "still running" in output
            output = [line for line in output if line.strip() and line != "still running"]
            _expect(
                output == expected,
                f"`>>> {statement}` printed {output!r}, the README shows {expected!r}",
            )
            done.append(f">>> {statement.split('#')[0].strip()} -> {expected or 'nothing'}")
        if any("still running" in statement for statement, _ in statements):
            if not timer_fired:
                child.expect_exact("still running")  # the timer fires while the prompt waits
            done.append("the call_later timer fired while the prompt waited")
        child.sendeof()
        child.expect(pexpect.EOF)
        child.close()
        _expect(
            child.exitstatus == 0,
            f"pulsar-shell exited with {child.exitstatus} after Ctrl-D, not 0",
        )
        done.append("Ctrl-D stopped the arbiter, exit status 0")
    finally:
        if child.isalive():  # a failed check: leave as a user would (Ctrl-D), then force
            with contextlib.suppress(pexpect.ExceptionPexpect):
                child.sendeof()
                child.expect(pexpect.EOF, timeout=STOP_TIMEOUT)
            if child.isalive():
                child.terminate(force=True)
    return done


def _quick_start_test(venv: Venv, section: str) -> list[str]:
    code = _one_block(section, "python", "Example")
    (venv.work / "test_example.py").write_text(code, encoding="utf-8")
    tests = re.findall(r"^async def (test_\w+)", code, re.M)
    _expect(bool(tests), "README Example: no `async def test_...`")
    result = run(
        [venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=venv.work,
        env=venv.env,
        check=False,
        timeout=120,
    )
    summary = f"{len(tests)} passed"
    _expect(
        result.returncode == 0 and re.search(rf"^{summary} in ", result.stdout, re.M) is not None,
        f"pytest on the README Example: exit status {result.returncode}, not '{summary}':\n"
        + result.stdout
        + result.stderr,
    )
    # "Installing it enables the plugin ...; `-p no:pulsar` disables it for one run"
    off = run(
        [
            venv.python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:pulsar",
            "test_example.py",
        ],
        cwd=venv.work,
        env=venv.env,
        check=False,
        timeout=120,
    )
    _expect(
        re.search(rf"^{summary} in ", off.stdout, re.M) is None,
        "the README Example passes with `-p no:pulsar` too: the plugin is not what runs it",
    )
    return [
        f"`pytest test_example.py`: {summary} (async tests and fixture, no mark)",
        "`pytest -p no:pulsar test_example.py` does not pass them: the plugin runs them",
    ]


QUICK_STARTS: dict[str, tuple[QuickStart, ...]] = {
    "pulsar-core": (QuickStart("Example", _quick_start_core),),
    "pulsar-wsgi": (QuickStart("Usage", _quick_start_wsgi),),
    "pulsar-rpc": (QuickStart("Server", _quick_start_rpc),),
    "pulsar-tasks": (QuickStart("Quick start", _quick_start_tasks),),
    "pulsar-shell": (
        QuickStart("The console", _quick_start_console),
        QuickStart("Asynchronous scripts", _quick_start_shell),
    ),
    "pulsar-test": (QuickStart("Example", _quick_start_test),),
    "pulsar-dashboard": (QuickStart("Quick start", _quick_start_dashboard),),
}


# ----------------------------------------------------------------------------- installation


PROBE = r"""
import importlib, importlib.metadata as md, json, sys
module = importlib.import_module(sys.argv[1])
import pulsar
print(json.dumps({
    "prefix": sys.prefix,
    "module_file": module.__file__,
    "pulsar_version": pulsar.__version__,
    "dists": {
        d.metadata["Name"]: {"version": d.version, "requires": d.requires or []}
        for d in md.distributions()
    },
}))
"""


def is_pulsar(name: str) -> bool:
    """True for the distributions of this project (``pulsar`` and ``pulsar-*``)."""
    n: str = release.normalize(name)
    return n == "pulsar" or n.startswith("pulsar-")


def expected_pulsar_closure(name: str, requires: dict[str, list[str]]) -> set[str]:
    """``name`` and every pulsar distribution it requires, recursively, without extras.

    ``requires`` maps normalized distribution names to their ``Requires-Dist`` strings;
    markers are evaluated for this interpreter with no extra requested.
    """
    from packaging.requirements import Requirement

    closure: set[str] = set()
    todo = [release.normalize(name)]
    while todo:
        current = todo.pop()
        if current in closure:
            continue
        closure.add(current)
        for text in requires.get(current, []):
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = release.normalize(req.name)
            if is_pulsar(dep):
                todo.append(dep)
    return closure


def installation_problems(
    name: str,
    version: str,
    facts: dict[str, Any],
    origins: dict[str, str],
    index_url: str,
    workspace_requires: dict[str, list[str]],
) -> list[str]:
    """What is wrong with a venv where ``name`` was installed alone from the index.

    ``facts`` is what the venv's probe printed (``dists``: name -> version and requires;
    ``pulsar_version``, ``prefix``, ``module_file``), ``origins`` the URL pip downloaded each
    distribution from (its ``--report``), ``workspace_requires`` each workspace package's
    ``dependencies`` from its pyproject.toml. Wrong are: pulsar distributions other than ``name``
    and those its metadata requires (recursively, no extras), metadata requiring other pulsar
    packages than the pyproject declares, a pulsar distribution at another version or not from
    ``index_url``, ``pulsar.__version__`` other than ``version``, an import from outside the venv.
    """
    dists = {release.normalize(n): d for n, d in facts["dists"].items()}
    installed = {n for n in dists if is_pulsar(n)}
    expected = expected_pulsar_closure(name, {n: d["requires"] for n, d in dists.items()})
    declared = expected_pulsar_closure(name, workspace_requires)
    problems = []
    if installed != expected:
        problems.append(
            f"{name}: installed pulsar distributions {sorted(installed)}, but it and what it "
            f"declares are {sorted(expected)}"
        )
    if expected != declared:
        problems.append(
            f"{name}: its metadata requires {sorted(expected)}, its pyproject.toml "
            f"{sorted(declared)}"
        )
    wrong = {n: dists[n]["version"] for n in sorted(installed) if dists[n]["version"] != version}
    if wrong:
        problems.append(f"{name}: versions other than {version} installed: {wrong}")
    foreign = {
        n: origins.get(n, "")
        for n in sorted(installed)
        if not origins.get(n, "").startswith(index_url)
    }
    if foreign:
        problems.append(f"{name}: not installed from the local index {index_url}: {foreign}")
    if facts["pulsar_version"] != version:
        problems.append(
            f"{name}: pulsar.__version__ is {facts['pulsar_version']!r}, not {version!r}"
        )
    prefix = Path(facts["prefix"]).resolve()
    if not Path(facts["module_file"]).resolve().is_relative_to(prefix):
        problems.append(f"{name}: imported from {facts['module_file']}, outside the venv {prefix}")
    return problems


def _make_venv(path: Path) -> None:
    uv = shutil.which("uv")
    base = release._base_python()
    if uv:
        run([uv, "venv", "--quiet", "--seed", "--python", base, path], cwd=path.parent)
    else:
        run([base, "-m", "venv", path], cwd=path.parent)


def install_and_check(
    package: release.Package,
    version: str,
    index: LocalIndex,
    extra_index_url: str,
    workdir: Path,
    workspace_requires: dict[str, list[str]],
) -> list[str]:
    """Install ``package`` by name into a fresh venv from ``index`` and check it (see module doc).

    Returns:
        What was checked, one line each.
    """
    workdir.mkdir(parents=True)
    venv = Venv(workdir / "venv", workdir / "work", version)
    venv.work.mkdir()
    _make_venv(venv.root)
    report_path = workdir / "pip-report.json"
    run(
        [
            venv.python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--report",
            report_path,
            "--index-url",
            index.simple_url,
            "--extra-index-url",
            extra_index_url,
            package.name,
        ],
        cwd=venv.work,
        env=venv.env,
    )
    checked = [f"`pip install --index-url {index.simple_url} ... {package.name}` in a fresh venv"]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    origins = {
        release.normalize(item["metadata"]["name"]): item.get("download_info", {}).get("url", "")
        for item in report.get("install", [])
    }
    module = "pulsar" if package.is_core else f"pulsar.apps.{package.app}"
    probe = run(
        [venv.python, "-I", "-c", PROBE, module],
        cwd=venv.work,
        env=venv.env,
        shown=f"{venv.python} -I -c <import {module}, list the distributions>",
    )
    facts = json.loads(probe.stdout.strip().splitlines()[-1])
    problems = installation_problems(
        package.name, version, facts, origins, index.upload_url, workspace_requires
    )
    if problems:
        raise ReleaseError("; ".join(problems))
    installed = sorted(n for n in map(release.normalize, facts["dists"]) if is_pulsar(n))
    checked.append(f"pulsar distributions installed: exactly {installed}")
    checked.append(f"all at {version} from the local index; pulsar.__version__ == {version!r}")
    readme = (package.path / "README.md").read_text(encoding="utf-8")
    (venv.work / "README.md").write_text(readme, encoding="utf-8")
    quick_starts = QUICK_STARTS.get(package.name)
    if not quick_starts:
        raise ReleaseError(f"{package.name}: no quick start known to tools/rehearsal.py")
    for quick in quick_starts:
        try:
            section = readme_section(readme, quick.section)
        except ReleaseError:
            raise ReleaseError(
                f"{package.name}: README.md has no '{quick.section}' section"
            ) from None
        try:
            checked += quick.run(venv, section)
        except ReleaseError as exc:
            raise ReleaseError(f"{package.name}: README ({quick.section}): {exc}") from None
    return checked


# ---------------------------------------------------------------------------------- rehearse


def copy_tree(root: Path, dest: Path) -> Path:
    """Copy what a release reads (``packages/``, the root pyproject) to ``dest``."""
    dest.mkdir(parents=True)
    shutil.copytree(root / "packages", dest / "packages", ignore=COPY_IGNORE)
    shutil.copy2(root / "pyproject.toml", dest / "pyproject.toml")
    return dest


def _has_section(changelog: Path, version: str) -> bool:
    try:
        text = changelog.read_text(encoding="utf-8")
    except OSError:
        return False
    return any(
        (m := release.RELEASE_HEADING_RE.match(line)) is not None and m[1] == version
        for line in text.splitlines()
    )


def date_unreleased(root: Path, version: str, date: dt.date) -> list[str]:
    """On an unreleased tree, date every ``## Unreleased`` as ``## version — date``.

    An unreleased tree is one where no changelog has a section for ``version`` yet (a commit
    before ``bump``): the rehearsal then releases what ``bump`` would. Where some changelog has
    that section (a release commit) nothing is dated, so that a package lacking it is refused.

    Returns:
        The packages whose changelog was dated (all or none).
    """
    packages = release.load_packages(root)
    if any(_has_section(p.path / "CHANGELOG.md", version) for p in packages):
        return []
    dated = []
    for p in packages:
        changelog = p.path / "CHANGELOG.md"
        try:
            text = changelog.read_text(encoding="utf-8")
            dated_text = release.bump_changelog(text, version, date)
        except (OSError, ReleaseError):
            continue  # release_problems names it
        changelog.write_text(dated_text, encoding="utf-8")
        dated.append(p.name)
    return dated


@dataclass
class Outcome:
    """What the rehearsal checked and what failed."""

    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def check_immutable(copy: Path, index: LocalIndex, outcome: Outcome) -> None:
    """A second upload of the released version must fail, with a message that says why."""
    dist = copy / "dist"
    try:
        release.publish(copy, dist, index.upload_url, index.simple_url, env=index.credentials)
    except ReleaseError as exc:
        _expect("versions are immutable" in str(exc), f"second publish failed otherwise: {exc}")
        outcome.checked.append(f"a second publish is refused before uploading: {exc}")
    else:
        raise ReleaseError("a second publish of the same version was accepted")
    core = release.load_packages(copy)[0]
    files = release.release_files(copy, dist)[0][1]
    version = release.tree_version(release.load_packages(copy))
    assert version is not None
    try:
        release.twine_upload(core.name, version, files, index.upload_url, env=index.credentials)
    except ReleaseError as exc:
        _expect("versions are immutable" in str(exc), f"second upload failed otherwise: {exc}")
        outcome.checked.append(f"the index itself refuses a second upload: {exc}")
    else:
        raise ReleaseError("the index accepted the same files twice")


def rehearse(
    root: Path,
    *,
    only: Sequence[str] = (),
    extra_index_url: str = DEFAULT_EXTRA_INDEX,
    keep: bool = False,
) -> Outcome:
    """Run the whole rehearsal on a copy of the tree at ``root`` (see the module docstring)."""
    outcome = Outcome()
    tmp = Path(tempfile.mkdtemp(prefix="pulsar-rehearsal-")).resolve()
    try:
        if tmp.is_relative_to(root.resolve()):
            raise ReleaseError(f"temporary directory {tmp} is inside the workspace {root}")
        copy = copy_tree(root, tmp / "repo")
        packages = release.load_packages(copy)
        version = release.tree_version(packages)
        if version is None:
            raise ReleaseError("no package has a version")
        unknown = sorted(set(map(release.normalize, only)) - {p.name for p in packages})
        if unknown:
            raise ReleaseError(f"no such package: {', '.join(unknown)}")
        dated = date_unreleased(copy, version, dt.date.today())
        if dated:
            log(f"unreleased tree: dated '## Unreleased' as {version} in the copy for {dated}")
        problems = release.release_problems(copy)
        if problems:  # the same refusal as publish's, before spending time on builds
            raise ReleaseError("refusing to release:\n  " + "\n  ".join(problems))
        started = time.monotonic()
        built = release.build(copy)
        log(f"built {len(built)} files in {time.monotonic() - started:.0f} s")
        with LocalIndex(tmp / "index") as index:
            uploaded = release.publish(
                copy, copy / "dist", index.upload_url, index.simple_url, env=index.credentials
            )
            outcome.checked.append(
                f"twine upload --repository-url {index.upload_url}: {len(uploaded)} files"
            )
            check_immutable(copy, index, outcome)
            for line in outcome.checked:
                log(f"ok: {line}")
            workspace_requires = {
                p.name: [r for where, r in p.requirements() if where == "dependencies"]
                for p in packages
            }
            for p in packages:
                if only and p.name not in set(map(release.normalize, only)):
                    continue
                started = time.monotonic()
                log(f"{p.name}: installing by name in a fresh venv")
                try:
                    lines = install_and_check(
                        p,
                        version,
                        index,
                        extra_index_url,
                        tmp / "venvs" / p.name,
                        workspace_requires,
                    )
                except ReleaseError as exc:
                    outcome.failures.append(str(exc))
                    log(f"{p.name}: FAILED: {exc}")
                    continue
                for line in lines:
                    outcome.checked.append(f"{p.name}: {line}")
                    log(f"{p.name}: ok: {line}")
                log(f"{p.name}: done in {time.monotonic() - started:.0f} s")
    finally:
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return outcome


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rehearsal.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="repository root holding packages/ (default: %(default)s)",
    )
    parser.add_argument(
        "--only", action="append", default=[], help="install and check only this package"
    )
    parser.add_argument(
        "--extra-index-url",
        default=os.environ.get("PIP_INDEX_URL") or DEFAULT_EXTRA_INDEX,
        help="the usual index, for third-party dependencies (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rehearsal; return 0 when every check passed."""
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        outcome = rehearse(
            args.root.resolve(),
            only=args.only,
            extra_index_url=args.extra_index_url,
            keep=args.keep,
        )
    except ReleaseError as exc:
        print(f"rehearsal: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if outcome.failures:
        for failure in outcome.failures:
            print(f"rehearsal: FAILED: {failure}", file=sys.stderr)
        print(
            f"rehearsal: {len(outcome.failures)} package(s) failed ({elapsed:.0f} s)",
            file=sys.stderr,
        )
        return 1
    log(f"ok: {len(outcome.checked)} checks passed in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
