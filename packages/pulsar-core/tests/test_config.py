"""Tests of pulsar._config (settings registry, validators, layering) and pulsar._settings."""

from __future__ import annotations

import concurrent.futures
import grp
import importlib.util
import multiprocessing
import operator
import os
import pickle
import pwd
import re
import textwrap
from collections.abc import Iterator
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

import pytest

from pulsar import _config
from pulsar._config import (
    Address,
    Config,
    LazyCallable,
    Setting,
    parse_address,
    settings_reference,
    validate_address_or_flag,
    validate_bind,
    validate_bool,
    validate_callable,
    validate_choice,
    validate_dict_or_path,
    validate_group,
    validate_int,
    validate_list_of_strings,
    validate_log_level,
    validate_non_negative_int,
    validate_non_negative_number,
    validate_path_or_none,
    validate_positive_int,
    validate_positive_number,
    validate_string,
    validate_string_or_none,
    validate_umask,
    validate_user,
)
from pulsar._exceptions import ConfigError


def SConfig(*args: Any, **kwargs: Any) -> Config:
    """A config with the server settings (``bind``, TLS, ``keep_alive``, ``max_requests``...)."""
    kwargs.setdefault("apps", ("socket",))
    return Config(*args, **kwargs)


ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def registry() -> Iterator[None]:
    """Let a test declare settings; the registry is restored afterwards."""
    _config._ensure_core()
    saved = dict(_config._REGISTRY)
    yield
    _config._REGISTRY.clear()
    _config._REGISTRY.update(saved)


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def bad(validator: Any, value: Any) -> str:
    """The reason a validator gives for rejecting ``value``."""
    with pytest.raises((ValueError, TypeError)) as info:
        validator(value)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# validators
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        *[(text, True) for text in ("1", "true", "True", "YES", "on", " On ")],
        *[(text, False) for text in ("0", "false", "FALSE", "no", "off", " Off ")],
    ],
)
def test_validate_bool_good(value: Any, expected: bool) -> None:
    assert validate_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", "", "2", 2, -1, 1.0, None, [True]])
def test_validate_bool_bad(value: Any) -> None:
    assert "expected a boolean" in bad(validate_bool, value)


def test_validate_int() -> None:
    assert validate_int(3) == 3
    assert validate_int("-7") == -7
    assert validate_int(" +8 ") == 8
    for value in ("abc", "1.5", 1.5, True, None, ""):
        assert bad(validate_int, value) == "expected an integer"


def test_validate_non_negative_and_positive_int() -> None:
    assert validate_non_negative_int(0) == 0
    assert validate_non_negative_int("12") == 12
    assert bad(validate_non_negative_int, -1) == "expected a non-negative integer"
    assert bad(validate_non_negative_int, "abc") == "expected a non-negative integer"
    assert validate_positive_int("1") == 1
    assert bad(validate_positive_int, 0) == "expected a positive integer"
    assert bad(validate_positive_int, False) == "expected a positive integer"


def test_validate_numbers() -> None:
    assert validate_positive_number("1.5") == 1.5
    assert validate_positive_number("2") == 2
    assert isinstance(validate_positive_number("2"), int)
    assert validate_positive_number(0.25) == 0.25
    for value in (0, -1, "0", "abc", "nan", "inf", float("inf"), True, None):
        assert bad(validate_positive_number, value) == "expected a positive number"
    assert validate_non_negative_number(0) == 0
    assert validate_non_negative_number("0.5") == 0.5
    for value in (-0.1, "-1", "x", None):
        assert bad(validate_non_negative_number, value) == "expected a non-negative number"


def test_validate_strings() -> None:
    assert validate_string(" abc ") == "abc"
    assert bad(validate_string, 3) == "expected a string"
    assert validate_string_or_none(None) is None
    assert validate_string_or_none("") is None
    assert validate_string_or_none("web") == "web"
    assert bad(validate_string_or_none, 3) == "expected a string"


def test_validate_choice() -> None:
    validator = validate_choice(["process", "thread"])
    assert validator("thread") == "thread"
    assert bad(validator, "Thread") == "expected one of process, thread"
    assert bad(validator, 1) == "expected one of process, thread"
    insensitive = validate_choice(["auto", "uvloop"], ignore_case=True)
    assert insensitive(" UVLOOP ") == "uvloop"


def test_validate_list_of_strings() -> None:
    assert validate_list_of_strings("a, b,,c") == ["a", "b", "c"]
    assert validate_list_of_strings(["a", "b,c"]) == ["a", "b", "c"]
    assert validate_list_of_strings(("x",)) == ["x"]
    assert validate_list_of_strings(None) == []
    assert validate_list_of_strings("") == []
    for value in (5, ["a", 1], {"a": 1}):
        assert bad(validate_list_of_strings, value) == "expected a string or a list of strings"


def hook_one(worker: Any) -> Any:
    return ("one", worker)


def test_validate_callable() -> None:
    any_callable = validate_callable()
    assert any_callable(len) is len
    one = validate_callable(1)
    assert one(hook_one) is hook_one
    assert one(lambda w: w) is not None
    assert bad(one, lambda: None) == "expected a callable taking 1 positional argument"
    assert bad(validate_callable(2), hook_one) == (
        "expected a callable taking 2 positional arguments"
    )
    assert bad(one, 5) == "expected a callable or a 'module:attr' string (taking 1 argument)"
    for text in ("not a path", "nodots", "a:b:c", "1mod:x", ""):
        assert "expected a callable" in bad(one, text)


def test_validate_callable_lazy_strings() -> None:
    one = validate_callable(1)
    colon = one("os.path:basename")
    dotted = one("os.path.basename")
    assert isinstance(colon, LazyCallable)
    assert colon._target is None  # nothing imported yet
    assert colon("/a/b.txt") == "b.txt"
    assert dotted("/a/c.txt") == "c.txt"
    assert str(colon) == "os.path:basename"
    assert pickle.loads(pickle.dumps(colon)) == colon
    with pytest.raises(ConfigError, match=r"cannot load 'no_such_module_xyz:f'|no_such_module"):
        one("no_such_module_xyz:f").resolve()
    with pytest.raises(ConfigError, match=r"AttributeError"):
        one("os.path:no_such_function").resolve()
    with pytest.raises(ConfigError, match=r"taking 1 positional argument"):
        one("os:getcwd").resolve()
    with pytest.raises(ConfigError, match=r"not callable"):
        one("os:sep").resolve()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:80", ["127.0.0.1:80"]),
        (":8000", ["0.0.0.0:8000"]),
        ("8000", ["0.0.0.0:8000"]),
        (8000, ["0.0.0.0:8000"]),
        ("[::1]:80", ["[::1]:80"]),
        ("unix:/tmp/p.sock", ["unix:/tmp/p.sock"]),
        ("a.example:1, b.example:2", ["a.example:1", "b.example:2"]),
        (["localhost:1", ":2"], ["localhost:1", "0.0.0.0:2"]),
    ],
)
def test_validate_bind_good(value: Any, expected: list[str]) -> None:
    assert validate_bind(value) == expected


def test_validate_bind_bad() -> None:
    assert bad(validate_bind, []) == "expected at least one address"
    assert bad(validate_bind, "") == "expected at least one address"
    assert bad(validate_bind, "x:70000") == "port 70000 out of range (0-65535)"
    assert "missing port" in bad(validate_bind, "localhost")
    assert bad(validate_bind, 3.5) == "expected a string or a list of strings"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (False, None),
        (0, None),
        ("", None),
        (" off ", None),
        ("false", None),
        (True, "127.0.0.1:8070"),
        (1, "127.0.0.1:8070"),
        ("yes", "127.0.0.1:8070"),
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        (":9000", "0.0.0.0:9000"),
        (9000, "0.0.0.0:9000"),
        ("[::1]:9000", "[::1]:9000"),
        ("unix:/tmp/d.sock", "unix:/tmp/d.sock"),
    ],
)
def test_validate_address_or_flag(value: Any, expected: str | None) -> None:
    assert validate_address_or_flag("127.0.0.1:8070")(value) == expected


def test_validate_address_or_flag_bad() -> None:
    validator = validate_address_or_flag("127.0.0.1:8070")
    for value in ("nope", "1.2.3.4:99999", ["127.0.0.1:1"]):
        with pytest.raises(ValueError):
            validator(value)
    with pytest.raises(ConfigError, match="bind: invalid port"):
        validate_address_or_flag("127.0.0.1:x")  # a bad default is a declaration error


def test_dashboard_and_metrics_flag_alone_env_and_value() -> None:
    """``nargs = "?"`` settings: the flag alone gives ``const`` (True: the default address)."""
    cfg = Config()
    assert (cfg.get("dashboard"), cfg.get("metrics")) == (None, None)
    cfg.load(["--dashboard"], {})
    assert cfg.get("dashboard") == "127.0.0.1:8070" and cfg.settings["dashboard"].source == "cli"
    cfg = Config()
    cfg.load(["--dashboard", "127.0.0.1:9000", "--metrics", ":9090"], {})
    assert (cfg.get("dashboard"), cfg.get("metrics")) == ("127.0.0.1:9000", "0.0.0.0:9090")
    cfg = Config()
    cfg.load([], {"PULSAR_DASHBOARD": "1", "PULSAR_METRICS": "127.0.0.1:1"})
    assert (cfg.get("dashboard"), cfg.get("metrics")) == ("127.0.0.1:8070", "127.0.0.1:1")
    assert Config(metrics=True).get("metrics") == "127.0.0.1:9090"
    with pytest.raises(ConfigError, match=r"--dashboard: invalid value 'nope'"):
        Config().load(["--dashboard", "nope"], {})


def test_validate_path_or_none(tmp_path: Path) -> None:
    assert validate_path_or_none(None) is None
    assert validate_path_or_none("") is None
    assert validate_path_or_none(tmp_path / "x.pid") == str(tmp_path / "x.pid")
    assert validate_path_or_none("~/x.pid") == os.path.expanduser("~/x.pid")
    assert validate_path_or_none("rel/x") == "rel/x"
    assert bad(validate_path_or_none, 5) == "expected a path"


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "error", "CRITICAL"])
def test_validate_log_level_good(level: str) -> None:
    assert validate_log_level(level) == level.lower()


@pytest.mark.parametrize("level", ["warn", "trace", "", 10, None])
def test_validate_log_level_bad(level: Any) -> None:
    assert bad(validate_log_level, level) == (
        "expected one of debug, info, warning, error, critical"
    )


def test_validate_dict_or_path() -> None:
    config = {"version": 1, "loggers": {"x": {"level": "INFO"}}}
    value = validate_dict_or_path(config)
    assert value == config
    assert value is not config  # a copy: the caller's dict can change freely
    assert validate_dict_or_path("log.json") == "log.json"
    assert validate_dict_or_path("conf/LOG.PY") == "conf/LOG.PY"
    assert validate_dict_or_path(None) is None
    for wrong in ("log.yaml", 5, ["a.json"]):
        assert bad(validate_dict_or_path, wrong) == (
            "expected a dict or the path of a .json or .py file"
        )


def test_validate_user_and_group() -> None:
    root_user = pwd.getpwuid(0).pw_name
    root_group = grp.getgrgid(0).gr_name
    assert validate_user(None) is None
    assert validate_user("") is None
    assert validate_user(0) == 0
    assert validate_user("1000") == 1000
    assert validate_user(root_user) == 0
    assert validate_group(root_group) == 0
    assert validate_group("0") == 0
    assert bad(validate_user, "no_such_user_xyz") == "no such user 'no_such_user_xyz'"
    assert bad(validate_group, "no_such_group_xyz") == "no such group 'no_such_group_xyz'"
    assert bad(validate_user, -1) == "expected a user name or a non-negative numeric id"
    assert bad(validate_group, 1.5) == "expected a group name or a non-negative numeric id"


def test_validate_umask() -> None:
    assert validate_umask(None) is None
    assert validate_umask("") is None
    assert validate_umask("022") == 0o22
    assert validate_umask("0o027") == 0o27
    assert validate_umask("777") == 0o777
    assert validate_umask(0o22) == 0o22
    for wrong in ("8", "0x1f", "abc", 0o1000, -1, True):
        assert bad(validate_umask, wrong) == "expected an octal mode between 000 and 777"


# ---------------------------------------------------------------------------------------------
# parse_address
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port", "path", "canonical"),
    [
        ("127.0.0.1:8060", "127.0.0.1", 8060, None, "127.0.0.1:8060"),
        ("LocalHost:80", "localhost", 80, None, "localhost:80"),
        ("example.com.:443", "example.com.", 443, None, "example.com.:443"),
        (":8000", "0.0.0.0", 8000, None, "0.0.0.0:8000"),
        ("8000", "0.0.0.0", 8000, None, "0.0.0.0:8000"),
        (" 0 ", "0.0.0.0", 0, None, "0.0.0.0:0"),
        ("host:65535", "host", 65535, None, "host:65535"),
        ("[::]:80", "::", 80, None, "[::]:80"),
        ("[::1]:8060", "::1", 8060, None, "[::1]:8060"),
        ("[0:0::0001]:1", "::1", 1, None, "[::1]:1"),
        ("unix:/tmp/pulsar.sock", None, None, "/tmp/pulsar.sock", "unix:/tmp/pulsar.sock"),
        ("unix:///tmp/x.sock", None, None, "/tmp/x.sock", "unix:/tmp/x.sock"),
        ("unix:rel.sock", None, None, "rel.sock", "unix:rel.sock"),
    ],
)
def test_parse_address(
    text: str, host: str | None, port: int | None, path: str | None, canonical: str
) -> None:
    address = parse_address(text)
    assert (address.host, address.port, address.path) == (host, port, path)
    assert str(address) == canonical
    assert parse_address(str(address)) == address
    assert parse_address(address) is address


def test_parse_address_int_and_properties() -> None:
    import socket

    assert parse_address(9000) == Address("0.0.0.0", 9000)
    v4, v6 = parse_address("1.2.3.4:5"), parse_address("[::1]:5")
    name, unix = parse_address("localhost:5"), parse_address("unix:/s")
    assert (v4.family, v6.family, name.family) == (
        socket.AF_INET,
        socket.AF_INET6,
        socket.AF_UNSPEC,
    )
    assert unix.family == socket.AF_UNIX
    assert unix.is_unix and not v4.is_unix
    assert v4.sockaddr == ("1.2.3.4", 5)
    assert unix.sockaddr == "/s"
    with pytest.raises(AttributeError):
        v4.port = 6  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host:70000", "bind: port 70000 out of range (0-65535)"),
        ("70000", "bind: port 70000 out of range (0-65535)"),
        (":-1", "bind: port -1 out of range (0-65535)"),
        ("[::1]:99999", "bind: port 99999 out of range (0-65535)"),
        ("host:abc", "bind: invalid port 'abc'"),
        ("host:", "bind: invalid port ''"),
        (
            "localhost",
            "bind: missing port in 'localhost' (use HOST:PORT, :PORT, PORT or unix:PATH)",
        ),
        ("", "bind: missing port in '' (use HOST:PORT, :PORT, PORT or unix:PATH)"),
        ("::1:80", "bind: IPv6 addresses need brackets: [HOST]:PORT"),
        ("[::1]", "bind: missing port (use [HOST]:PORT)"),
        ("[::1]:", "bind: missing port (use [HOST]:PORT)"),
        ("[::1:80", "bind: missing ']' after the IPv6 address"),
        ("[nope]:80", "bind: invalid IPv6 address 'nope'"),
        ("bad host:80", "bind: invalid host 'bad host'"),
        ("-bad.example:80", "bind: invalid host '-bad.example'"),
        ("1.2.3.999:80", "bind: invalid host '1.2.3.999'"),
        ("unix:", "bind: missing path after 'unix:'"),
    ],
)
def test_parse_address_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_address(text)
    assert str(info.value) == message
    assert info.value.setting == "bind"


@pytest.mark.parametrize("value", [None, 1.5, True, ["a:1"]])
def test_parse_address_wrong_type(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^bind: expected an address string$"):
        parse_address(value)


# ---------------------------------------------------------------------------------------------
# core settings and the registry
# ---------------------------------------------------------------------------------------------

CORE = {
    # name: (section, default, is_global)
    "config": ("Config", None, True),
    "workers": ("Worker Processes", 1, False),
    "concurrency": ("Worker Processes", "process", False),
    "start_method": ("Worker Processes", "auto", False),
    "thread_workers": ("Worker Processes", 4, False),
    "preload": ("Worker Processes", False, False),
    "timeout": ("Worker Processes", 30, False),
    "heartbeat": ("Worker Processes", 5, False),
    "graceful_timeout": ("Worker Processes", 30, False),
    "max_restarts": ("Worker Processes", 5, False),
    "restart_window": ("Worker Processes", 60, False),
    "max_requests": ("Worker Processes", 0, False),
    "max_requests_jitter": ("Worker Processes", 0, False),
    "spawn_timeout": ("Worker Processes", 10, False),
    "bind": ("Server Socket", ["127.0.0.1:8060"], False),
    "backlog": ("Server Socket", 2048, False),
    "reuse_port": ("Server Socket", False, False),
    "keep_alive": ("Server Socket", 15, False),
    "cert_file": ("Server Socket", None, False),
    "key_file": ("Server Socket", None, False),
    "ca_certs": ("Server Socket", None, False),
    "io": ("Server Mechanics", "auto", True),
    "pidfile": ("Server Mechanics", None, True),
    "daemon": ("Server Mechanics", False, True),
    "user": ("Server Mechanics", None, True),
    "group": ("Server Mechanics", None, True),
    "umask": ("Server Mechanics", None, True),
    "reload": ("Server Mechanics", False, True),
    "process_name": ("Server Mechanics", None, False),
    "debug": ("Server Mechanics", False, True),
    "max_frame_size": ("Server Mechanics", 16 * 1024 * 1024, True),
    "log_level": ("Logging", "info", True),
    "log_config": ("Logging", None, True),
    "error_logfile": ("Logging", "-", True),
    "access_logfile": ("Logging", None, True),
    "access_log": ("Logging", True, False),
    "dashboard": ("Monitoring", None, True),
    "metrics": ("Monitoring", None, True),
}
HOOKS = {
    "arbiter_start": 1,
    "monitor_start": 1,
    "monitor_stopping": 1,
    "worker_start": 1,
    "worker_stopping": 1,
    "worker_info": 2,
}


#: the settings of servers only (``app = "socket"``): a task queue or the shell has none
SERVER = {
    "max_requests",
    "max_requests_jitter",
    "bind",
    "backlog",
    "reuse_port",
    "keep_alive",
    "cert_file",
    "key_file",
    "ca_certs",
    "access_logfile",
    "access_log",
}


def test_core_settings_declared() -> None:
    assert list(Config().settings) == [*(n for n in CORE if n not in SERVER), *HOOKS]
    cfg = SConfig()
    assert list(cfg.settings) == [*CORE, *HOOKS]
    for name, (section, default, is_global) in CORE.items():
        setting = cfg.settings[name]
        assert (setting.section, setting.value, setting.is_global) == (section, default, is_global)
        assert setting.app == ("socket" if name in SERVER else None)
        assert setting.flags, name
        assert setting.desc and "\n" not in setting.desc and len(setting.desc) <= 100
        assert setting.source == "default"
    for name, arity in HOOKS.items():
        hook = cfg.settings[name]
        assert hook.section == "Server Hooks"
        assert hook.flags == ()
        assert hook.env_var() is None
        assert hook.value(*range(arity)) is None  # the default is a no-op
        assert hook.is_global is (name == "arbiter_start")


def test_short_flags() -> None:
    flags = {name: s.flags for name, s in SConfig().settings.items()}
    assert flags["config"] == ("-c", "--config")
    assert flags["workers"] == ("-w", "--workers")
    assert flags["bind"] == ("-b", "--bind")
    shorts = [f for fs in flags.values() for f in fs if not f.startswith("--")]
    assert len(shorts) == len(set(shorts))


def test_duplicate_declaration_is_an_error(registry: None) -> None:
    with pytest.raises(TypeError, match=r"'workers' is already declared by pulsar._settings"):

        class Workers2(Setting):
            name = "workers"
            section = "Worker Processes"
            desc = "Another one."


def test_app_settings_and_override(registry: None) -> None:
    from pulsar._settings import ThreadWorkers

    class Greeting(Setting):
        name = "greeting"
        app = "testapp"
        section = "Test App"
        flags = ["--greeting"]
        default = "hello"
        validator = validate_string
        desc = "What to say."

    class AppThreadWorkers(ThreadWorkers):
        app = "testapp"
        default = 10
        override = True

    with pytest.raises(TypeError, match=r"override = True"):

        class NoOverride(ThreadWorkers):
            app = "otherapp"

    plain, app = Config(), Config(apps=("testapp",))
    assert "greeting" not in plain
    assert app.greeting == "hello"
    assert (plain.thread_workers, app.thread_workers) == (4, 10)
    # the override keeps its place in --help and the docs
    assert list(app.settings).index("thread_workers") == list(plain.settings).index(
        "thread_workers"
    )
    assert list(app.settings)[-1] == "greeting"
    assert Config(apps="testapp").apps == ("testapp",)
    reference = settings_reference(["testapp"], include_core=False)
    assert "## Test App" in reference and "### `greeting`" in reference
    assert "application `testapp`" in reference
    assert "### `workers`" not in reference


def test_two_apps_declaring_one_name(registry: None) -> None:
    for app in ("app_a", "app_b"):
        type(
            f"Color_{app}",
            (Setting,),
            {"name": "color", "app": app, "section": "S", "desc": "A color."},
        )
    with pytest.raises(ConfigError, match=r"'color' is declared by both apps 'app_a' and 'app_b'"):
        Config(apps=("app_a", "app_b"))


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": "Bad-Name"}, "lower_case_with_underscores"),
        ({"flags": ["workers"]}, "invalid flags"),
        ({"flags": ["--Upper"]}, "invalid flags"),
        ({"desc": ""}, "one-line desc"),
        ({"desc": "two\nlines"}, "one-line desc"),
        ({"section": ""}, "needs a section"),
        ({"default": "abc", "validator": validate_int}, "invalid default 'abc'"),
    ],
)
def test_bad_declarations(registry: None, attrs: dict[str, Any], message: str) -> None:
    base = {"name": "brand_new", "section": "S", "desc": "A setting.", "app": "decl"}
    with pytest.raises(TypeError, match=message):
        type("Bad", (Setting,), {**base, **attrs})


def test_choices_give_a_validator(registry: None) -> None:
    class Mode(Setting):
        name = "mode"
        app = "choices"
        section = "S"
        flags = ["--mode"]
        default = "a"
        choices = ["a", "b"]
        desc = "A mode."

    cfg = Config(apps=["choices"])
    cfg.set("mode", "b")
    with pytest.raises(ConfigError, match=r"^mode: invalid value 'c' \(expected one of a, b\)$"):
        cfg.set("mode", "c")


# ---------------------------------------------------------------------------------------------
# Config object
# ---------------------------------------------------------------------------------------------


def test_attribute_access_get_set() -> None:
    cfg = SConfig(workers=3, bind=":9000")
    assert cfg.workers == 3
    assert cfg.bind == ["0.0.0.0:9000"]
    assert cfg.get("workers") == 3
    with pytest.raises(ConfigError, match=r"^unknown setting 'nope'$"):
        cfg.get("nope")  # reading an undeclared setting raises, never a silent None
    with pytest.raises(ConfigError, match=r"did you mean 'workers'"):
        cfg.get("wokers")
    assert cfg.get("nope", 7) == 7  # explicitly optional (another application's setting)
    cfg.set("timeout", "2.5")
    assert cfg.timeout == 2.5
    cfg.workers = 4
    assert cfg.settings["workers"].value == 4
    assert cfg.settings["workers"].source == "code"
    assert "workers" in cfg and "nope" not in cfg
    with pytest.raises(AttributeError):
        _ = cfg.nope
    with pytest.raises(AttributeError):
        cfg.nope = 1
    with pytest.raises(AttributeError):
        cfg.prefix = "x"
    with pytest.raises(TypeError):
        cfg.settings["workers"] = None  # type: ignore[index]  # read-only mapping


def test_set_bad_value_names_setting() -> None:
    cfg = Config()
    with pytest.raises(ConfigError) as info:
        cfg.set("workers", "abc")
    assert str(info.value) == "workers: invalid value 'abc' (expected a non-negative integer)"
    assert info.value.setting == "workers"
    assert cfg.workers == 1
    with pytest.raises(
        ConfigError, match=r"^unknown setting 'wokers' \(did you mean 'workers'\?\)"
    ):
        cfg.set("wokers", 2)


def test_constructor_params_validated() -> None:
    with pytest.raises(ConfigError, match=r"^unknown setting 'x'$") as info:
        Config(x=1)
    assert info.value.setting == "x"
    with pytest.raises(ConfigError, match=r"^unknown setting 'worker' \(did you mean"):
        Config(worker=1)
    with pytest.raises(ConfigError, match=r"^log_level: invalid value 'loud'"):
        Config(log_level="loud")
    with pytest.raises(ConfigError, match=r"invalid prefix"):
        Config(prefix="Bad-Prefix")


def test_update_is_all_or_nothing() -> None:
    cfg = SConfig()
    with pytest.raises(ConfigError, match=r"^backlog:"):
        cfg.update({"workers": 5, "backlog": 0})
    assert cfg.workers == 1
    cfg.update({"workers": 5, "backlog": 10})
    assert (cfg.workers, cfg.backlog) == (5, 10)


def test_items_and_repr() -> None:
    cfg = Config(workers=2)
    items = dict(cfg.items())
    assert list(items) == list(cfg.settings)
    assert items["workers"] == 2
    assert repr(cfg) == "Config(apps=[], workers=2)"
    assert "prefix='rpc'" in repr(cfg.prefixed("rpc"))


def test_copy_is_independent() -> None:
    cfg = SConfig(bind=["a.example:1"], log_config={"version": 1, "root": {"level": "INFO"}})
    other = cfg.copy()
    assert other == cfg and other is not cfg
    other.bind.append("b.example:2")
    other.log_config["root"]["level"] = "DEBUG"
    other.set("workers", 9)
    assert cfg.bind == ["a.example:1"]
    assert cfg.log_config["root"]["level"] == "INFO"
    assert cfg.workers == 1
    assert other.settings["workers"] is not cfg.settings["workers"]
    import copy

    assert copy.copy(cfg) == cfg
    assert copy.deepcopy(cfg) == cfg


def test_check_heartbeat_below_timeout() -> None:
    SConfig(heartbeat=5, timeout=30).check()
    SConfig(heartbeat=50, timeout=0).check()  # timeouts disabled
    with pytest.raises(ConfigError) as info:
        SConfig(heartbeat=30, timeout=30).check()
    assert str(info.value) == "heartbeat: 30 must be less than timeout (30)"
    assert info.value.setting == "heartbeat"
    with pytest.raises(ConfigError, match=r"^key_file: set without cert_file$"):
        SConfig(key_file="k.pem").check()


def test_pickle_round_trip_with_hooks(tmp_path: Path) -> None:
    cfg = Config(
        prefix="rpc",
        workers=3,
        worker_start=textwrap.dedent,  # a module-level function: pickled by reference
        worker_stopping="os.path:basename",  # a dotted string: imported lazily
        worker_info=operator.add,
    )
    clone = pickle.loads(pickle.dumps(cfg))
    assert clone == cfg
    assert clone.prefix == "rpc"
    assert clone.worker_start is textwrap.dedent
    assert clone.worker_stopping("/x/y") == "y"
    assert clone.settings["workers"].source == "code"
    assert clone.worker_info(2, 3) == 5


def test_pickle_refuses_a_lambda_naming_the_setting() -> None:
    cfg = Config(worker_start=lambda worker: None)
    with pytest.raises(ConfigError, match=r"^worker_start: .* cannot be pickled") as info:
        pickle.dumps(cfg)
    assert info.value.setting == "worker_start"


def test_config_crosses_spawn(tmp_path: Path) -> None:
    """Functions from a config file reach a spawned child (the file is executed there again)."""
    path = write(
        tmp_path / "conf.py",
        """
        workers = 4

        def worker_start(worker):
            return ("started", worker)
        """,
    )
    cfg = Config()
    cfg.load([], {"PULSAR_CONFIG": path})
    assert cfg.worker_start(1) == ("started", 1)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        workers = pool.submit(operator.attrgetter("workers"), cfg)
        started = pool.submit(operator.methodcaller("worker_start", 7), cfg)
        assert workers.result(timeout=60) == 4
        assert started.result(timeout=60) == ("started", 7)


# ---------------------------------------------------------------------------------------------
# layering
# ---------------------------------------------------------------------------------------------

LAYERS = ("code", "file", "env", "cli")


@pytest.mark.parametrize(
    "present", [(), *[LAYERS[: i + 1] for i in range(4)], ("code", "env"), ("file", "cli")]
)
def test_layer_order_on_one_setting(tmp_path: Path, present: tuple[str, ...]) -> None:
    values = {"code": 2, "file": 3, "env": 4, "cli": 5}
    path = write(tmp_path / "conf.py", "workers = 3\n" if "file" in present else "")
    params: dict[str, Any] = {"workers": 2} if "code" in present else {}
    cfg = Config(config=path, **params)
    environ = {"PULSAR_WORKERS": "4"} if "env" in present else {}
    argv = ["-w", "5"] if "cli" in present else []
    cfg.load(argv, environ)
    expected = values[present[-1]] if present else 1
    assert cfg.workers == expected
    assert cfg.settings["workers"].source == (present[-1] if present else "default")


def test_five_layers_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path / "conf.py",
        """
        workers = 3
        graceful_timeout = 12
        backlog = 300
        """,
    )
    cfg = SConfig(workers=2, timeout=11, backlog=200, config=path)
    environ = {"PULSAR_WORKERS": "4", "PULSAR_MAX_REQUESTS": "13", "PULSAR_BACKLOG": "400"}
    result = cfg.load(["--workers", "5", "--keep-alive", "14"], environ)
    assert result.extras == [] and vars(result.args) == {}
    expected = {
        "workers": (5, "cli"),  # set by all five layers: the command line wins
        "heartbeat": (5, "default"),
        "timeout": (11, "code"),
        "graceful_timeout": (12, "file"),
        "max_requests": (13, "env"),
        "keep_alive": (14, "cli"),
        "backlog": (400, "env"),  # code < file < env
        "config": (path, "code"),
    }
    for name, (value, source) in expected.items():
        setting = cfg.settings[name]
        assert (setting.value, setting.source) == (value, source), name


def test_config_file_chosen_by_highest_layer(tmp_path: Path) -> None:
    a = write(tmp_path / "a.py", "workers = 10\n")
    b = write(tmp_path / "b.py", "workers = 20\n")
    c = write(tmp_path / "c.py", "workers = 30\n")
    cfg = Config(config=a)
    cfg.load([], {})
    assert cfg.workers == 10
    cfg = Config(config=a)
    cfg.load([], {"PULSAR_CONFIG": b})
    assert (cfg.workers, cfg.config) == (20, b)
    cfg = Config(config=a)
    cfg.load(["-c", c], {"PULSAR_CONFIG": b})
    assert (cfg.workers, cfg.config) == (30, c)
    cfg = Config(config=a)
    cfg.load(["--config", ""], {})  # an empty value turns the file off
    assert (cfg.workers, cfg.config) == (1, None)


def test_failed_load_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "workers = 7\n")
    cfg = SConfig(config=path, backlog=10)
    with pytest.raises(ConfigError, match=r"^--timeout:"):
        cfg.load(["--timeout", "-1"], {"PULSAR_BACKLOG": "20"})
    assert (cfg.workers, cfg.backlog, cfg.timeout) == (1, 10, 30)


def test_load_runs_cross_checks() -> None:
    cfg = Config()
    with pytest.raises(ConfigError, match=r"^heartbeat: 40 must be less than timeout \(30\)$"):
        cfg.load(["--heartbeat", "40"], {})
    cfg.load(["--heartbeat", "40", "--timeout", "60"], {})
    assert (cfg.heartbeat, cfg.timeout) == (40, 60)


# ---------------------------------------------------------------------------------------------
# config file
# ---------------------------------------------------------------------------------------------


def test_config_file_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path / "conf.py",
        """
        import os
        from os.path import join

        WORKERS = 99               # not lower-case: ignored
        _private = 1               # ignored
        workers = 2
        bind = ["0.0.0.0:80", "unix:/tmp/x.sock"]
        log_level = "DEBUG"
        log_config = {"version": 1}
        access_log = False

        def helper(x):             # a function that is not a setting: ignored
            return x

        class Helper:              # ignored
            pass

        def worker_start(worker):
            return helper(worker)

        worker_stopping = "os.path:basename"
        """,
    )
    cfg = SConfig(config=path)
    cfg.load([], {})
    assert cfg.workers == 2
    assert cfg.bind == ["0.0.0.0:80", "unix:/tmp/x.sock"]
    assert cfg.log_level == "debug"
    assert cfg.log_config == {"version": 1}
    assert cfg.access_log is False
    assert cfg.worker_start(5) == 5
    assert isinstance(cfg.worker_start, LazyCallable)
    assert str(cfg.worker_start) == f"{path}:worker_start"
    assert cfg.worker_stopping("/a/b") == "b"
    assert cfg.settings["bind"].source == "file"


def test_config_file_unknown_name(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "wokers = 2\n")
    with pytest.raises(ConfigError) as info:
        Config(config=path).load([], {})
    assert str(info.value) == (
        f"unknown setting 'wokers' in config file {path} (did you mean 'workers'?)"
    )
    assert info.value.setting == "wokers"
    path = write(tmp_path / "conf2.py", "handler = object()\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'handler' in config file"):
        Config(config=path).load([], {})


def test_config_file_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "workers = 'abc'\n")
    with pytest.raises(ConfigError) as info:
        Config(config=path).load([], {})
    assert str(info.value) == (
        f"config file {path}: workers: invalid value 'abc' (expected a non-negative integer)"
    )
    assert info.value.setting == "workers"
    path = write(tmp_path / "hook.py", "def worker_info(worker):\n    pass\n")
    with pytest.raises(ConfigError, match=r"worker_info: invalid value .* taking 2 positional"):
        Config(config=path).load([], {})


def test_config_file_cannot_set_config(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "config = 'other.py'\n")
    with pytest.raises(ConfigError, match=r"'config' cannot be set from a config file"):
        Config(config=path).load([], {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "config file {path} not found"),
        ("workers = (\n", "config file {path}:1: syntax error: "),
        ("raise RuntimeError('boom')\n", "config file {path}: RuntimeError: boom"),
        ("import no_such_module_xyz\n", "config file {path}: ModuleNotFoundError: "),
    ],
)
def test_config_file_missing_or_broken(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "conf.py"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Config(config=str(path)).load([], {})
    assert str(info.value).startswith(message.format(path=path))
    assert info.value.setting == "config"


def test_config_file_not_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^config file {tmp_path} cannot be read"):
        Config(config=str(tmp_path)).load([], {})


def test_config_file_with_prefixes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "conf.py",
        """
        log_level = "warning"      # global: every application
        rpc_workers = 2
        web_workers = 3
        web_access_log = False
        """,
    )
    rpc, web = SConfig(prefix="rpc"), SConfig(prefix="web", config=path)
    Config.load_many([rpc, web], [], {})
    assert (rpc.workers, web.workers) == (2, 3)
    assert (rpc.access_log, web.access_log) == (True, False)
    assert rpc.log_level == web.log_level == "warning"
    path = write(tmp_path / "plain.py", "workers = 2\n")
    with pytest.raises(ConfigError, match=r"'workers' needs an application prefix here"):
        Config.load_many([SConfig(prefix="rpc", config=path)], [], {})


# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("1", True), ("yes", True), ("OFF", False)])
def test_env_bool(text: str, value: bool) -> None:
    cfg = SConfig()
    cfg.load([], {"PULSAR_REUSE_PORT": text})
    assert cfg.reuse_port is value
    assert cfg.settings["reuse_port"].source == "env"


def test_env_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        SConfig().load([], {"PULSAR_REUSE_PORT": "maybe"})
    assert str(info.value) == (
        "PULSAR_REUSE_PORT: invalid value 'maybe' (expected a boolean: 1/true/yes/on or "
        "0/false/no/off)"
    )
    assert info.value.setting == "reuse_port"
    with pytest.raises(ConfigError, match=r"^PULSAR_WORKERS: invalid value 'abc' \(expected"):
        SConfig().load([], {"PULSAR_WORKERS": "abc"})


def test_env_values() -> None:
    cfg = SConfig()
    environ = {
        "PULSAR_BIND": "a.example:1, :2",
        "PULSAR_TIMEOUT": "7.5",
        "PULSAR_LOG_LEVEL": "ERROR",
        "PULSAR_WORKER_START": "os.path:basename",  # hooks have no environment variable
        "PULSAR_NOT_A_SETTING": "1",  # ignored
        "WORKERS": "9",  # ignored: no PULSAR_ prefix
    }
    cfg.load([], environ)
    assert cfg.bind == ["a.example:1", "0.0.0.0:2"]
    assert cfg.timeout == 7.5
    assert cfg.log_level == "error"
    assert cfg.settings["worker_start"].source == "default"
    assert cfg.workers == 1


def test_env_prefixed() -> None:
    cfg = Config(prefix="rpc")
    environ = {"PULSAR_RPC_WORKERS": "3", "PULSAR_WORKERS": "8", "PULSAR_LOG_LEVEL": "debug"}
    cfg.load([], environ)
    assert cfg.workers == 3
    assert cfg.log_level == "debug"
    assert cfg.settings["workers"].env_var("rpc") == "PULSAR_RPC_WORKERS"
    assert cfg.settings["log_level"].env_var("rpc") == "PULSAR_LOG_LEVEL"
    with pytest.raises(ConfigError, match=r"^PULSAR_RPC_TIMEOUT: invalid value"):
        Config(prefix="rpc").load([], {"PULSAR_RPC_TIMEOUT": "soon"})


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def help_text(capsys: pytest.CaptureFixture[str], parser: Any) -> str:
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_grouped_by_section(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = SConfig(workers=3, description="Serve things.")
    text = help_text(capsys, cfg.parser(prog="pulsar-test"))
    assert text.startswith("usage: pulsar-test")
    assert "Serve things." in text
    headings = [
        "Config:",
        "Worker Processes:",
        "Server Socket:",
        "Server Mechanics:",
        "Logging:",
    ]
    positions = [text.index(heading) for heading in headings]
    assert positions == sorted(positions)
    workers = text.index("-w INT, --workers INT")
    assert positions[1] < workers < positions[2]
    assert "[default: 3; env PULSAR_WORKERS]" in text  # the current value
    assert "[default: 127.0.0.1:8060; env PULSAR_BIND]" in text
    assert "--reuse-port, --no-reuse-port" in text
    assert "--log-level {debug,info,warning,error,critical}" in text
    assert "Server Hooks" not in text and "worker_start" not in text


def test_every_flagged_setting_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = Config()
    text = help_text(capsys, cfg.parser())
    for setting in cfg.settings.values():
        for flag in setting.flags:
            assert flag in text, flag


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for parser, expected in [
        (Config().parser(prog="pulsar-x"), f"pulsar-x {dist_version('pulsar-core')}"),
        (Config().parser(prog="pulsar-x", version="9.9"), "pulsar-x 9.9"),
    ]:
        with pytest.raises(SystemExit) as info:
            parser.parse_args(["--version"])
        assert info.value.code == 0
        assert capsys.readouterr().out.strip() == expected
    with pytest.raises(SystemExit):
        Config().load(["--version"], {}, prog="p", version="1.2")
    assert capsys.readouterr().out.strip() == "p 1.2"


@pytest.mark.parametrize(
    ("argv", "setting", "message"),
    [
        (
            ["--workers", "abc"],
            "workers",
            "--workers: invalid value 'abc' (expected a non-negative integer)",
        ),
        (
            ["-w", "abc"],
            "workers",
            "--workers: invalid value 'abc' (expected a non-negative integer)",
        ),
        (
            ["-b", "x:70000"],
            "bind",
            "--bind: invalid value ['x:70000'] (port 70000 out of range (0-65535))",
        ),
        (
            ["--io", "tokio"],
            "io",
            "--io: invalid value 'tokio' (expected one of auto, asyncio, uvloop)",
        ),
        (
            ["--timeout", "-1"],
            "timeout",
            "--timeout: invalid value '-1' (expected a non-negative number)",
        ),
    ],
)
def test_cli_bad_value(argv: list[str], setting: str, message: str) -> None:
    cfg = SConfig()
    with pytest.raises(ConfigError) as info:
        cfg.load(argv, {})
    assert str(info.value) == message
    assert info.value.setting == setting


def test_cli_parse_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^unrecognized arguments: --nope$"):
        Config().load(["--nope"], {})
    with pytest.raises(ConfigError, match=r"^argument -w/--workers: expected one argument$"):
        Config().load(["-w"], {})


def test_cli_values() -> None:
    cfg = SConfig(access_log=True)
    cfg.load(
        [
            "-b",
            "a.example:1",
            "--bind",
            "b.example:2,:3",
            "--no-access-log",
            "-D",
            "--io",
            "UVLOOP",
        ],
        {"PULSAR_BIND": "ignored.example:1"},
    )
    assert cfg.bind == ["a.example:1", "b.example:2", "0.0.0.0:3"]
    assert cfg.access_log is False
    assert cfg.daemon is True
    assert cfg.io == "uvloop"
    assert cfg.settings["daemon"].source == "cli"
    cfg.load(["--no-daemon"], {})
    assert cfg.daemon is False


def test_parser_with_extra_arguments() -> None:
    cfg = Config()
    parser = cfg.parser(prog="pulsar-wsgi")
    parser.add_argument("app_uri", help="module:callable")
    result = cfg.load(["-w", "2", "mymodule:app"], {}, parser=parser)
    assert result.args.app_uri == "mymodule:app"
    assert vars(result.args) == {"app_uri": "mymodule:app"}
    assert cfg.workers == 2


def test_known_only_returns_extras() -> None:
    cfg = Config()
    result = cfg.load(["-w", "2", "--other", "x", "pos"], {}, known_only=True)
    assert cfg.workers == 2
    assert result.extras == ["--other", "x", "pos"]


def test_prefixed_flags() -> None:
    cfg = SConfig().prefixed("rpc")
    assert cfg.settings["workers"].flags_for("rpc") == ("--rpc-workers",)
    assert cfg.settings["reuse_port"].flags_for("rpc") == ("--rpc-reuse-port",)
    assert cfg.settings["log_level"].flags_for("rpc") == ("--log-level",)
    assert cfg.settings["worker_start"].flags_for("rpc") == ()
    assert SConfig(prefix="my_app").settings["workers"].flags_for("my_app") == ("--my-app-workers",)
    cfg.load(["--rpc-workers", "4", "--no-rpc-access-log"], {})
    assert (cfg.workers, cfg.access_log) == (4, False)
    with pytest.raises(ConfigError, match=r"unrecognized arguments: -w 4"):
        cfg.load(["-w", "4"], {})


def test_two_apps_in_one_parser(capsys: pytest.CaptureFixture[str]) -> None:
    rpc, web = SConfig(prefix="rpc"), SConfig(prefix="web", workers=2)
    parser = Config.parser_for([rpc, web], prog="multi")
    text = help_text(capsys, parser)
    assert text.count("--log-level") == 2  # once in usage, once in its group
    assert "Worker Processes [rpc]:" in text and "Worker Processes [web]:" in text
    assert text.index("Logging:") < text.index("Worker Processes [rpc]:")
    assert "--web-workers INT" in text and "[default: 2; env PULSAR_WEB_WORKERS]" in text
    Config.load_many(
        [rpc, web],
        ["--rpc-workers", "3", "--log-level", "debug", "--web-bind", ":81"],
        {"PULSAR_WEB_TIMEOUT": "9", "PULSAR_RPC_TIMEOUT": "8"},
    )
    assert (rpc.workers, web.workers) == (3, 2)
    assert rpc.log_level == web.log_level == "debug"
    assert web.bind == ["0.0.0.0:81"] and rpc.bind == ["127.0.0.1:8060"]
    assert (rpc.timeout, web.timeout) == (8, 9)
    with pytest.raises(ConfigError, match=r"^--web-workers: invalid value 'x'"):
        Config.load_many([rpc, web], ["--web-workers", "x"], {})


def test_add_arguments_to_own_parser() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    cfg = Config()
    Config.add_arguments(parser, [cfg])
    parser.add_argument("--mine", default="m")
    result = cfg.load(["--workers", "6"], {}, parser=parser)
    assert cfg.workers == 6
    assert vars(result.args) == {"mine": "m"}


# ---------------------------------------------------------------------------------------------
# settings reference
# ---------------------------------------------------------------------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_settings_doc", ROOT / "tools/gen_settings_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (ROOT / "tools" / "gen_settings_doc.py").exists(), reason="not in the repository"
)
def test_docs_settings_md_is_up_to_date() -> None:
    expected = _generator().render()
    current = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert current == expected, (
        "docs/settings.md is stale: run `hatch run python tools/gen_settings_doc.py`"
    )


def test_settings_reference_content() -> None:
    text = settings_reference(("socket",))
    for name, setting in SConfig().settings.items():
        assert f"### `{name}`" in text
        assert setting.desc in text
    assert "- Command line: `-w INT`, `--workers INT`" in text
    assert "- Environment: `PULSAR_WORKERS`" in text
    assert "- Default: `['127.0.0.1:8060']`" in text
    assert "- Command line: `--reuse-port`, `--no-reuse-port`" in text
    assert "- Default: `16777216` (16 MiB)" in text
    assert "- Scope: global (no MultiApp prefix)" in text
    assert "- Command line: none (code or config file)" in text
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections == [
        "Contents",
        "Config",
        "Worker Processes",
        "Server Socket",
        "Server Mechanics",
        "Logging",
        "Monitoring",
        "Server Hooks",
    ]
    assert "- Command line: `--dashboard [ADDRESS]`" in text
    assert "[`config`](#config-1)" in text  # the setting's heading follows the section's


# ---------------------------------------------------------------------------------------------
# Typed views
# ---------------------------------------------------------------------------------------------


def test_views_are_frozen_typed_snapshots() -> None:
    import dataclasses

    from pulsar.options import ActorOptions, MonitorOptions, ServerOptions

    cfg = SConfig(graceful_timeout=0, bind=["127.0.0.1:0", "unix:/tmp/x.sock"], workers=3)
    actor = cfg.view(ActorOptions)
    assert actor.graceful_timeout == 0  # a 0 is a 0 (never `or 30`)
    assert actor.heartbeat == 5 and actor.spawn_timeout == 10  # the Settings' defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        actor.graceful_timeout = 5  # type: ignore[misc]
    server = cfg.view(ServerOptions)
    assert server.bind == ("127.0.0.1:0", "unix:/tmp/x.sock")  # lists become tuples
    assert (server.backlog, server.keep_alive, server.workers) == (2048, 15, 3)
    assert cfg.view(MonitorOptions).restart_window == 60
    cfg.set("graceful_timeout", 7)
    assert actor.graceful_timeout == 0 and cfg.view(ActorOptions).graceful_timeout == 7
    # a view naming a setting the config does not declare raises (a task queue is no server)
    with pytest.raises(ConfigError, match=r"^unknown setting 'bind'"):
        Config().view(ServerOptions)
