"""The interactive console, driven through a real pseudo-terminal."""

from __future__ import annotations

import re
from pathlib import Path

from shell_helpers import wait_gone

import pulsar


def test_banner_and_await_on_the_arbiter_loop(start_shell) -> None:
    shell = start_shell(wait=False)
    banner = shell.prompt()
    assert f"pulsar-shell {pulsar.__version__}" in banner
    assert re.search(r"loop: (uvloop|asyncio)", banner)
    assert "In scope: pulsar, arbiter, spawn, send, get_actor, asyncio" in banner
    assert shell.run("await asyncio.sleep(0.1); print('slept')").strip() == "slept"
    assert shell.run("asyncio.get_running_loop() is arbiter.loop").strip() == "True"
    assert shell.run("arbiter.is_running(), get_actor() is arbiter").strip() == "(True, True)"
    shell.sendeof()
    assert shell.wait_exit() == 0


def test_multi_line_statements(start_shell) -> None:
    shell = start_shell()
    shell.sendline("async def double(x):")
    shell.expect_exact("... ")
    shell.sendline("    await asyncio.sleep(0)")
    shell.expect_exact("... ")
    shell.sendline("    return 2 * x")
    shell.expect_exact("... ")
    shell.sendline("")
    shell.prompt()
    assert shell.run("await double(21)").strip() == "42"


def test_syntax_error_is_reported_and_the_shell_lives(start_shell) -> None:
    shell = start_shell()
    out = shell.run("def broken(:")
    assert "SyntaxError" in out
    assert shell.run("1 + 1").strip() == "2"


def test_exception_in_awaited_coroutine_shows_traceback(start_shell) -> None:
    shell = start_shell()
    shell.sendline("async def boom():\n    raise ValueError('bad thing')\n")
    shell.sync()
    out = shell.run("await boom()")
    assert "Traceback (most recent call last)" in out
    assert "ValueError: bad thing" in out
    assert "concurrent" not in out and "_console.py" not in out  # no shell machinery
    assert shell.run("arbiter.is_running()").strip() == "True"


def test_ctrl_c_cancels_a_never_ending_await(start_shell) -> None:
    shell = start_shell()
    shell.sendline("print('wait' + 'ing'); await asyncio.Event().wait()")
    shell.expect_exact("waiting")
    shell.sendintr()
    out = shell.prompt()
    assert "KeyboardInterrupt" in out
    assert shell.run("arbiter.is_running()").strip() == "True"
    assert shell.run("await asyncio.sleep(0.01); 'alive'").strip() == "'alive'"


def test_ctrl_c_interrupts_blocking_code(start_shell) -> None:
    shell = start_shell()
    shell.sendline("import time; print('block' + 'ing'); time.sleep(100)")
    shell.expect_exact("blocking")
    shell.sendintr()
    assert "KeyboardInterrupt" in shell.prompt()
    assert shell.run("arbiter.is_running()").strip() == "True"


def test_ctrl_c_at_the_prompt_discards_the_line(start_shell) -> None:
    shell = start_shell()
    shell.send("half_typed = 1")
    shell.expect_exact("half_typed = 1")
    shell.sendintr()
    assert "KeyboardInterrupt" in shell.prompt()
    assert "NameError" in shell.run("half_typed")
    # the terminal is back in its normal (canonical, echoing) modes while a statement runs
    shell.run("import termios; lflag = termios.tcgetattr(0)[3]")
    assert shell.run("bool(lflag & termios.ECHO), bool(lflag & termios.ICANON)").strip() == (
        "(True, True)"
    )
    # line editing still works after the interrupted read (the terminal modes are right)
    shell.send("'abcX")
    shell.expect_exact("'abcX")
    shell.send("\x7f'")  # backspace
    shell.sendline("")
    assert shell.prompt().strip().endswith("'abc'")


def test_periodic_callback_keeps_firing_while_idle(start_shell) -> None:
    shell = start_shell()
    shell.sendline(
        "ticks = []\n"
        "def tick():\n"
        "    ticks.append(1)\n"
        "    if len(ticks) == 5: print('tick-5', flush=True)\n"
        "    if len(ticks) < 5: arbiter.loop.call_later(0.05, tick)\n"
    )
    shell.sync()
    shell.sendline("arbiter.loop.call_later(0.05, tick) and None")
    shell.prompt()
    # the ticks happen while the console sits at the prompt, with no input at all
    shell.expect_exact("tick-5")
    assert shell.run("len(ticks)").strip().endswith("5")


def test_tab_completion_of_names_and_attributes(start_shell) -> None:
    shell = start_shell()
    shell.send("pulsar.__vers\t")
    shell.expect_exact("__version__")
    shell.sendline("")
    assert repr(pulsar.__version__) in shell.prompt()
    shell.send("arbiter.start\t\t")
    shell.expect_exact("started_at")
    shell.sendcontrol("u")
    shell.sendline("")
    shell.prompt()
    shell.send("asynci\t")
    shell.expect_exact("asyncio")
    shell.sendline(".sleep")
    assert "function sleep" in shell.prompt()


def test_history_persists_across_sessions(start_shell, tmp_path: Path) -> None:
    history = tmp_path / "history"
    shell = start_shell("--history-file", str(history))
    shell.run("marker = 424242")
    shell.sendeof()
    assert shell.wait_exit() == 0
    assert "marker = 424242" in history.read_text()
    shell = start_shell("--history-file", str(history))
    shell.send("\x1b[A")  # arrow up: the last line of the previous session
    shell.expect_exact("marker = 424242")
    shell.sendline("")
    shell.prompt()
    assert shell.run("marker").strip() == "424242"
    shell.sendeof()
    assert shell.wait_exit() == 0


def test_default_history_file_is_in_the_data_dir(start_shell, shell_env) -> None:
    shell = start_shell()
    shell.run("'default history'")
    shell.sendeof()
    assert shell.wait_exit() == 0
    path = Path(shell_env["XDG_DATA_HOME"]) / "pulsar" / "shell_history"
    assert "'default history'" in path.read_text()


def test_ctrl_d_stops_the_arbiter_and_its_actors(start_shell) -> None:
    shell = start_shell()
    shell.run("a = await spawn(name='one'); b = await spawn(name='two')")
    out = shell.run("print(*[(await send(p, 'info'))['pid'] for p in (a, b)])")
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2
    shell.sendeof()
    assert shell.wait_exit() == 0
    assert wait_gone(pids) == []


def test_exit_function_stops_with_its_status(start_shell) -> None:
    shell = start_shell()
    out = shell.run("print((await send(await spawn(name='w'), 'info'))['pid'])")
    pid = int(out.strip())
    assert "exit()" in shell.run("exit")
    shell.sendline("exit(3)")
    assert shell.wait_exit() == 3
    assert wait_gone([pid]) == []


def test_exit_from_an_awaiting_statement(start_shell) -> None:
    shell = start_shell()
    shell.sendline("await asyncio.sleep(0); exit()")
    assert shell.wait_exit() == 0


def test_imports_are_preloaded(start_shell) -> None:
    shell = start_shell("--imports", "json,xml.dom,shell_helpers", wait=False)
    banner = shell.prompt()
    assert "In scope: pulsar, arbiter, spawn, send, get_actor, asyncio, json, xml" in banner
    assert shell.run("json.dumps([1]), xml.dom.__name__").strip() == "('[1]', 'xml.dom')"


def test_a_bad_import_is_reported_and_the_shell_starts(start_shell) -> None:
    shell = start_shell("--imports", "no_such_module_xyz", wait=False)
    out = shell.prompt()
    assert "cannot import no_such_module_xyz" in out
    assert shell.run("1").strip() == "1"


def test_io_asyncio(start_shell) -> None:
    shell = start_shell("--io", "asyncio", wait=False)
    assert "loop: asyncio" in shell.prompt()
    assert shell.run("type(arbiter.loop).__module__").strip() == "'asyncio.unix_events'"
    shell.sendline("print('wait' + 'ing'); await asyncio.Event().wait()")
    shell.expect_exact("waiting")
    shell.sendintr()
    assert "KeyboardInterrupt" in shell.prompt()
    shell.sendeof()
    assert shell.wait_exit() == 0


def test_bad_setting_fails_before_starting(start_shell) -> None:
    shell = start_shell("--history-length", "-3", wait=False)
    shell.expect("history-length")
    assert shell.wait_exit() == 2
