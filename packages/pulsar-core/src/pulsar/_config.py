"""Settings registry and configuration layering.

How it works
------------
A setting is declared once, as a subclass of :class:`Setting` naming its ``name``, command-line
``flags``, ``default``, ``validator``, ``section`` and ``desc``/``doc``. Creating the class
registers it (keyed by ``(app, name)``): core settings have ``app = None``, a sibling package
declares its own with ``app = "wsgi"`` and so on. The same classes build the argparse parser,
read the environment and produce the settings reference (:func:`settings_reference`).

A :class:`Config` holds one instance of every core setting plus the settings of the applications
named in ``apps``. A value goes through the setting's validator whichever way it arrives, and
the layers apply in this order, each overriding the previous one:

1. the declared default;
2. constructor parameters (``Config(workers=2)``) and ``cfg.set()`` / ``cfg.update()``;
3. the Python config file named by the ``config`` setting (``-c/--config``);
4. ``PULSAR_<NAME>`` environment variables;
5. the command line.

Layers 3 to 5 are applied by :meth:`Config.load` (one config) or :meth:`Config.load_many` (the
configs of a MultiApp, sharing one parser). Loading works on copies and commits only when every
value is valid, so a failed load leaves the configs as they were. A bad value raises
:class:`~pulsar.ConfigError` with one line naming the setting the way the user spelled it
(``--workers``, ``PULSAR_WORKERS``, ``config file conf.py: workers``) and the value::

    --workers: invalid value 'abc' (expected a non-negative integer)

Prefixes: a config with ``prefix="rpc"`` (a MultiApp member) reads its non-global settings from
``--rpc-workers`` (short flags dropped), ``PULSAR_RPC_WORKERS`` and ``rpc_workers`` in the config
file. Global settings (``is_global = True``: arbiter-wide ones such as ``log_level``) never take a
prefix.

Pickling: a config travels to every actor, also through ``multiprocessing`` spawn. Callable values
must then be module-level functions, or ``"module:attr"`` strings, which become
:class:`LazyCallable` objects imported on first call. Functions defined in a config file are
stored as references to (file, name) and the file is executed again in a spawned child.

Size: this module is past the usual ~800 lines because validators, addresses, the registry,
``Config`` and its loaders form one API that sibling packages use through ``pulsar``; the
validators and :func:`parse_address` are the first candidates to move to their own module.
"""

from __future__ import annotations

import argparse
import builtins
import copy
import dataclasses
import difflib
import importlib
import inspect
import ipaddress
import itertools
import math
import os
import pickle
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, TypeVar

from pulsar._exceptions import ConfigError

__all__ = [
    "Address",
    "CONFIG_MODULE",
    "Config",
    "LOG_LEVELS",
    "LazyCallable",
    "LoadResult",
    "Setting",
    "parse_address",
    "settings_reference",
    "validate_address_or_flag",
    "validate_bind",
    "validate_bool",
    "validate_callable",
    "validate_choice",
    "validate_dict_or_path",
    "validate_group",
    "validate_int",
    "validate_list_of_strings",
    "validate_log_level",
    "validate_non_negative_int",
    "validate_non_negative_number",
    "validate_path_or_none",
    "validate_positive_int",
    "validate_positive_number",
    "validate_string",
    "validate_string_or_none",
    "validate_umask",
    "validate_user",
]

Validator = Callable[[Any], Any]

#: the ``__name__`` under which config files run; functions they define carry it as ``__module__``
CONFIG_MODULE = "__pulsar_config__"

# ---------------------------------------------------------------------------------------------
# Validators: value -> value, raising ValueError/TypeError whose message is the reason only
# ("expected a non-negative integer"); the caller adds the setting name and the value.
# ---------------------------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_INT_RE = re.compile(r"\s*[-+]?\d+\s*")


def validate_bool(value: Any) -> bool:
    """A boolean: ``True``/``False``, ``0``/``1`` or (any case) 1/true/yes/on, 0/false/no/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("expected a boolean: 1/true/yes/on or 0/false/no/off")


def _integer(value: Any, expected: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    raise ValueError(expected)


def validate_int(value: Any) -> int:
    """An integer (an ``int`` or a string of digits with an optional sign)."""
    return _integer(value, "expected an integer")


def validate_non_negative_int(value: Any) -> int:
    """An integer >= 0."""
    number = _integer(value, "expected a non-negative integer")
    if number < 0:
        raise ValueError("expected a non-negative integer")
    return number


def validate_positive_int(value: Any) -> int:
    """An integer > 0."""
    number = _integer(value, "expected a positive integer")
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _number(value: Any, expected: str) -> int | float:
    if isinstance(value, bool):
        raise ValueError(expected)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number: int | float = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if _INT_RE.fullmatch(text) else float(text)
        except ValueError:
            raise ValueError(expected)
    else:
        raise ValueError(expected)
    if not math.isfinite(number):
        raise ValueError(expected)
    return number


def validate_positive_number(value: Any) -> int | float:
    """A finite number > 0 (seconds, typically); ints stay ints, ``"1.5"`` becomes ``1.5``."""
    number = _number(value, "expected a positive number")
    if number <= 0:
        raise ValueError("expected a positive number")
    return number


def validate_non_negative_number(value: Any) -> int | float:
    """A finite number >= 0 (seconds where 0 usually means "disabled")."""
    number = _number(value, "expected a non-negative number")
    if number < 0:
        raise ValueError("expected a non-negative number")
    return number


def validate_string(value: Any) -> str:
    """A string (surrounding whitespace is stripped)."""
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value.strip()


def validate_string_or_none(value: Any) -> str | None:
    """A string, or ``None``; an empty string means ``None``."""
    if value is None:
        return None
    return validate_string(value) or None


def validate_choice(choices: Iterable[str], *, ignore_case: bool = False) -> Validator:
    """Return a validator accepting one of ``choices`` (returned as spelled in ``choices``).

    With ``ignore_case`` the comparison is case-insensitive (``"DEBUG"`` -> ``"debug"``).
    """
    options = tuple(choices)
    lookup = {(c.lower() if ignore_case else c): c for c in options}
    expected = "expected one of " + ", ".join(options)

    def validator(value: Any) -> str:
        if isinstance(value, str):
            text = value.strip()
            found = lookup.get(text.lower() if ignore_case else text)
            if found is not None:
                return found
        raise ValueError(expected)

    validator.__doc__ = f"One of {', '.join(options)}."
    return validator


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_log_level = validate_choice(LOG_LEVELS, ignore_case=True)


def validate_log_level(value: Any) -> str:
    """A logging level name: debug, info, warning, error or critical (any case; returned lower)."""
    return str(_log_level(value))


def validate_list_of_strings(value: Any) -> list[str]:
    """A list of strings: a comma-separated string, or a list/tuple whose items may hold commas.

    Items are stripped and empty ones dropped; ``None`` is the empty list.
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("expected a string or a list of strings")
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("expected a string or a list of strings")
        result.extend(part.strip() for part in item.split(",") if part.strip())
    return result


def validate_path_or_none(value: Any) -> str | None:
    """A filesystem path (``str`` or path-like; ``~`` expanded), or ``None``; ``""`` means None.

    The path need not exist yet (a pid file, for one).
    """
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValueError("expected a path")
    value = value.strip()
    return os.path.expanduser(value) if value else None


def validate_dict_or_path(value: Any) -> dict[str, Any] | str | None:
    """A :func:`logging.config.dictConfig` dict, the path of a ``.json``/``.py`` file, or None."""
    if isinstance(value, dict):
        return copy.deepcopy(value)
    expected = "expected a dict or the path of a .json or .py file"
    try:
        path = validate_path_or_none(value)
    except ValueError:
        raise ValueError(expected)
    if path is not None and not path.lower().endswith((".json", ".py")):
        raise ValueError(expected)
    return path


def _owner_id(value: Any, kind: str) -> int | None:
    """Resolve a user/group (name or numeric id) to its numeric id."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    expected = f"expected a {kind} name or a non-negative numeric id"
    if isinstance(value, str) and not _INT_RE.fullmatch(value):
        name = value.strip()
        try:
            if kind == "user":
                import pwd

                return pwd.getpwnam(name).pw_uid
            import grp

            return grp.getgrnam(name).gr_gid
        except ImportError:
            raise ValueError(f"{kind} names need a POSIX system; give a numeric id")
        except KeyError:
            raise ValueError(f"no such {kind} {name!r}")
    number = _integer(value, expected)
    if number < 0:
        raise ValueError(expected)
    return number


def validate_user(value: Any) -> int | None:
    """A user name or numeric uid, resolved to the uid (``None``: do not switch user)."""
    return _owner_id(value, "user")


def validate_group(value: Any) -> int | None:
    """A group name or numeric gid, resolved to the gid (``None``: do not switch group)."""
    return _owner_id(value, "group")


def validate_umask(value: Any) -> int | None:
    """A file mode creation mask 0..0o777: an int, or an octal string (``"022"``, ``"0o22"``).

    ``None`` (or ``""``) leaves the inherited umask alone.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    expected = "expected an octal mode between 000 and 777"
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]+", text):
            raise ValueError(expected)
        number = int(text, 8)
    else:
        number = _integer(value, expected)
    if not 0 <= number <= 0o777:
        raise ValueError(expected)
    return number


# --- callables -------------------------------------------------------------------------------

_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?")
_FILE_NAMESPACES: dict[str, dict[str, Any]] = {}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _check_arity(fn: Callable[..., Any], arity: int) -> None:
    """Raise ValueError unless ``fn`` accepts ``arity`` positional arguments."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: trust them
        return
    try:
        signature.bind(*([None] * arity))
    except TypeError:
        raise ValueError(f"expected a callable taking {_plural(arity, 'positional argument')}")


def _import_dotted(path: str) -> Any:
    """Import ``"module:attr.sub"`` or ``"module.attr"`` and return the object."""
    if ":" in path:
        module_name, _, attrs = path.partition(":")
    else:
        module_name, _, attrs = path.rpartition(".")
    target: Any = importlib.import_module(module_name)
    for attr in attrs.split("."):
        target = getattr(target, attr)
    return target


class LazyCallable:
    """A callable named by a dotted path, imported the first time it is called or resolved.

    ``path`` is ``"module:attr"`` or ``"module.attr"``; with ``file`` set, ``path`` is a name
    defined in that Python config file (which is executed again, once per process, when the
    object arrives unresolved in a spawned child). Pickles as its path, never as the target.
    """

    __slots__ = ("_target", "arity", "file", "path")

    def __init__(
        self,
        path: str,
        *,
        file: str | None = None,
        arity: int | None = None,
        target: Callable[..., Any] | None = None,
    ) -> None:
        self.path = path
        self.file = file
        self.arity = arity
        self._target = target

    def resolve(self) -> Callable[..., Any]:
        """Import (once) and return the target callable.

        Raises:
            ConfigError: the module or attribute is missing, the target is not callable, or it
                does not take ``arity`` positional arguments.
        """
        target = self._target
        if target is None:
            try:
                if self.file is not None:
                    namespace = _FILE_NAMESPACES.get(self.file)
                    if namespace is None:
                        namespace = _FILE_NAMESPACES[self.file] = _exec_config_file(self.file)
                    target = namespace[self.path]
                else:
                    target = _import_dotted(self.path)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"cannot load {self}: {type(exc).__name__}: {exc}")
            if not callable(target):
                raise ConfigError(f"cannot load {self}: {type(target).__name__} is not callable")
            if self.arity is not None:
                try:
                    _check_arity(target, self.arity)
                except ValueError as exc:
                    raise ConfigError(f"cannot load {self}: {exc}")
            self._target = target
        return target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getstate__(self) -> tuple[str, str | None, int | None]:
        return (self.path, self.file, self.arity)

    def __setstate__(self, state: tuple[str, str | None, int | None]) -> None:
        self.path, self.file, self.arity = state
        self._target = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LazyCallable):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash(self.__getstate__())

    def __str__(self) -> str:
        return f"{self.file}:{self.path}" if self.file else self.path

    def __repr__(self) -> str:
        return f"LazyCallable({str(self)!r})"


def validate_callable(arity: int | None = None) -> Validator:
    """Return a validator for a callable, or a ``"module:attr"``/``"module.attr"`` string.

    Strings become :class:`LazyCallable` objects (imported on first call). With ``arity``, a
    callable must accept that many positional arguments (checked now for callables, on
    resolution for strings).
    """
    expected = "expected a callable or a 'module:attr' string"
    if arity is not None:
        expected += f" (taking {_plural(arity, 'argument')})"

    def validator(value: Any) -> Any:
        if isinstance(value, LazyCallable):
            if value._target is not None and arity is not None:
                _check_arity(value._target, arity)
            return LazyCallable(value.path, file=value.file, arity=arity, target=value._target)
        if isinstance(value, str):
            text = value.strip()
            if not _DOTTED_RE.fullmatch(text) or not ("." in text or ":" in text):
                raise ValueError(expected)
            return LazyCallable(text, arity=arity)
        if not callable(value):
            raise ValueError(expected)
        if arity is not None:
            _check_arity(value, arity)
        return value

    validator.__doc__ = "A callable or a 'module:attr' string" + (
        f" taking {_plural(arity, 'argument')}." if arity is not None else "."
    )
    return validator


# --- addresses -------------------------------------------------------------------------------

_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_PORT_RE = re.compile(r"[-+]?\d+")


@dataclass(frozen=True, slots=True)
class Address:
    """A bind address: TCP ``host``/``port`` or a unix socket ``path``.

    ``str(address)`` is the canonical form (``127.0.0.1:8060``, ``[::1]:80``, ``unix:/tmp/s``).
    """

    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        """True for a unix socket address."""
        return self.path is not None

    @property
    def family(self) -> socket.AddressFamily:
        """``AF_UNIX``, ``AF_INET6``/``AF_INET`` for IP literals, ``AF_UNSPEC`` for host names."""
        if self.path is not None:
            return socket.AddressFamily(getattr(socket, "AF_UNIX", socket.AF_UNSPEC))
        try:
            ip = ipaddress.ip_address(self.host or "")
        except ValueError:
            return socket.AF_UNSPEC
        return socket.AF_INET6 if ip.version == 6 else socket.AF_INET

    @property
    def sockaddr(self) -> tuple[str, int] | str:
        """What ``socket.bind`` takes: the path, or ``(host, port)``."""
        if self.path is not None:
            return self.path
        return (self.host or "0.0.0.0", self.port or 0)

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = self.host or "0.0.0.0"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _port(text: str) -> int:
    if not _PORT_RE.fullmatch(text):
        raise ValueError(f"invalid port {text!r}")
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range (0-65535)")
    return port


def _host(text: str) -> str:
    host = text.lower()
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if (
        len(host) > 253
        or not all(_LABEL_RE.fullmatch(label) for label in labels)
        or all(label.isdigit() for label in labels)
    ):
        raise ValueError(f"invalid host {text!r}")
    return host


def _parse_address(value: Any) -> Address:
    """Parse a bind address; raise ValueError with the reason."""
    if isinstance(value, Address):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Address("0.0.0.0", _port(str(value)))
    if not isinstance(value, str):
        raise ValueError("expected an address string")
    text = value.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError("missing path after 'unix:'")
        return Address(path=path)
    if _PORT_RE.fullmatch(text):
        return Address("0.0.0.0", _port(text))
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError("missing ']' after the IPv6 address")
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r}")
        if not rest.startswith(":") or rest == ":":
            raise ValueError("missing port (use [HOST]:PORT)")
        return Address(str(ip), _port(rest[1:]))
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"missing port in {text!r} (use HOST:PORT, :PORT, PORT or unix:PATH)")
    if ":" in host:
        raise ValueError("IPv6 addresses need brackets: [HOST]:PORT")
    return Address(_host(host) if host else "0.0.0.0", _port(port))


def parse_address(value: str | int | Address) -> Address:
    """Parse a bind address into an :class:`Address`.

    Accepted forms: ``host:port``; ``:port`` and a bare ``port`` (all IPv4 interfaces,
    ``0.0.0.0``, as gunicorn does); ``[ipv6]:port`` (``[::]:port`` for all IPv6 interfaces);
    ``unix:/path`` (also ``unix:///path``). Port 0 asks the OS for a free port. Host names
    are lower-cased, IPv6 addresses normalised.

    Raises:
        ConfigError: e.g. ``bind: port 70000 out of range (0-65535)``; names the ``bind``
            setting.
    """
    try:
        return _parse_address(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bind: {exc}", "bind") from None


def validate_bind(value: Any) -> list[str]:
    """One or more bind addresses (a list, or a comma-separated string), each normalised to
    the canonical form of :func:`parse_address` (``":8000"`` -> ``"0.0.0.0:8000"``)."""
    if isinstance(value, (int, Address)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (list, tuple)):
        value = [str(item) if isinstance(item, (int, Address)) else item for item in value]
    items = validate_list_of_strings(value)
    if not items:
        raise ValueError("expected at least one address")
    return [str(_parse_address(item)) for item in items]


def validate_address_or_flag(default: str) -> Validator:
    """Return a validator for an optional single address that a flag may switch on.

    ``True`` (also ``1``, and the strings 1/true/yes/on) is ``default``; ``None``, ``False``
    (``0``, ``""``, 0/false/no/off) is None (off); anything else is one address in a form
    :func:`parse_address` accepts, returned normalised (``":9090"`` -> ``"0.0.0.0:9090"``).
    """
    default = str(parse_address(default))

    def validator(value: Any) -> str | None:
        if value is None or isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return default if value else None
        if isinstance(value, str):
            text = value.strip().lower()
            if not text or text in _FALSE:
                return None
            if text in _TRUE:
                return default
        return str(_parse_address(value))

    validator.__doc__ = f"An address (HOST:PORT...), True for {default}, or False/None: off."
    return validator


# ---------------------------------------------------------------------------------------------
# Setting declarations and the registry
# ---------------------------------------------------------------------------------------------

_REGISTRY: dict[tuple[str | None, str], builtins.type[Setting]] = {}
_ORDER = itertools.count()
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_FLAG_RE = re.compile(r"-[A-Za-z0-9]|--[a-z0-9][a-z0-9-]*")
_SOURCES = ("default", "code", "file", "env", "cli")
_MISSING: Any = object()
_V = TypeVar("_V")


class Setting:
    """Base class of every setting; each subclass declares one setting and registers itself.

    Class attributes (declared once, read by :class:`Config`, the parser and the docs):

    - ``name``: the identifier (``cfg.workers``, ``PULSAR_WORKERS``, ``workers`` in a file);
    - ``flags``: command-line flags (``["-w", "--workers"]``); empty: code/config file only,
      and then no environment variable either;
    - ``default``; ``default_doc``: how the docs show it when ``repr`` is not telling;
    - ``validator``: value -> value, raising ValueError/TypeError with the reason;
    - ``section``, ``desc`` (one line), ``doc`` (optional longer text);
    - argparse details: ``type`` (applied to strings from the command line and environment
      before the validator), ``nargs`` (with ``"?"``, the flag alone gives ``const``),
      ``action`` (default ``BooleanOptionalAction`` for
      :func:`validate_bool` settings, giving ``--x``/``--no-x``), ``meta``, ``choices``
      (when given without a validator, :func:`validate_choice` is used);
    - ``app``: None for core settings, the application name (``"wsgi"``) otherwise;
    - ``is_global``: arbiter-wide; a MultiApp prefix does not apply;
    - ``override``: set to True to replace a setting declared earlier with the same name
      (an app changing a core default: subclass the core setting, set ``app`` and
      ``override = True``).

    An instance holds ``value`` and ``source`` (``default``, ``code``, ``file``, ``env``,
    ``cli``: the layer that set it).
    """

    name: ClassVar[str] = ""
    flags: ClassVar[Sequence[str]] = ()
    default: ClassVar[Any] = None
    default_doc: ClassVar[str | None] = None
    validator: ClassVar[Validator | None] = None
    section: ClassVar[str] = ""
    desc: ClassVar[str] = ""
    doc: ClassVar[str] = ""
    type: ClassVar[Callable[[str], Any] | None] = None
    nargs: ClassVar[int | str | None] = None
    const: ClassVar[Any] = None
    action: ClassVar[str | builtins.type[argparse.Action] | None] = None
    meta: ClassVar[str | None] = None
    choices: ClassVar[Sequence[str] | None] = None
    app: ClassVar[str | None] = None
    is_global: ClassVar[bool] = False
    override: ClassVar[bool] = False
    order: ClassVar[int] = 0

    __slots__ = ("source", "value")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validator = cls.__dict__.get("validator")
        if validator is not None and not isinstance(validator, staticmethod):
            cls.validator = staticmethod(validator)  # type: ignore[assignment]
        if cls.name:
            _register(cls)

    def __init__(self) -> None:
        cls = type(self)  # class access: a function default must not become a bound method
        self.value: Any = cls.validate(copy.deepcopy(cls.default))
        self.source = "default"

    @classmethod
    def validate(cls, value: Any) -> Any:
        """Run the validator on ``value`` and return the result (raises ValueError/TypeError)."""
        validator = cls.validator
        return value if validator is None else validator(value)

    @classmethod
    def convert(cls, value: Any) -> Any:
        """Validate a value from outside: ``type`` first for strings, then the validator."""
        if cls.type is not None and isinstance(value, str):
            value = cls.type(value)
        return cls.validate(value)

    def set(self, value: Any, *, source: str = "code", label: str | None = None) -> None:
        """Validate and store ``value``.

        Raises:
            ConfigError: ``"<label>: invalid value <value> (<reason>)"``; ``label`` defaults
                to the setting name (the loader passes ``--flag``, ``PULSAR_X``, ...).
        """
        try:
            self.value = self.convert(value)
        except (ValueError, TypeError) as exc:
            raise _invalid(label or self.name, value, exc, self.name) from None
        self.source = source

    def check_config(self, cfg: Config) -> None:
        """Check this setting against others once all layers are applied (override it).

        Raise ValueError with the reason; :meth:`Config.check` adds the name.
        """

    @classmethod
    def flags_for(cls, prefix: str | None = None) -> tuple[str, ...]:
        """Command-line flags; with a prefix (non-global settings) ``--rpc-workers`` only."""
        if not prefix or cls.is_global or not cls.flags:
            return tuple(cls.flags)
        dashed = prefix.replace("_", "-")
        longs = [f"--{dashed}-{flag[2:]}" for flag in cls.flags if flag.startswith("--")]
        return tuple(longs or [f"--{dashed}-{cls.name.replace('_', '-')}"])

    @classmethod
    def env_var(cls, prefix: str | None = None) -> str | None:
        """The environment variable lined up with the long flag: ``--workers`` is
        ``PULSAR_WORKERS``, ``--rpc-workers`` ``PULSAR_RPC_WORKERS`` (``PULSAR_[PREFIX_]NAME``
        when the flag is the name, as for most settings); None for settings without flags
        (code/file only)."""
        if not cls.flags:
            return None
        longs = [flag[2:] for flag in cls.flags if flag.startswith("--")]
        base = (longs[0].replace("-", "_") if longs else cls.name).upper()
        if prefix and not cls.is_global:
            return f"PULSAR_{prefix.upper()}_{base}"
        return f"PULSAR_{base}"

    @classmethod
    def file_name(cls, prefix: str | None = None) -> str:
        """The name that sets it in a config file: ``workers``, or ``rpc_workers``."""
        return f"{prefix}_{cls.name}" if prefix and not cls.is_global else cls.name

    @classmethod
    def argparse_action(cls) -> str | builtins.type[argparse.Action] | None:
        """The argparse action (BooleanOptionalAction for boolean settings)."""
        if cls.action is None and cls.validator is validate_bool:
            return argparse.BooleanOptionalAction
        return cls.action

    def add_argument(self, parser: Any, prefix: str | None = None) -> argparse.Action | None:
        """Add this setting's flags to an argparse parser or argument group.

        Nothing is added for settings without flags. The argument's default is
        ``argparse.SUPPRESS`` (only flags given on the command line reach the namespace); the
        help ends with the current value and the environment variable.
        """
        flags = self.flags_for(prefix)
        if not flags:
            return None
        action = self.argparse_action()
        kwargs: dict[str, Any] = {
            "dest": _dest(None if self.is_global else prefix, self.name),
            "default": argparse.SUPPRESS,
            "help": self.help_text(prefix),
        }
        if action is not None:
            kwargs["action"] = action
        if action in (None, "store", "append", "extend"):
            kwargs["metavar"] = self.metavar()
            if self.nargs is not None:
                kwargs["nargs"] = self.nargs
            if self.nargs == "?":
                kwargs["const"] = self.const
        result: argparse.Action = parser.add_argument(*flags, **kwargs)
        return result

    @classmethod
    def metavar(cls) -> str:
        """The placeholder shown in help (``meta``, the choices, or the upper-case name)."""
        if cls.meta:
            return cls.meta
        if cls.choices:
            return "{" + ",".join(cls.choices) + "}"
        return cls.name.upper()

    def help_text(self, prefix: str | None = None) -> str:
        """Help line: description, current value, environment variable (``%`` escaped)."""
        text = f"{self.desc} [default: {_display(self.value)}"
        env = self.env_var(prefix)
        if env:
            text += f"; env {env}"
        return (text + "]").replace("%", "%%")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}={self.value!r} ({self.source})>"


def _register(cls: builtins.type[Setting]) -> None:
    """Check a declaration and add it to the registry (see :class:`Setting`)."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not _NAME_RE.fullmatch(cls.name):
        raise TypeError(f"{where}: setting name {cls.name!r} must be lower_case_with_underscores")
    flags = tuple(cls.flags)
    bad = [flag for flag in flags if not _FLAG_RE.fullmatch(flag)]
    if bad:
        raise TypeError(f"{where}: invalid flags {bad}")
    if not cls.section or not cls.desc or "\n" in cls.desc:
        raise TypeError(f"{where}: a setting needs a section and a one-line desc")
    cls.flags = flags
    if cls.choices is not None:
        cls.choices = tuple(cls.choices)
        if cls.validator is None:
            cls.validator = staticmethod(validate_choice(cls.choices))  # type: ignore[assignment]
    key = (cls.app, cls.name)
    replaced = _REGISTRY.get(key) or (_REGISTRY.get((None, cls.name)) if cls.app else None)
    if replaced is not None:
        same = (replaced.__module__, replaced.__qualname__) == (cls.__module__, cls.__qualname__)
        if not same and not cls.__dict__.get("override", False):
            raise TypeError(
                f"{where}: setting {cls.name!r} is already declared by "
                f"{replaced.__module__}.{replaced.__qualname__}; set override = True to replace it"
            )
        cls.order = replaced.order
    else:
        cls.order = next(_ORDER)
    try:
        cls.validate(copy.deepcopy(cls.default))
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{where}: invalid default {cls.default!r} ({exc})") from None
    _REGISTRY[key] = cls


def _ensure_core() -> None:
    """Import the core declarations (``pulsar._settings`` imports this module)."""
    if "pulsar._settings" not in sys.modules:
        importlib.import_module("pulsar._settings")


#: app -> the apps whose settings it has too (``declare_app``)
_APP_REQUIRES: dict[str, tuple[str, ...]] = {}


def declare_app(app: str, *, requires: Iterable[str] = ()) -> None:
    """Declare that a config with ``app`` has the settings of the ``requires`` apps too (the
    WSGI server's settings come with the server ones: ``declare_app("wsgi",
    requires=("socket",))``)."""
    _APP_REQUIRES[app] = tuple(requires)


def _with_required(apps: Iterable[str]) -> list[str]:
    out: list[str] = []

    def add(app: str, seen: tuple[str, ...]) -> None:
        if app in out or app in seen:
            return
        for required in _APP_REQUIRES.get(app, ()):
            add(required, (*seen, app))
        out.append(app)

    for app in apps:
        add(app, ())
    return out


def _collect(apps: Iterable[str], *, core: bool = True) -> dict[str, builtins.type[Setting]]:
    """The setting classes of a config with these apps (and the apps they require, first), in
    declaration order.

    A later app replaces an earlier app's setting of the same name only when it declares
    ``override = True``; otherwise the clash raises ConfigError.
    """
    _ensure_core()
    apps = _with_required(apps)
    chosen: dict[str, builtins.type[Setting]] = {}
    if core:
        chosen.update((name, cls) for (app, name), cls in _REGISTRY.items() if app is None)
    for app in apps:
        for (owner, name), cls in list(_REGISTRY.items()):
            if owner != app:
                continue
            previous = chosen.get(name)
            if previous is not None and previous.app is not None and not cls.override:
                raise ConfigError(
                    f"setting {name!r} is declared by both apps {previous.app!r} and {app!r}", name
                )
            chosen[name] = cls
    return dict(sorted(chosen.items(), key=lambda item: item[1].order))


# ---------------------------------------------------------------------------------------------
# Helpers for messages and the parser
# ---------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _invalid(label: str, value: Any, exc: BaseException, name: str) -> ConfigError:
    reason = _one_line(str(exc)) or type(exc).__name__
    return ConfigError(f"{label}: invalid value {_short(value)} ({reason})", name)


def _unknown(name: str, known: Iterable[str], where: str = "") -> ConfigError:
    message = f"unknown setting {name!r}{where}"
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return ConfigError(message, name)


def _display(value: Any) -> str:
    """A value as shown in ``--help``."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or "(none)"
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return f"{value.__module__}:{value.__qualname__}"
    return str(value)


def _dest(prefix: str | None, name: str) -> str:
    return f"pulsar:{prefix}:{name}" if prefix else f"pulsar:{name}"


def _undest(dest: str) -> tuple[str | None, str] | None:
    parts = dest.split(":")
    if parts[0] != "pulsar" or len(parts) not in (2, 3):
        return None
    return (parts[1], parts[2]) if len(parts) == 3 else (None, parts[1])


class SettingsParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ConfigError (one line) instead of exiting.

    ``--help`` and ``--version`` still print and raise ``SystemExit(0)``.
    """

    def error(self, message: str) -> Any:  # argparse's signature returns NoReturn
        """Raise ConfigError with argparse's message (e.g. ``unrecognized arguments: --x``)."""
        raise ConfigError(message)


def _version(version: str | None) -> str:
    if version is not None:
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("pulsar-core")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


def _exec_config_file(path: str) -> dict[str, Any]:
    """Execute a Python config file and return its namespace (ConfigError naming the path)."""
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found", "config")
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}", "config")
    namespace: dict[str, Any] = {"__file__": path, "__name__": CONFIG_MODULE}
    try:
        exec(compile(source, path, "exec"), namespace)
    except SyntaxError as exc:
        raise ConfigError(f"config file {path}:{exc.lineno}: syntax error: {exc.msg}", "config")
    except Exception as exc:
        reason = _one_line(f"{type(exc).__name__}: {exc}")
        raise ConfigError(f"config file {path}: {reason}", "config")
    return namespace


class LoadResult(NamedTuple):
    """What :meth:`Config.load` returns besides updating the config.

    ``args``: the namespace of the arguments the caller added to the parser (positional app
    arguments and the like; settings are removed from it). ``extras``: the command-line
    arguments left unparsed (only with ``known_only=True``; otherwise always empty).
    """

    args: argparse.Namespace
    extras: list[str]


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

_PREFIX_RE = re.compile(r"[a-z][a-z0-9_]*")


class Config:
    """The settings of one application: core settings plus those of the ``apps`` named.

    ``cfg.workers`` reads a value, ``cfg.workers = 2`` is ``cfg.set("workers", 2)``.
    ``params`` are validated like :meth:`update`; an unknown name raises
    ``ConfigError("unknown setting 'x'")``. ``prefix`` (a MultiApp member's name) changes the
    flags, environment variables and config-file names of the non-global settings.
    ``description`` and ``epilog`` go to the ``--help`` output.

    Cross-setting rules (``heartbeat < timeout``...) are checked by :meth:`check`, which
    :meth:`load` runs after its layers.
    """

    __slots__ = ("_settings", "apps", "description", "epilog", "prefix")

    _settings: dict[str, Setting]
    apps: tuple[str, ...]
    prefix: str | None
    description: str | None
    epilog: str | None

    def __init__(
        self,
        *,
        apps: Iterable[str] = (),
        prefix: str | None = None,
        description: str | None = None,
        epilog: str | None = None,
        **params: Any,
    ) -> None:
        apps = (apps,) if isinstance(apps, str) else tuple(apps)
        if prefix is not None and not _PREFIX_RE.fullmatch(prefix):
            raise ConfigError(f"invalid prefix {prefix!r} (expected lower_case letters/digits)")
        object.__setattr__(self, "apps", apps)
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "epilog", epilog)
        object.__setattr__(self, "_settings", {n: c() for n, c in _collect(apps).items()})
        if params:
            self.update(params)

    # --- values ------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_"):
            try:
                settings = object.__getattribute__(self, "_settings")
            except AttributeError:
                pass
            else:
                if name in settings:
                    return settings[name].value
        raise AttributeError(f"Config has no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._settings:
            self.set(name, value)
        else:
            raise AttributeError(f"cannot set {name!r}: not a setting of this Config")

    def __contains__(self, name: object) -> bool:
        return name in self._settings

    @property
    def settings(self) -> Mapping[str, Setting]:
        """Read-only mapping name -> :class:`Setting` instance (``.value``, ``.source``)."""
        return MappingProxyType(self._settings)

    def get(self, name: str, default: Any = _MISSING) -> Any:
        """The value of setting ``name``.

        Raises:
            ConfigError: this Config does not declare ``name`` (a typo, or a setting of an
                application it was not built for); with a ``default``, that is returned
                instead (for a setting another application may declare). The default of a
                declared setting lives only in its :class:`Setting`.
        """
        setting = self._settings.get(name)
        if setting is None:
            if default is _MISSING:
                raise _unknown(name, self._settings)
            return default
        return setting.value

    def view(self, cls: builtins.type[_V]) -> _V:
        """A frozen, typed snapshot of the settings named by the fields of ``cls`` (a frozen
        dataclass, e.g. :class:`pulsar.options.ServerOptions`); lists become tuples.

        Each layer (actor, server, HTTP, task queue) builds its view once, when it starts,
        and reads typed attributes from then on.

        Raises:
            ConfigError: a field names a setting this Config does not declare.
        """
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            value = self._setting(field.name).value
            values[field.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    def set(self, name: str, value: Any, *, source: str = "code") -> None:
        """Validate and set one setting.

        Raises:
            ConfigError: unknown name, or ``"<name>: invalid value ... (<reason>)"``.
        """
        if source not in _SOURCES:
            raise ValueError(f"source must be one of {', '.join(_SOURCES)}")
        self._setting(name).set(value, source=source)

    def update(self, values: Mapping[str, Any], *, source: str = "code") -> None:
        """Set several settings; all are validated before any changes (all or nothing)."""
        staged = self.copy()
        for name, value in values.items():
            staged.set(name, value, source=source)
        object.__setattr__(self, "_settings", staged._settings)

    def items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs in declaration order."""
        return [(name, setting.value) for name, setting in self._settings.items()]

    def check(self) -> None:
        """Run the cross-setting checks (:meth:`Setting.check_config`).

        Raises:
            ConfigError: ``"<name>: <reason>"`` for the first failing setting.
        """
        for name, setting in self._settings.items():
            try:
                setting.check_config(self)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{name}: {exc}", name) from None

    def _setting(self, name: str) -> Setting:
        setting = self._settings.get(name)
        if setting is None:
            raise _unknown(name, self._settings)
        return setting

    # --- copies and pickling -----------------------------------------------------------------

    def copy(self) -> Config:
        """An independent copy (values deep-copied; functions are shared, as they are immutable)."""
        new = object.__new__(type(self))
        for slot in ("apps", "prefix", "description", "epilog"):
            object.__setattr__(new, slot, getattr(self, slot))
        settings: dict[str, Setting] = {}
        for name, setting in self._settings.items():
            clone = object.__new__(type(setting))
            clone.value = copy.deepcopy(setting.value)
            clone.source = setting.source
            settings[name] = clone
        object.__setattr__(new, "_settings", settings)
        return new

    def prefixed(self, prefix: str | None) -> Config:
        """A copy with another prefix (None removes it)."""
        if prefix is not None and not _PREFIX_RE.fullmatch(prefix):
            raise ConfigError(f"invalid prefix {prefix!r} (expected lower_case letters/digits)")
        new = self.copy()
        object.__setattr__(new, "prefix", prefix)
        return new

    def __copy__(self) -> Config:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> Config:
        return self.copy()

    def __getstate__(self) -> dict[str, Any]:
        for name, setting in self._settings.items():
            value = setting.value
            if callable(value) and not isinstance(value, LazyCallable):
                try:
                    pickle.dumps(value)
                except Exception:
                    raise ConfigError(
                        f"{name}: {value!r} cannot be pickled to reach other processes "
                        "(use a module-level function or a 'module:attr' string)",
                        name,
                    ) from None
        return {
            "apps": self.apps,
            "prefix": self.prefix,
            "description": self.description,
            "epilog": self.epilog,
            "settings": [(type(s), s.value, s.source) for s in self._settings.values()],
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for slot in ("apps", "prefix", "description", "epilog"):
            object.__setattr__(self, slot, state[slot])
        settings: dict[str, Setting] = {}
        for cls, value, source in state["settings"]:
            setting = object.__new__(cls)
            setting.value = value
            setting.source = source
            settings[cls.name] = setting
        object.__setattr__(self, "_settings", settings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return (self.apps, self.prefix, self.items()) == (other.apps, other.prefix, other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        changed = ", ".join(
            f"{name}={s.value!r}" for name, s in self._settings.items() if s.source != "default"
        )
        prefix = f"prefix={self.prefix!r}, " if self.prefix else ""
        return f"Config({prefix}apps={list(self.apps)}{', ' if changed else ''}{changed})"

    # --- command line, environment, config file ----------------------------------------------

    def parser(
        self,
        *,
        prog: str | None = None,
        version: str | None = None,
        usage: str | None = None,
    ) -> argparse.ArgumentParser:
        """An argparse parser for this config: one argument group per section.

        Help shows each setting's current value and environment variable. ``--version`` prints
        ``version`` (default: the installed ``pulsar-core`` version). Add positional or extra
        arguments to it and pass it to :meth:`load` as ``parser=``.
        """
        return Config.parser_for([self], prog=prog, version=version, usage=usage)

    @staticmethod
    def parser_for(
        configs: Sequence[Config],
        *,
        prog: str | None = None,
        version: str | None = None,
        usage: str | None = None,
        description: str | None = None,
        epilog: str | None = None,
    ) -> argparse.ArgumentParser:
        """One parser for several configs (a MultiApp): see :meth:`add_arguments`.

        Errors raise ConfigError instead of exiting. ``description``/``epilog`` default to the
        first config's.
        """
        first = configs[0] if configs else None
        parser = SettingsParser(
            prog=prog,
            usage=usage,
            description=description or (first.description if first else None),
            epilog=epilog or (first.epilog if first else None),
        )
        parser.add_argument("--version", action="version", version=f"%(prog)s {_version(version)}")
        Config.add_arguments(parser, configs)
        return parser

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, configs: Iterable[Config]) -> None:
        """Add the settings of ``configs`` to ``parser``, each flag once.

        Global and unprefixed settings come first, grouped by section; then each prefixed
        config's settings in groups titled ``"<section> [<prefix>]"``. A global setting shared
        by every config is added once and :meth:`load_many` applies it to all of them.
        """
        configs = list(configs)
        seen: set[tuple[str | None, str]] = set()
        groups: dict[str, Any] = {}
        for shared_pass in (True, False):
            for cfg in configs:
                for setting in cfg._settings.values():
                    prefix = None if setting.is_global else cfg.prefix
                    if (prefix is None) != shared_pass or not setting.flags:
                        continue
                    key = (prefix, setting.name)
                    if key in seen:
                        continue
                    seen.add(key)
                    title = setting.section if prefix is None else f"{setting.section} [{prefix}]"
                    group = groups.get(title)
                    if group is None:
                        group = groups[title] = parser.add_argument_group(title)
                    setting.add_argument(group, prefix)

    def load(
        self,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        parser: argparse.ArgumentParser | None = None,
        known_only: bool = False,
        prog: str | None = None,
        version: str | None = None,
    ) -> LoadResult:
        """Apply the config file, then ``PULSAR_*`` environment variables, then the command line
        on top of the current values, and run :meth:`check`.

        Args:
            argv: command-line arguments (default ``sys.argv[1:]``; ``[]`` ignores the command
                line).
            environ: environment (default ``os.environ``; ``{}`` ignores it).
            parser: a parser from :meth:`parser` to which the caller added its own arguments
                (e.g. a positional ``module:callable``); their values come back in
                ``result.args``.
            known_only: leave unknown arguments in ``result.extras`` instead of failing.
            prog, version: for the parser built when ``parser`` is None.

        The config file is the ``config`` value of the highest layer that sets it (command
        line, then ``PULSAR_CONFIG``, then the current value). Nothing changes unless every
        layer is valid. ``--help``/``--version`` print and raise ``SystemExit(0)``.

        Raises:
            ConfigError: one line naming the setting and the bad value; the caller prints it
                (``error: ...``) and exits with status 2.
        """
        return Config.load_many(
            [self],
            argv,
            environ,
            parser=parser,
            known_only=known_only,
            prog=prog,
            version=version,
        )

    @staticmethod
    def load_many(
        configs: Sequence[Config],
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        parser: argparse.ArgumentParser | None = None,
        known_only: bool = False,
        prog: str | None = None,
        version: str | None = None,
    ) -> LoadResult:
        """:meth:`load` for several configs sharing one command line (a MultiApp).

        The parser (default :meth:`parser_for`) has the global settings once and each
        config's non-global settings under its prefix. One config file serves them all:
        ``workers`` sets the unprefixed configs, ``rpc_workers`` the config prefixed ``rpc``;
        global settings reach every config. Give each config its own prefix.
        """
        configs = list(configs)
        if parser is None:
            parser = Config.parser_for(configs, prog=prog, version=version)
        argv = sys.argv[1:] if argv is None else list(argv)
        environ = os.environ if environ is None else environ
        extras: list[str] = []
        if known_only:
            namespace, extras = parser.parse_known_args(argv)
        else:
            namespace = parser.parse_args(argv)
        cli: dict[tuple[str | None, str], Any] = {}
        for dest in list(vars(namespace)):
            key = _undest(dest)
            if key is not None:
                cli[key] = getattr(namespace, dest)
                delattr(namespace, dest)
        staged = [cfg.copy() for cfg in configs]
        path = _config_path(staged, cli, environ)
        if path:
            _apply_file(staged, path)
        _apply_env(staged, environ)
        _apply_cli(staged, cli)
        for cfg in staged:
            cfg.check()
        for cfg, new in zip(configs, staged, strict=True):
            object.__setattr__(cfg, "_settings", new._settings)
        return LoadResult(namespace, extras)


def _targets(configs: Sequence[Config], prefix: str | None, name: str) -> Iterator[Setting]:
    """The settings a CLI key ``(prefix, name)`` applies to."""
    for cfg in configs:
        setting = cfg._settings.get(name)
        if setting is not None and (setting.is_global or cfg.prefix == prefix):
            yield setting


def _config_path(
    configs: Sequence[Config], cli: Mapping[tuple[str | None, str], Any], environ: Mapping[str, str]
) -> str | None:
    """The config file chosen by the highest layer: command line, environment, current value."""
    settings = list(_targets(configs, None, "config"))
    if not settings:
        return None
    setting = settings[0]
    env = str(setting.env_var())
    if (None, "config") in cli:
        raw, label = cli[(None, "config")], setting.flags_for()[-1]
    elif env in environ:
        raw, label = environ[env], env
    else:  # the first config given one in code
        return next((s.value for s in settings if s.value), None)
    try:
        return setting.convert(raw)  # type: ignore[no-any-return]
    except (ValueError, TypeError) as exc:
        raise _invalid(label, raw, exc, "config") from None


def _apply_file(configs: Sequence[Config], path: str) -> None:
    """Layer 3: map the config file's lower-case names to settings."""
    namespace = _exec_config_file(path)
    path = os.path.abspath(path)
    known: dict[str, list[Setting]] = {}
    prefixed_only: dict[str, str] = {}
    for cfg in configs:
        for setting in cfg._settings.values():
            file_name = setting.file_name(cfg.prefix)
            known.setdefault(file_name, []).append(setting)
            if file_name != setting.name:
                prefixed_only.setdefault(setting.name, file_name)
    for key, value in namespace.items():
        if key.startswith("_") or key != key.lower():
            continue
        targets = known.get(key)
        if targets is None:
            if inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value):
                continue
            if key in prefixed_only:
                raise ConfigError(
                    f"config file {path}: setting {key!r} needs an application prefix here "
                    f"(e.g. {prefixed_only[key]!r})",
                    key,
                )
            raise _unknown(key, known, f" in config file {path}")
        if key == "config":
            raise ConfigError(f"config file {path}: 'config' cannot be set from a config file")
        if inspect.isfunction(value) and value.__module__ == CONFIG_MODULE:
            value = LazyCallable(key, file=path, target=value)
        for setting in targets:
            setting.set(value, source="file", label=f"config file {path}: {key}")


def _apply_env(configs: Sequence[Config], environ: Mapping[str, str]) -> None:
    """Layer 4: ``PULSAR_[PREFIX_]NAME`` variables (settings with flags only)."""
    for cfg in configs:
        for setting in cfg._settings.values():
            env = setting.env_var(cfg.prefix)
            if env is not None and env in environ:
                setting.set(environ[env], source="env", label=env)


def _apply_cli(configs: Sequence[Config], cli: Mapping[tuple[str | None, str], Any]) -> None:
    """Layer 5: the parsed command line."""
    for (prefix, name), value in cli.items():
        for setting in _targets(configs, prefix, name):
            setting.set(value, source="cli", label=setting.flags_for(prefix)[-1])


# ---------------------------------------------------------------------------------------------
# Settings reference (docs/settings.md)
# ---------------------------------------------------------------------------------------------

_REFERENCE_INTRO = """\
Every setting is declared once in code (a `Setting` class) and this page is generated from those
declarations by `tools/gen_settings_doc.py`: do not edit it by hand.

A value can be given in several ways; each one overrides the previous:

1. the default shown below;
2. in code: `Config(workers=2)`, `SocketServer(..., workers=2)`, `cfg.set("workers", 2)`;
3. in the Python config file given with `-c/--config` (lower-case module-level names:
   `workers = 2`);
4. in an environment variable: `PULSAR_WORKERS=2`;
5. on the command line: `--workers 2`.

Boolean flags also have a `--no-` form (`--no-access-log`); environment variables take
`1/true/yes/on` or `0/false/no/off`. List settings take a repeated flag or a comma-separated
value. Settings without a command-line flag (the hooks) are set in code or in the config file.

The environment variable lines up with the long flag: `--queues` is `PULSAR_QUEUES`.

In a MultiApp each application has a prefix, say `rpc`: its settings are `--rpc-workers`,
`PULSAR_RPC_WORKERS` and `rpc_workers` in the config file. Settings marked *global* apply to the
whole arbiter and keep their plain names.

Each command lists and accepts only the settings of its applications: those of application
`socket` (the server settings: `bind`, TLS, `keep_alive`, `max_requests`, the access log) belong
to the socket servers (WSGI, JSON-RPC), not to `pulsar-tasks worker` or `pulsar-shell`. Code reads
a typed, frozen view of the settings (`cfg.view(pulsar.options.ServerOptions)`); each default
lives only here."""


def _md_default(cls: builtins.type[Setting]) -> str:
    if cls.default_doc is not None:
        return cls.default_doc
    return f"`{cls.validate(copy.deepcopy(cls.default))!r}`"


class _Anchors:
    """GitHub-style heading anchors, ``-1``/``-2`` suffixes for repeated headings."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, title: str) -> str:
        base = re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")
        count = self.seen.get(base, 0)
        self.seen[base] = count + 1
        return f"{base}-{count}" if count else base


def settings_reference(apps: Iterable[str] | None = None, *, include_core: bool = True) -> str:
    """The Markdown settings reference: sections, and for each setting its flags, environment
    variable, default, scope and description.

    ``apps=None`` documents the core settings; ``apps=("wsgi",)`` adds that application's.
    With ``include_core=False`` only the apps' own settings are listed.
    """
    apps = tuple(apps or ())
    classes = list(_collect(apps, core=include_core).values())
    # deterministic whatever the import order: core first, then each app in the order given
    order = {app: i for i, app in enumerate(apps)}
    # (apps declared by pulsar-core itself, the server settings, stay among the core ones)
    classes.sort(
        key=lambda cls: (
            -1
            if cls.app is None or cls.__module__ == "pulsar._settings"
            else order.get(cls.app, len(order))
        )
    )
    if not include_core:
        classes = [cls for cls in classes if cls.app is not None]
    sections: dict[str, list[builtins.type[Setting]]] = {}
    for cls in classes:
        sections.setdefault(cls.section, []).append(cls)
    anchor = _Anchors()
    anchor("Settings reference")
    anchor("Contents")
    links: dict[str, str] = {}  # heading anchors, in document order
    for section, members in sections.items():
        links[section] = anchor(section)
        for cls in members:
            links[f"`{cls.name}`"] = anchor(cls.name)
    lines = ["# Settings reference", "", _REFERENCE_INTRO, "", "## Contents", ""]
    for section, members in sections.items():
        names = ", ".join(f"[`{cls.name}`](#{links[f'`{cls.name}`']})" for cls in members)
        lines.append(f"- [{section}](#{links[section]}): {names}")
    for section, members in sections.items():
        lines += ["", f"## {section}"]
        for cls in members:
            lines += ["", f"### `{cls.name}`", ""]
            flags = list(cls.flags)
            if cls.argparse_action() is argparse.BooleanOptionalAction:
                flags += [f"--no-{flag[2:]}" for flag in cls.flags if flag.startswith("--")]
                shown = [f"`{flag}`" for flag in flags]
            else:
                meta = f" {cls.metavar()}" if cls.flags else ""
                if meta and cls.nargs == "?":
                    meta = f" [{cls.metavar()}]"
                shown = [f"`{flag}{meta}`" for flag in flags]
            lines.append(f"- Command line: {', '.join(shown) or 'none (code or config file)'}")
            env = cls.env_var()
            lines.append(f"- Environment: {f'`{env}`' if env else 'none'}")
            lines.append(f"- Default: {_md_default(cls)}")
            scope = "global (no MultiApp prefix)" if cls.is_global else "per application"
            if cls.app:
                scope += f"; application `{cls.app}`"
            lines.append(f"- Scope: {scope}")
            lines += ["", cls.desc]
            if cls.doc:
                lines += ["", inspect.cleandoc(cls.doc)]
    return "\n".join(lines) + "\n"
