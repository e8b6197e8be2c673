"""``--attach``: the console on an application already running, through its mailbox."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from shell_helpers import wait_gone

from pulsar.apps.shell import AttachError
from pulsar.apps.shell._remote import find_mailbox, read_secret


def test_attach_lists_workers_runs_in_one_and_spawns(start_shell, running_app) -> None:
    shell = start_shell(
        "--attach", running_app["address"], "--imports", "shell_helpers", wait=False
    )
    banner = shell.prompt()
    assert f"attached to {running_app['address']}" in banner
    shell.run("info = await send('arbiter', 'info')")
    out = shell.run("print(*sorted(w['pid'] for w in info['monitors']['demo']['workers']))")
    assert sorted(int(p) for p in out.split()) == sorted(running_app["worker_pids"])
    assert shell.run("'pulsar-shell' in [a['name'] for a in info['actors']]").strip() == "True"
    shell.run("aid = info['monitors']['demo']['workers'][0]['aid']")
    out = shell.run("await send(aid, 'run', shell_helpers.worker_pid)")
    assert int(out.strip()) in running_app["worker_pids"]
    assert shell.run("(await arbiter.info())['name']").strip() == "'arbiter'"
    # spawn and stop an actor in the attached application
    shell.run("p = await spawn(name='extra')")
    pid = int(shell.run("(await send(p, 'info'))['pid']").strip())
    assert shell.run("await send('arbiter', 'kill_actor', p.aid)").strip() == "True"
    assert wait_gone([pid]) == []
    # an error of a remote command is raised in the shell, which lives on
    assert "CommandNotFound" in shell.run("await send('arbiter', 'no_such_command')")
    shell.sendeof()
    assert shell.wait_exit() == 0
    assert running_app["proc"].poll() is None  # leaving the shell leaves the app running


def test_attach_through_the_pidfile(start_shell, running_app) -> None:
    if not os.path.exists(running_app["pidfile"] + ".mailbox"):  # pragma: no cover
        pytest.skip("this pulsar-core does not write <pidfile>.mailbox")
    shell = start_shell("--attach", running_app["pidfile"], wait=False)
    assert f"attached to {running_app['address']}" in shell.prompt()
    assert shell.run("await send('arbiter', 'ping')").strip() == "'pong'"
    shell.sendeof()
    assert shell.wait_exit() == 0


def test_attach_with_a_wrong_secret_is_refused(start_shell, running_app, tmp_path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir(mode=0o700)
    (fake / "arbiter.sock").symlink_to(running_app["address"])
    (fake / "secret").write_bytes(b"x" * 32)
    shell = start_shell("--attach", str(fake / "arbiter.sock"), wait=False)
    shell.expect("authentication failed")
    assert shell.wait_exit() == 1
    assert running_app["proc"].poll() is None


def test_attach_without_a_readable_secret_is_refused(start_shell, running_app, tmp_path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir(mode=0o700)
    (fake / "arbiter.sock").symlink_to(running_app["address"])
    shell = start_shell("--attach", str(fake / "arbiter.sock"), wait=False)
    shell.expect("cannot read the mailbox secret")
    assert shell.wait_exit() == 1


def test_attach_to_nothing_is_refused(start_shell, tmp_path) -> None:
    shell = start_shell("--attach", str(tmp_path / "missing.pid"), wait=False)
    shell.expect("no such pid file or socket")
    assert shell.wait_exit() == 1


def test_attached_application_exits(start_shell, running_app) -> None:
    shell = start_shell("--attach", running_app["address"])
    running_app["proc"].send_signal(signal.SIGTERM)
    shell.expect("the attached application .* has exited")
    assert shell.wait_exit() == 5
    assert running_app["proc"].wait(30) == 0


def test_attach_ctrl_c_cancels_a_remote_wait(start_shell, running_app) -> None:
    shell = start_shell("--attach", running_app["address"])
    shell.sendline("print('wait' + 'ing'); await asyncio.Event().wait()")
    shell.expect_exact("waiting")
    shell.sendintr()
    assert "KeyboardInterrupt" in shell.prompt()
    assert shell.run("await send('arbiter', 'ping')").strip() == "'pong'"


# -- finding the mailbox and the secret (no process) ------------------------------------------


def test_find_mailbox_and_secret(running_app, tmp_path: Path) -> None:
    address = running_app["address"]
    assert find_mailbox(address) == address
    pidfile = tmp_path / "other.pid"
    pidfile.write_text("123\n")
    (tmp_path / "other.pid.mailbox").write_text(address + "\n")
    assert find_mailbox(str(pidfile)) == address
    assert len(read_secret(address)) >= 16
    (tmp_path / "stale.pid").write_text("1\n")
    (tmp_path / "stale.pid.mailbox").write_text(str(tmp_path / "gone.sock") + "\n")
    with pytest.raises(AttachError, match="has exited"):
        find_mailbox(str(tmp_path / "stale.pid"))
    plain = tmp_path / "plain.txt"
    plain.write_text("hello\n")
    with pytest.raises(AttachError, match="neither a mailbox socket nor a pid file"):
        find_mailbox(str(plain))
    with pytest.raises(AttachError, match="cannot read the mailbox secret"):
        read_secret(str(tmp_path / "nowhere" / "arbiter.sock"))
